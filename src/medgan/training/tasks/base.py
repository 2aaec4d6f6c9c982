"""The contract between medgan and a task (one GAN family), and what every task inherits.

A task owns everything about its family: its config section (``Options``, a frozen dataclass written to YAML
under the task's name), its ``medgan train`` options, its recipes and demos (``medgan.training.tasks.registry``),
its networks, losses and phases, the inference kind its checkpoints hold, what ``medgan evaluate`` runs on its
runs, and its capabilities (DP, classes, directions). The loop, distributed training, DP, the CLI, inference and
evaluation ask the task through the members below and never name a task or read its keys.

A task is a class registered with ``@register_task("name")`` (which checks that every member of the contract is
there) and built as ``Task(config, data, device, rng)`` with the resolved run config, the training data (a
SliceSet), the torch device and the task's random generator (checkpointed by the task). ``TaskBase`` gives the
members most tasks share; a task overrides what it does differently.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping

import torch
from torch import nn

from medgan.config import RunConfig, merge_section, to_dict
from medgan.data import SliceSet
from medgan.data.cache import load_training_slices
from medgan.data.spec import DataSpec
from medgan.errors import ConfigError
from medgan.inference.translate import Direction
from medgan.registry import Registry
from medgan.training.batches import Batch, BatchSampler
from medgan.training.tasks.declarations import TaskOption, load_tasks

Scorer = Callable[[torch.Tensor, torch.Tensor], dict[str, float]]
"""``scorer(real, fake) -> {name: value}`` on [N, C, R, R] images in [-1, 1]; injected by the caller of the loop
(``medgan.metrics.training_score`` from the CLI)."""


@dataclass(frozen=True)
class ScoreRule:
    """Which score ranks checkpoints for ``best.pt``, and its direction."""

    key: str  # a key of the dict that Task.score returns, e.g. "fid"
    lower_is_better: bool = True

    def improves(self, value: float, best: float | None) -> bool:
        """True when ``value`` beats ``best`` (any value beats None)."""
        if best is None:
            return True
        return value < best if self.lower_is_better else value > best


@dataclass(frozen=True)
class Capabilities:
    """What a task supports, for the parts of medgan that must know before training or loading."""

    private: bool = False  # differentially private training (privacy.*) is implemented
    conditional: bool = False  # G takes a class (sample --class, medgan utility)
    directions: tuple[Direction, ...] = ()  # a run translates both ways (translate/evaluate --direction)
    context: bool = False  # 2.5D inputs: data.context neighbouring slices join each input slice as channels
    volumes: bool = False  # 3D training (data.dims 3): the task's networks and steps take [N, C, D, H, W] cubes


@dataclass(frozen=True)
class EvaluationRequest:
    """What ``medgan evaluate --fake RUN`` asks of a run's task (``Task.evaluate``); unset options are None/()."""

    out: Path  # report folder
    real: str | None = None  # --real: real images, a held-out set, or the run's own source (its test split)
    features: str = "offline"  # --features: feature extractor of image-set metrics
    train: str | None = None  # --train: training images for the memorization audit
    max_images: int | None = None  # --max-images
    real_images: bool = True  # False with --no-real-images (a report to share)
    members: str | None = None  # --members: membership-inference audit
    non_members: str | None = None  # --non-members
    direction: str | None = None  # --direction (tasks with directions)
    inputs: tuple[str, ...] = ()  # --inputs: held-out input folders (translation)
    compare: tuple[str, ...] = ()  # --compare: other runs on the same held-out pairs (translation)
    progress: bool = True  # progress bars

    def refuse(self, options: tuple[str, ...], why: str, where: str | Path) -> None:
        """Raises ConfigError for the first of ``options`` (flag names) that was given: the task ignores it."""
        given = {"--train": self.train is not None, "--no-real-images": not self.real_images,
                 "--features": self.features != "offline", "--members": self.members is not None,
                 "--non-members": self.non_members is not None, "--direction": self.direction is not None,
                 "--inputs": bool(self.inputs), "--compare": bool(self.compare)}
        for option in options:
            if given[option]:
                raise ConfigError(f"{option} {why}", where)


@dataclass(frozen=True)
class NoOptions:
    """The section of a task without options of its own."""


class TaskBase:
    """What every task shares; a task subclasses it and fills in the rest of the contract.

    Class members (declared by the task):
        name: the registered name (set by ``register_task``).
        Options: the frozen dataclass of the task's own config section.
        default_recipe: the recipe a run of this task starts from (``medgan.training.tasks.RECIPES``).
        inference_kind: the ``medgan.inference.INFERENCE`` kind its ``inference_state()`` names.
        capabilities: what it supports (DP, classes, directions).
        cli_options: the ``medgan train`` options it adds.

    Instance members (set in ``__init__``): ``spec`` (the DataSpec saved with every checkpoint), ``score_rule``
    (what "best" means, None ranks nothing), ``groups_by_class`` (class-grouped batches), ``nearest_domains``
    (aligned domains that are label maps), ``attributes`` (standardized per-image attributes the batches carry,
    or None) and ``privacy`` (the DP engine that replaces the loop's sampler, or None).
    """

    name: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions
    default_recipe: ClassVar[str] = ""
    inference_kind: ClassVar[str] = ""
    capabilities: ClassVar[Capabilities] = Capabilities()
    cli_options: ClassVar[tuple[TaskOption, ...]] = ()

    spec: DataSpec
    score_rule: ScoreRule | None = None
    groups_by_class: bool = False
    nearest_domains: frozenset[str] = frozenset()
    attributes: torch.Tensor | None = None
    privacy: Any = None

    # ---------------------------------------------------------------------------------------------------
    # configuration (before any data is read or any file is written)

    @classmethod
    def section(cls, config: RunConfig) -> Any:
        """The task's own section of ``config``, typed (``Options``) and range-checked (``check_options``)."""
        options = merge_section(cls.Options(), config.options, config.task or cls.name)
        cls.check_options(options, config)
        return options

    @classmethod
    def check_options(cls, options: Any, config: RunConfig) -> None:
        """Raises ConfigError for a value of the task's own section that is out of range (none by default)."""

    @classmethod
    def resolve(cls, config: RunConfig) -> RunConfig:
        """``config`` with the task's section complete (every key, defaults filled) and everything checked."""
        config = replace(config, task=cls.name, options=to_dict(cls.section(config)))
        cls.check_config(config)
        return config

    @classmethod
    def check_config(cls, config: RunConfig) -> None:
        """Raises ConfigError for anything the task cannot train: registered names it uses, its section, DP, labels
        given to a task without classes, ``data.context`` given to a task without 2.5D inputs."""
        cls.section(config)
        if config.data.labels and not cls.capabilities.conditional:  # it would be ignored without a word
            conditional = [name for name in TASKS if TASKS.get(name).capabilities.conditional] or ["conditional"]
            raise ConfigError(f"--labels (data.labels) is for the {' or '.join(conditional)} task; task {cls.name!r} "
                              f"does not use labels: add --task {conditional[0]}, or leave --labels out",
                              config.data.labels)
        if config.data.context > 0 and not cls.capabilities.context:
            takers = [name for name in TASKS if TASKS.get(name).capabilities.context] or ["paired"]
            raise ConfigError(f"config key 'data.context' is {config.data.context}: neighbouring slices as input "
                              f"channels are for the {' or '.join(takers)} task, not {cls.name!r}; set data.context=0")
        if config.data.dims == 3 and not cls.capabilities.volumes:
            takers = [name for name in TASKS if TASKS.get(name).capabilities.volumes]
            raise ConfigError(f"config key 'data.dims' is 3: 3D training covers the tasks {', '.join(takers)}, not "
                              f"{cls.name!r}; image-to-image tasks translate volumes slice by slice (data.context "
                              "gives them neighbouring slices)")
        if (config.privacy.epsilon > 0 or config.privacy.noise > 0) and not cls.capabilities.private:
            private = [name for name in TASKS if TASKS.get(name).capabilities.private]
            raise ConfigError(f"config key 'privacy.epsilon': DP training covers the tasks {', '.join(private)}, "
                              f"not {cls.name!r}")

    @classmethod
    def load_data(cls, config: RunConfig, progress: bool = True) -> SliceSet:
        """The training data (default: ``medgan.data.load_slices`` of ``config.data``, through a prepared cache for
        folders of many volumes: ``medgan.data.cache.load_training_slices``)."""
        return load_training_slices(config.data, progress=progress)

    # ---------------------------------------------------------------------------------------------------
    # applications of a trained run

    @classmethod
    def describe(cls, config: RunConfig) -> str:
        """How a run of this task is named in tables and cards, e.g. "pix2pix (paired)"."""
        return cls.name

    @classmethod
    def evaluate(cls, run_dir: str | Path, request: EvaluationRequest) -> str:
        """What ``medgan evaluate --fake RUN`` runs: writes ``request.out`` and returns the table it prints."""
        raise ConfigError(f"task {cls.name!r} has no evaluation", run_dir)

    @classmethod
    def showcase(cls, run_dir: str | Path, progress: bool = True) -> list[str]:
        """What a demo writes after training (grids, a held-out evaluation); returns the lines it prints."""
        return []

    # ---------------------------------------------------------------------------------------------------
    # training (the loop's side)

    def set_horizon(self, steps: int) -> None:
        """The number of steps the run will make (re-estimated under a time budget); schedules follow it."""
        self.horizon = max(int(steps), 1)

    def trained_modules(self) -> dict[str, nn.Module]:
        """The modules its optimizers update, by the attribute its step reads each from (DDP and torch.compile
        wrap exactly these, and ``use_modules`` swaps them in). The default takes those of the task's
        ``modules()`` (every module it owns by name, EMA copies included) that have trainable parameters."""
        trained = {name: module for name, module in self.modules().items()  # type: ignore[attr-defined]
                   if any(parameter.requires_grad for parameter in module.parameters())}
        for name, module in trained.items():
            if getattr(self, name, None) is not module:
                raise TypeError(f"{type(self).__name__}: trained module {name!r} is not the attribute of the task of "
                                "that name; override trained_modules and use_modules")  # a bug in the task
        return trained

    def use_modules(self, modules: Mapping[str, nn.Module]) -> None:
        """Puts ``modules`` (wrapped or plain) where the step reads them: the attributes of ``trained_modules``."""
        for name, module in modules.items():
            setattr(self, name, module)

    def samplers(self) -> list[BatchSampler]:
        """Samplers the task draws from itself besides the loop's (sharded like it in data-parallel runs)."""
        return []


CLASS_CONTRACT = ("Options", "default_recipe", "inference_kind", "capabilities", "cli_options")
METHOD_CONTRACT = ("section", "check_options", "resolve", "check_config", "load_data", "describe", "evaluate",
                   "showcase", "set_horizon", "train_step", "grid", "score", "prepare_inference", "inference_state",
                   "modules", "trained_modules", "use_modules", "samplers", "state_dict", "load_state_dict")
INSTANCE_CONTRACT = ("spec", "score_rule", "groups_by_class", "nearest_domains", "attributes", "privacy")
"""Every member the loop, distributed training, DP, the CLI, inference and evaluation use (see TaskBase)."""


def check_contract(task: type) -> None:
    """Raises TypeError (a bug in the task) when ``task`` lacks a member of the contract or declares it badly."""
    missing = [name for name in CLASS_CONTRACT + METHOD_CONTRACT if not hasattr(task, name)]
    missing += [name for name in METHOD_CONTRACT if hasattr(task, name) and not callable(getattr(task, name))]
    if missing:
        raise TypeError(f"task {task.__name__} lacks {', '.join(missing)} of the task contract")
    if not (isinstance(task.Options, type) and dataclasses.is_dataclass(task.Options)):
        raise TypeError(f"task {task.__name__}: Options must be a dataclass")
    if not isinstance(task.capabilities, Capabilities) or not all(isinstance(o, TaskOption) for o in task.cli_options):
        raise TypeError(f"task {task.__name__}: capabilities must be Capabilities and cli_options TaskOptions")


def check_instance(task: Any) -> None:
    """Raises TypeError (a bug) when a built task lacks an instance member of the contract."""
    missing = [name for name in INSTANCE_CONTRACT if not hasattr(task, name)]
    if missing:
        raise TypeError(f"task {type(task).__name__} lacks {', '.join(missing)} of the task contract")


TASKS: Registry[Any] = Registry("task", load=load_tasks)
"""Training tasks by name (``medgan.training.tasks.registry.register_task`` checks the contract); the first lookup
imports the built-in families' task classes."""

Task = TaskBase
"""The contract a task fulfils: the members of ``TaskBase`` (a task need not inherit it, but must have them all)."""

__all__ = ["TASKS", "Batch", "Capabilities", "EvaluationRequest", "NoOptions", "ScoreRule", "Scorer", "Task", "TaskBase",
           "TaskOption", "check_contract", "check_instance"]
