"""Training tasks: each module registers its factories in ``TASKS`` on import."""

from medgan.training.tasks import adversarial, paired, unpaired  # noqa: F401  (register every task)
from medgan.training.tasks.base import TASKS, Batch, ScoreRule, Scorer, Task

__all__ = ["TASKS", "Batch", "ScoreRule", "Scorer", "Task"]
