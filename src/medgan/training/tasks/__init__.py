"""Training tasks: each module registers its factories in ``TASKS`` on import."""

from medgan.training.tasks import adversarial, paired  # noqa: F401  (register "unconditional", "conditional", "paired")
from medgan.training.tasks.base import TASKS, Batch, ScoreRule, Scorer, Task

__all__ = ["TASKS", "Batch", "ScoreRule", "Scorer", "Task"]
