"""Training tasks: each GAN family is one package here that registers itself.

``declarations`` holds what a family declares without torch (task names, ``medgan train`` options, architectures,
recipes, demos); ``base`` is the contract (``TaskBase``, ``TASKS``); ``registry`` registers task classes and
resolves a run's config; ``noise_to_image`` (unconditional, conditional), ``paired`` and ``unpaired`` are the
families; ``image_to_image`` and ``gan_state`` hold what several families share. Nothing outside this package names
a task.

Names are imported lazily (PEP 562): the declarations load without torch (``medgan --help`` reads them), and the
first lookup in ``TASKS`` imports the task classes.
"""

from medgan.training.tasks.declarations import (DEMOS, RECIPES, Demo, Recipe, TaskOption, describe_model_names,
                                                lazy_attributes, model_names, task_options, tasks_with_option)

__all__ = ["DEMOS", "RECIPES", "TASKS", "Batch", "Capabilities", "Demo", "EvaluationRequest", "NoOptions", "Recipe",
           "ScoreRule", "Scorer", "Task", "TaskBase", "TaskOption", "check_user_values", "check_values",
           "describe_model_names",
           "model_names", "recipe", "register_task", "reload_config", "resolve_config", "task_options",
           "tasks_with_option", "user_values"]
__getattr__ = lazy_attributes(__name__, {  # name -> the submodule defining it, imported at first use
    **dict.fromkeys(("TASKS", "Batch", "Capabilities", "EvaluationRequest", "NoOptions", "ScoreRule", "Scorer",
                     "Task", "TaskBase"), "base"),
    **dict.fromkeys(("check_user_values", "check_values", "recipe", "register_task", "reload_config",
                     "resolve_config", "user_values"), "registry"),
})
