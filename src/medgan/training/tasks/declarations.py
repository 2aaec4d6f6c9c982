"""What a task family declares without importing torch: its tasks' names, their ``medgan train`` options and the
architectures they train, its recipes and its demos.

Each family declares these in its ``config`` module (which imports no torch), and its task classes register
later (``register_task``, checked against the declaration). ``medgan --help`` and ``medgan train --help`` read
the declarations only, so they answer without loading torch; a lookup in ``TASKS`` imports the task classes.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from medgan.config import RunConfig
from medgan.registry import Registry

# The built-in families: package under medgan.training.tasks -> (its declarations module, the module whose
# classes register its tasks). A new family adds one line here (and its package).
FAMILIES = {
    "noise_to_image": ("config", "tasks"),
    "paired": ("config", "task"),
    "unpaired": ("config", "task"),
}


def _import_families(which: int) -> None:
    for family, modules in FAMILIES.items():
        importlib.import_module(f"medgan.training.tasks.{family}.{modules[which]}")


def lazy_attributes(package: str, modules: dict[str, str]) -> Callable[[str], Any]:
    """A package's module ``__getattr__`` (PEP 562) importing ``name`` from its submodule ``modules[name]`` at first
    use, so importing a family's declarations does not import its torch code."""
    namespace = importlib.import_module(package).__dict__

    def attribute(name: str) -> Any:
        if name not in modules:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{modules[name]}"), name)
        namespace[name] = value
        return value

    return attribute


def load_declarations() -> None:
    """Imports every built-in family's declarations (torch-free): tasks, options, recipes, demos."""
    _import_families(0)


def load_tasks() -> None:
    """Imports every built-in family's task classes (with torch), which register in ``TASKS``."""
    _import_families(1)


@dataclass(frozen=True)
class TaskOption:
    """A ``medgan train`` option that a task adds (the same flag may be declared by several tasks alike)."""

    flag: str  # e.g. "--degrade"
    key: str  # the config key it sets: "section.key" of a shared section, or a key of the task's own section
    help: str  # the --help line
    type: Callable[[str], Any] = str  # argparse's conversion of each value
    nargs: str | None = None  # argparse nargs ("+" for a list)
    metavar: str | None = None  # the value's name in --help
    selects: bool = False  # given without --task, this option selects the task that declares it

    @property
    def dest(self) -> str:
        """The argparse attribute of the option."""
        return self.flag.lstrip("-").replace("-", "_")


@dataclass(frozen=True)
class TaskDeclaration:
    """A task as the command line knows it before its class is imported."""

    name: str  # the registered name (--task NAME, config key ``task``)
    options: tuple[TaskOption, ...] = ()  # its ``medgan train`` options: the class's ``cli_options``
    architectures: tuple[str, ...] = ()  # the ``model.name`` values it trains (``--model ARCHITECTURE``)


@dataclass(frozen=True)
class Recipe:
    """A named starting configuration (``--model NAME``), registered by the task family it configures."""

    tasks: tuple[str, ...]  # the tasks it configures; the first is the one it selects without --task
    build: Callable[[], RunConfig]  # the recipe's config (its task's own section as plain values)
    summary: str  # one line for --help and the manual
    # The recipe's config fitted to the user's values before they apply: a choice the recipe made for one kind of
    # run (e.g. 2D slices with its own architecture) that it takes back for another. None: the config as built.
    adapt: Callable[[RunConfig, Mapping[str, Any]], RunConfig] | None = None


@dataclass(frozen=True)
class Demo:
    """A worked project on embedded data (``medgan demo NAME``): a task's recipe plus the demo's values."""

    task: str  # the registered task it trains
    source: str  # the embedded data source (data.source)
    what: str  # what the grid or the evaluation shows, one line
    values: dict[str, Any] = field(default_factory=dict)  # config values on top of the task's recipe
    minutes: float = 8.0  # the default training budget


DECLARED: Registry[TaskDeclaration] = Registry("task", load=load_declarations)
RECIPES: Registry[Recipe] = Registry("recipe", load=load_declarations)
DEMOS: Registry[Demo] = Registry("demo", load=load_declarations)


def declare_task(name: str, options: tuple[TaskOption, ...] = (), architectures: tuple[str, ...] = (),
                 default: bool = False) -> TaskDeclaration:
    """Declares a task of a family (in the family's torch-free ``config`` module); see ``TaskDeclaration``."""
    declaration = TaskDeclaration(name, tuple(options), tuple(architectures))
    return DECLARED.register(name, default=default)(declaration)


def task_options() -> list[TaskOption]:
    """Every declared task's ``medgan train`` options, each flag once (tasks in name order)."""
    seen: dict[str, TaskOption] = {}
    for name in DECLARED:
        for option in DECLARED.get(name).options:
            seen.setdefault(option.flag, option)
    return list(seen.values())


def tasks_with_option(flag: str, selecting: bool = False) -> list[str]:
    """The tasks that declare ``flag`` (with ``selecting``: only those for which it selects the task)."""
    return [name for name in DECLARED if any(option.flag == flag and (option.selects or not selecting)
                                             for option in DECLARED.get(name).options)]


def model_names() -> tuple[list[str], list[str]]:
    """What ``--model`` takes: the recipe names, and the architectures the tasks train (each list sorted)."""
    architectures = {name for task in DECLARED for name in DECLARED.get(task).architectures}
    return RECIPES.names(), sorted(architectures)


def describe_model_names() -> str:
    """The ``--model`` vocabulary in words; ``--help`` and the error for an unknown name both show this."""
    recipes, architectures = model_names()
    return f"a recipe ({', '.join(recipes)}) or an architecture ({', '.join(architectures)})"


def tasks_with_architecture(name: str) -> list[str]:
    """The declared tasks that train architecture ``name``."""
    return [task for task in DECLARED if name in DECLARED.get(task).architectures]


def check_model(name: str | None, task: str | None, option: str = "--model") -> None:
    """Refuses a ``--model`` (or ``medgan.train(model=...)``) that is neither a recipe nor an architecture, listing
    the names ``--help`` lists, or an architecture that ``task`` (default: the default task) does not train."""
    from medgan.errors import ConfigError

    recipes, architectures = model_names()
    if name is None or name in recipes:
        return
    if name not in architectures:
        raise ConfigError(f"unknown {option} {name!r}; choose {describe_model_names()}")
    task = task or DECLARED.default
    if isinstance(task, str) and task in DECLARED and name not in DECLARED.get(task).architectures:
        owners = " or ".join(tasks_with_architecture(name))
        raise ConfigError(f"{option} {name} is an architecture of task {owners}, not of task {task!r} (it trains "
                          f"{', '.join(DECLARED.get(task).architectures)})")
