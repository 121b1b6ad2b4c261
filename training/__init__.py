"""Rollouts, evaluation and (in later versions) the multi-turn GRPO learner."""
