"""What the two image-to-image tasks (paired and unpaired translation) share: the keys of their sections that
mean the same in both and the ``--domain-a`` option (declared torch-free in ``translation_options``), modality
dropout, and the modality-translation evaluation on
held-out true pairs (``medgan.evaluation.translation_eval``), to which each task gives its own domains."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from medgan.config import RunConfig
from medgan.data.spec import DataSpec
from medgan.errors import ConfigError
from medgan.losses import get_adversarial
from medgan.networks.translation import TRANSLATORS
from medgan.training.augment import POLICIES
from medgan.training.tasks.base import TASKS, EvaluationRequest
from medgan.training.tasks.translation_options import (DOMAIN_A, TranslationOptions,  # noqa: F401  (re-exported)
                                                       check_translation_options)


def check_translation_names(config: RunConfig) -> None:
    """The registered names an image-to-image task uses (translator, loss, augmentation) exist."""
    TRANSLATORS.get(config.model.name)
    get_adversarial(config.loss.adversarial)
    for name in config.augment.policy:
        POLICIES.get(name)


def check_context_channels(spec: DataSpec, images: tuple[str, ...], context: int, where: str) -> None:
    """Refuses training data whose image input domains do not hold ``2 * context + 1`` slices each (e.g. a prepared
    cohort cache made with another ``data.context``, or tiles given through the API): the run would record a context
    its model never saw."""
    for name in images:
        channels = spec.domain(name).channels
        if channels != 2 * context + 1:
            raise ConfigError(f"config key 'data.context' is {context}, so the input {name!r} needs {2 * context + 1} "
                              f"slice channel(s), but the training data has {channels}; load the data with the "
                              "same data.context", where)


def modality_dropout(count: int, modalities: int, chance: float, rng: torch.Generator) -> torch.Tensor:
    """``[count, modalities]`` availability: each 0 with ``chance``, but never all 0 for one image."""
    available = (torch.rand(count, modalities, generator=rng) >= chance).float()
    empty = available.sum(1) == 0
    if bool(empty.any()):
        keep = torch.randint(0, modalities, (int(empty.sum()),), generator=rng)
        available[empty.nonzero()[:, 0], keep] = 1.0
    return available


def describe_run(path: str | Path) -> str:
    """How the run at ``path`` is named in tables: its task's ``describe`` of its config."""
    from medgan.run import RunDir

    config = RunDir.existing(path).read_config()
    return TASKS.get(config.task).describe(config)


def evaluate_modalities(run_dir: str | Path, request: EvaluationRequest, target: str, sources: tuple[str, ...],
                        direction: str | None = None, context: int | None = None) -> str:
    """``medgan evaluate --fake RUN`` for modality translation: the run (in ``direction``, for two-way runs)
    against held-out true pairs of ``target`` <- ``sources`` (the task's domains for that direction), their
    inputs with ``context`` neighbouring slices on each side (default: the run's ``data.context``).

    ``request.real`` naming one of those sources (or None) means their held-out ``split="test"``; otherwise
    ``request.real`` is the target folder and ``request.inputs`` the input folders, matched by file name.
    The image-set options that mean nothing here (--train, --no-real-images, --features) are refused.
    """
    from medgan.evaluation.translation_data import held_out_pairs_config
    from medgan.evaluation.translation_eval import evaluate_translation
    from medgan.evaluation.translation_report import format_translation_table
    from medgan.run import RunDir

    request.refuse(("--train", "--no-real-images", "--features", "--members", "--non-members"),
                   "does not apply to a translation run: it is compared with held-out true pairs", run_dir)
    config = RunDir.existing(run_dir).read_config()
    own = (target, *sources)
    real = None if (request.real in own and not request.inputs) else request.real
    data = config.data if context is None else replace(config.data, context=context)
    held = held_out_pairs_config(data, target, sources, real, tuple(request.inputs))
    metrics = evaluate_translation(run_dir, request.out, direction, held_out_config=held,
                                   compare=tuple(request.compare), max_slices=request.max_images,
                                   progress=request.progress, label=describe_run(run_dir),
                                   compare_labels=tuple(describe_run(path) for path in request.compare))
    out = Path(request.out)
    return "\n".join([format_translation_table(metrics), f"wrote {out / 'metrics.json'} and {out / 'report.html'}"])

