"""Training tasks, registered by name in ``TASKS``."""

from medgan.training.tasks import adversarial  # noqa: F401  (registers "unconditional" and "conditional")
from medgan.training.tasks.base import TASKS, Batch, Task

__all__ = ["TASKS", "Batch", "Task"]
