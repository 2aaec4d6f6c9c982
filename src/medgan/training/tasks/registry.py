"""What tasks register: themselves (``register_task``, checked against the family's declaration), their recipes
and their demos (declared torch-free in ``declarations``); and the one function that turns user values into a
run's resolved config (``resolve_config``), used by the CLI, the Python API, the demos and the loop alike."""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import Any, Callable, Mapping

from medgan.config import RunConfig, deep_update, from_dict, saved_config, to_dict
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
    cannot honour (``medgan.training.private_settings.PRIVATE_SETTINGS``), one note line each; such a setting in ``values``
    is the user's and is refused instead.

    Args:
        values: nested config values (a YAML file, flags and overrides merged); ``values["task"]`` names the task
            (default: the recipe's task, else the default task); the section named after the task is its own.
        recipe: a registered recipe name (``--model``); it must configure the task.
        note: where the notes go (default: a line on stderr).

    Raises:
        ConfigError: an unknown task, recipe, key or value, a recipe for another task, a DP setting without DP
            (privacy.delta, max_grad_norm or unit given while privacy.epsilon and privacy.noise are 0), or a config
            the task cannot train (its ``check_config``).
    """
    data = values.get("data")
    if isinstance(data, Mapping):  # a prepared cohort: its preprocessing options are the run's
        values = {**values, "data": cache_data_values(data)}
    task, name, base = _task_and_base(values, recipe)
    values = {**values, "task": name}
    config = from_dict(values, base=base)
    _check_privacy_given(values, config)
    if task.capabilities.private:
        from medgan.training.private_settings import private_defaults

        switched, notes = private_defaults(config, values)
        if switched:
            config = from_dict(deep_update(values, switched), base=base)
            for line in notes:
                (note or _stderr_line)(line)
    return task.resolve(config)


def check_values(values: Mapping[str, Any], recipe: str | None = None, task: str | None = None,
                 path: str | None = None) -> None:
    """Checks one source of a run's values on its own, before later sources override any of its keys: every key
    known and typed and every value in range over ``recipe`` (the task's own section included), so that a bad
    value in a ``--config`` file is reported even where a flag or ``--set`` replaces it.

    Args:
        values: the source's nested values (e.g. a YAML file's).
        recipe: the recipe the run starts from (``--model``), as for ``resolve_config``.
        task: the run's task when later sources choose it (default: ``values["task"]``, else the recipe's).
        path: the file the values come from, named by the errors about them.
    """
    values = {**values, "task": task} if task else values
    task_class, name, base = _task_and_base(values, recipe)
    try:
        task_class.section(from_dict({**values, "task": name}, base=base))
    except ConfigError as error:
        raise ConfigError(error.message, error.path or path) from None


def user_values(config_file: str | None, model: str | None,
                given: Mapping[str, Any]) -> tuple[dict[str, Any], str | None, dict[str, Any]]:
    """The user's values of a new run, as ``medgan train`` and ``medgan.train`` assemble them: the YAML file
    (``--config``), ``model`` when it names an architecture rather than a recipe, then ``given`` (flags and
    overrides), and the recipe's task when none was chosen.

    Returns:
        (the values, the recipe they go on or None, the file's own values for ``check_user_values``).
    """
    from medgan.config import load_yaml

    recipe = model if model in RECIPES else None
    file_values = load_yaml(config_file) if config_file else {}
    values = dict(file_values)
    if model is not None and recipe is None:
        values = deep_update(values, {"model": {"name": model}})  # an architecture, not a recipe
    values = deep_update(values, dict(given))
    if "task" not in values and recipe is not None:
        values["task"] = RECIPES.get(recipe).tasks[0]
    return values, recipe, file_values


def check_user_values(values: Mapping[str, Any], file_values: Mapping[str, Any], model: str | None,
                      recipe: str | None, config_file: str | None, option: str = "--model") -> None:
    """Refuses a ``model`` the run's task does not train (``option`` names it in the message) and, when there is a
    config file, a bad value in the file on its own, even where a flag or override replaces it."""
    from medgan.training.tasks.declarations import check_model

    check_model(model, values.get("task"), option)
    if config_file:
        task = values.get("task")
        check_values(file_values, recipe, task if isinstance(task, str) else None, path=str(config_file))


def _task_and_base(values: Mapping[str, Any], recipe: str | None) -> tuple[type, str, RunConfig]:
    """The task class that ``values`` (or the recipe) names, its name, and the recipe's config the values go on."""
    chosen = RECIPES.get(recipe) if recipe is not None else None
    name = values.get("task") or (chosen.tasks[0] if chosen is not None else TASKS.default)
    if not isinstance(name, str):
        raise ConfigError(f"config key 'task' must be a task name, got {name!r}")
    task = TASKS.get(name)
    chosen = chosen or RECIPES.get(task.default_recipe)
    if name not in chosen.tasks:
        raise ConfigError(f"recipe {recipe!r} configures task {' or '.join(chosen.tasks)}, not {name!r}")
    base = replace(chosen.build(), task=name)
    return task, name, chosen.adapt(base, values) if chosen.adapt is not None else base


def _check_privacy_given(values: Mapping[str, Any], config: RunConfig) -> None:
    """DP settings are all or nothing: a privacy key the user gave (privacy.delta, privacy.max_grad_norm,
    privacy.unit) while privacy.epsilon and privacy.noise are both 0 would train without any privacy."""
    given = values.get("privacy")
    if not isinstance(given, Mapping) or config.privacy.epsilon > 0 or config.privacy.noise > 0:
        return
    extra = sorted(set(given) - {"epsilon", "noise"})
    if extra:
        raise ConfigError(f"config key 'privacy.{extra[0]}' needs privacy.epsilon or privacy.noise: without one, "
                          "training is not differentially private")


def _stderr_line(text: str) -> None:
    print(text, file=sys.stderr)


def recipe(name: str) -> RunConfig:
    """The config of recipe ``name`` for its own task, its section complete (a starting point: what depends on the
    data, such as the unpaired task's domains, is checked when a run is resolved)."""
    config = RECIPES.get(name).build()
    return replace(config, options=to_dict(TASKS.get(config.task).section(config)))


def reload_config(values: Mapping[str, Any]) -> RunConfig:
    """A saved run's config (config.yaml or a checkpoint's ``config``), checked by its task again."""
    config = saved_config(values)
    return TASKS.get(config.task or TASKS.default).resolve(config)
