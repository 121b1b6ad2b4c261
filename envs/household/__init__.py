"""Household tasks on the ALFWorld engine with generated PDDL problems."""
