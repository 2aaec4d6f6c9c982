"""What tasks register: themselves (``register_task``), their recipes and their demos; and the one function
that turns user values into a run's resolved config (``resolve_config``), used by the CLI, the demos and
the loop alike."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping

from medgan.config import RunConfig, from_dict, to_dict
from medgan.data.cache import cache_data_values
from medgan.errors import ConfigError
from medgan.registry import Registry
from medgan.training.tasks.base import TASKS, TaskOption, check_contract


@dataclass(frozen=True)
class Recipe:
    """A named starting configuration (``--model NAME``), registered by the task family it configures."""

    tasks: tuple[str, ...]  # the tasks it configures; the first is the one it selects without --task
    build: Callable[[], RunConfig]  # the recipe's config (its task's own section as plain values)
    summary: str  # one line for --help and the manual


@dataclass(frozen=True)
class Demo:
    """A worked project on embedded data (``medgan demo NAME``): a task's recipe plus the demo's values."""

    task: str  # the registered task it trains
    source: str  # the embedded data source (data.source)
    what: str  # what the grid or the evaluation shows, one line
    values: dict[str, Any] = field(default_factory=dict)  # config values on top of the task's recipe
    minutes: float = 8.0  # the default training budget


RECIPES: Registry[Recipe] = Registry("recipe")
DEMOS: Registry[Demo] = Registry("demo")


def register_task(name: str, default: bool = False) -> Callable[[type], type]:
    """Class decorator: checks the task contract (``medgan.training.tasks.base``) and registers the task.

    A ``medgan train`` flag that several tasks declare must mean the same in each (same key, type and nargs).
    """

    def decorate(task: type) -> type:
        check_contract(task)
        for option in task.cli_options:
            for other in task_options():
                if other.flag == option.flag and (other.key, other.type, other.nargs) != (option.key, option.type,
                                                                                        option.nargs):
                    raise TypeError(f"task {name!r} declares {option.flag} unlike another task does")
        task.name = name
        return TASKS.register(name, default=default)(task)

    return decorate


def task_options() -> list[TaskOption]:
    """Every registered task's ``medgan train`` options, each flag once (tasks in name order)."""
    seen: dict[str, TaskOption] = {}
    for name in TASKS:
        for option in TASKS.get(name).cli_options:
            seen.setdefault(option.flag, option)
    return list(seen.values())


def tasks_with_option(flag: str, selecting: bool = False) -> list[str]:
    """The tasks that declare ``flag`` (with ``selecting``: only those for which it selects the task)."""
    return [name for name in TASKS if any(option.flag == flag and (option.selects or not selecting)
                                          for option in TASKS.get(name).cli_options)]


def resolve_config(values: Mapping[str, Any], recipe: str | None = None) -> RunConfig:
    """The resolved, checked config of a new run: ``recipe`` (default: the task's own) <- ``values``.

    Args:
        values: nested config values (a YAML file, flags and overrides merged); ``values["task"]`` names the task
            (default: the recipe's task, else the default task); the section named after the task is its own.
        recipe: a registered recipe name (``--model``); it must configure the task.

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
    return task.resolve(from_dict({**values, "task": name}, base=base))


def recipe(name: str) -> RunConfig:
    """The config of recipe ``name`` for its own task, its section complete (a starting point: what depends on the
    data, such as the unpaired task's domains, is checked when a run is resolved)."""
    config = RECIPES.get(name).build()
    return replace(config, options=to_dict(TASKS.get(config.task).section(config)))


def reload_config(values: Mapping[str, Any]) -> RunConfig:
    """A saved run's config (config.yaml or a checkpoint's ``config``), checked by its task again."""
    config = from_dict(values)
    return TASKS.get(config.task or TASKS.default).resolve(config)
