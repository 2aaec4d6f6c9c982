"""What tasks register: themselves (``register_task``, checked against the family's declaration), their recipes
and their demos (declared torch-free in ``declarations``); and the one function that turns user values into a
run's resolved config (``resolve_config``), used by the CLI, the Python API, the demos and the loop alike."""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import Any, Callable, Mapping

from medgan.config import RunConfig, deep_update, from_dict, to_dict
from medgan.data.cache import cache_data_values
from medgan.errors import ConfigError
from medgan.training.tasks.base import TASKS, check_contract
from medgan.training.tasks.declarations import (DECLARED, DEMOS, RECIPES, Demo, Recipe,  # noqa: F401  (re-exported)
                                                TaskDeclaration, task_options, tasks_with_option)


def register_task(name: str, default: bool = False) -> Callable[[type], type]:
    """Class decorator: checks the task contract (``medgan.training.tasks.base``) and registers the task.

    A built-in task must match its family's declaration (``declarations.declare_task``: the same options and
    default); a task without one (a new family in one module) is declared here from its class, its architecture
    being its default recipe's. A ``medgan train`` flag that several tasks declare must mean the same in each
    (same key, type and nargs).
    """

    def decorate(task: type) -> type:
        check_contract(task)
        declared = DECLARED.get(name) if name in DECLARED else None
        if declared is None:
            for option in task.cli_options:
                for other in task_options():
                    if other.flag == option.flag and (other.key, other.type, other.nargs) != (option.key, option.type,
                                                                                            option.nargs):
                        raise TypeError(f"task {name!r} declares {option.flag} unlike another task does")
        elif tuple(task.cli_options) != declared.options or default != (DECLARED.default == name):
            raise TypeError(f"task {name!r}: its cli_options or default differ from its family's declaration")
        task.name = name
        registered = TASKS.register(name, default=default)(task)
        if declared is None:
            recipe = RECIPES.get(task.default_recipe) if task.default_recipe in RECIPES else None
            architectures = (recipe.build().model.name,) if recipe is not None else ()
            DECLARED.register(name, default=default)(TaskDeclaration(name, tuple(task.cli_options), architectures))
        return registered

    return decorate


def resolve_config(values: Mapping[str, Any], recipe: str | None = None,
                   note: Callable[[str], None] | None = None) -> RunConfig:
    """The resolved, checked config of a new run: ``recipe`` (default: the task's own) <- ``values``.

    Asking for DP (``privacy.epsilon`` or ``privacy.noise``) switches off the recipe's settings that DP training
    cannot honour (``medgan.training.privacy.PRIVATE_SETTINGS``), one note line each; such a setting in ``values``
    is the user's and is refused instead.

    Args:
        values: nested config values (a YAML file, flags and overrides merged); ``values["task"]`` names the task
            (default: the recipe's task, else the default task); the section named after the task is its own.
        recipe: a registered recipe name (``--model``); it must configure the task.
        note: where the notes go (default: a line on stderr).

    Raises:
        ConfigError: an unknown task, recipe, key or value, a recipe for another task, or a config the task
            cannot train (its ``check_config``).
    """
    chosen = RECIPES.get(recipe) if recipe is not None else None
    name = values.get("task") or (chosen.tasks[0] if chosen is not None else TASKS.default)
    if not isinstance(name, str):
        raise ConfigError(f"config key 'task' must be a task name, got {name!r}")
    task = TASKS.get(name)
    chosen = chosen or RECIPES.get(task.default_recipe)
    if name not in chosen.tasks:
        raise ConfigError(f"recipe {recipe!r} configures task {' or '.join(chosen.tasks)}, not {name!r}")
    base = replace(chosen.build(), task=name)
    data = values.get("data")
    if isinstance(data, Mapping):  # a prepared cohort: its preprocessing options are the run's
        values = {**values, "data": cache_data_values(data)}
    values = {**values, "task": name}
    config = from_dict(values, base=base)
    if task.capabilities.private:
        from medgan.training.privacy import private_defaults

        switched, notes = private_defaults(config, values)
        if switched:
            config = from_dict(deep_update(values, switched), base=base)
            for line in notes:
                (note or _stderr_line)(line)
    return task.resolve(config)


def _stderr_line(text: str) -> None:
    print(text, file=sys.stderr)


def recipe(name: str) -> RunConfig:
    """The config of recipe ``name`` for its own task, its section complete (a starting point: what depends on the
    data, such as the unpaired task's domains, is checked when a run is resolved)."""
    config = RECIPES.get(name).build()
    return replace(config, options=to_dict(TASKS.get(config.task).section(config)))


def reload_config(values: Mapping[str, Any]) -> RunConfig:
    """A saved run's config (config.yaml or a checkpoint's ``config``), checked by its task again."""
    config = from_dict(values)
    return TASKS.get(config.task or TASKS.default).resolve(config)
