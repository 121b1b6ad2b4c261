"""Ablation studies (``turngym ablate``): matched arms, one mechanism switched, effects with 95 % intervals.

:mod:`.studies` registers the studies, :mod:`.analysis` holds the across-seed statistics and
:mod:`.run` trains the arms and writes ``runs/ablate/<study>/``. docs/ablations.md reports them.
"""

from turngym.training.ablations.run import StudyResult, run_study
from turngym.training.ablations.studies import STUDIES, Arm, Effect, Study, get_study

__all__ = ["STUDIES", "Arm", "Effect", "Study", "StudyResult", "get_study", "run_study"]
