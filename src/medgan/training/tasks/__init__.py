"""Training tasks: each GAN family is one package here that registers itself on import.

``base`` is the contract (``TaskBase``, ``TASKS``); ``registry`` registers tasks, recipes and demos and resolves a
run's config; ``noise_to_image`` (unconditional, conditional), ``paired`` and ``unpaired`` are the families;
``image_to_image`` and ``gan_state`` hold what several families share. Nothing outside this package names a task.
"""

from medgan.training.tasks.base import (TASKS, Batch, Capabilities, EvaluationRequest, NoOptions, ScoreRule, Scorer,
                                        Task, TaskBase, TaskOption)
from medgan.training.tasks.registry import (DEMOS, RECIPES, Demo, Recipe, recipe, register_task, reload_config,
                                            resolve_config, task_options, tasks_with_option)
from medgan.training.tasks import noise_to_image, paired, unpaired  # noqa: E402,F401  (register every family)

__all__ = ["DEMOS", "RECIPES", "TASKS", "Batch", "Capabilities", "Demo", "EvaluationRequest", "NoOptions", "Recipe",
           "ScoreRule", "Scorer", "Task", "TaskBase", "TaskOption", "recipe", "register_task", "reload_config",
           "resolve_config", "task_options", "tasks_with_option"]
