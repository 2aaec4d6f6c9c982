"""``medgan.train``, ``medgan.load``, ``medgan.evaluate`` and ``medgan.compare``: the CLI's commands for notebooks,
with its defaults."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from medgan.api.model import Model
from medgan.errors import ConfigError


@dataclass(frozen=True)
class Run:
    """A finished training run.

    Attributes:
        path: the run directory (config.yaml, checkpoints/, samples/, metrics.jsonl, train.log).
        config: the resolved ``medgan.config.RunConfig``.
        result: the loop's ``TrainResult`` (steps, seconds, best score, checkpoint paths).
    """

    path: Path
    config: Any
    result: Any

    def load(self, which: str = "best") -> Model:
        """The run's model (``which``: "best", by in-training score, or "latest")."""
        return load(self.path, which=which)

    def summary(self) -> str:
        """The lines ``medgan train`` prints at the end."""
        return str(self.result.summary())


class Metrics(Mapping[str, Any]):
    """What ``medgan evaluate`` writes to ``metrics.json``, as a read-only mapping.

    Keys are the top-level sections (e.g. ``distribution``, ``diversity``, ``memorization`` for image sets;
    per-method tables for translation runs). A dotted key reads inside them: ``metrics["distribution.fid"]``.

    Attributes:
        out: the report folder (``report.html``, ``metrics.json``, ``DATA_CARD.json``), or None when
            ``evaluate`` was called without ``out`` (then nothing was kept on disk).
        table: the text table the CLI prints.
    """

    def __init__(self, values: dict[str, Any], out: Path | None, table: str) -> None:
        self._values = values
        self.out = out
        self.table = table

    def __getitem__(self, key: str) -> Any:
        node: Any = self._values
        for part in key.split("."):
            if not isinstance(node, Mapping) or part not in node:
                raise KeyError(key)
            node = node[part]
        return node

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    @property
    def headline(self) -> dict[str, Any]:
        """The headline numbers by dotted key (image-set evaluations; empty for translation runs)."""
        return dict(self._values.get("headline") or {})

    def __repr__(self) -> str:
        return self.table


def _dotted(overrides: Mapping[str, Any] | Sequence[str] | None) -> dict[str, Any]:
    """``{"optim.lr_generator": 1e-4}``, nested mappings or ``["train.steps=10"]`` -> nested config values."""
    from medgan.config import deep_update, parse_overrides

    if overrides is None:
        return {}
    if isinstance(overrides, (list, tuple)):
        return parse_overrides([str(item) for item in overrides])
    if not isinstance(overrides, Mapping):
        raise ConfigError(f"overrides must be a mapping or a list of KEY=VALUE strings, got {type(overrides).__name__}")
    values: dict[str, Any] = {}
    for key, value in overrides.items():
        parts = str(key).split(".")
        node: dict[str, Any] = {}
        leaf = node
        for part in parts[:-1]:
            leaf = leaf.setdefault(part, {})
        leaf[parts[-1]] = value
        values = deep_update(values, node)
    return values


def train(data: str | Path, out: str | Path, *, task: str | None = None, model: str | None = None,
          steps: int | None = None, minutes: float | None = None, resolution: int | None = None,
          labels: str | Path | None = None, config: str | Path | None = None,
          overrides: Mapping[str, Any] | Sequence[str] | None = None, seed: int | None = None,
          progress: bool = True) -> Run:
    """Trains a GAN, as ``medgan train`` does: the same recipes, defaults and FID-scored ``best.pt``.

    Config values are applied in the CLI's order: the recipe (``model``), the YAML file (``config``), the
    arguments, then ``overrides``.

    Args:
        data: a data path (folder of NIfTI/DICOM/PNG/npy, a prepared cohort cache) or an embedded source
            (``mni152``, ``ct-phantom``, ``ct-lesions``, ...).
        out: the run directory (a new folder).
        task: ``unconditional`` (default), ``conditional``, ``paired`` or ``unpaired`` (default: the one the
            recipe or the overrides select).
        model: a recipe (``medgan``, ``dcgan``, ``standard``, ``pix2pix``, ``cyclegan``) or an architecture name.
        steps: training steps (default 2,000). Exclusive with ``minutes``.
        minutes: a wall-clock budget instead of steps.
        resolution: image side (32, 64, 128 or 256).
        labels: CSV of file,label[,attributes] for conditional training.
        config: a YAML config file (see ``configs/``).
        overrides: config values by dotted key, e.g. ``{"data.window": "brain", "paired.patch": 96}``, or
            ``["data.window=brain"]`` as ``--set`` takes them. Task options go here too
            (``{"data.degrade": "lowdose:0.25"}`` with ``task="paired"``).
        seed: the run's seed.
        progress: progress bars.

    Returns:
        The finished ``Run``.

    Raises:
        MedganError: bad data, bad config (the message names the key), or a non-finite loss.
    """
    from medgan.config import deep_update
    from medgan.metrics import training_score
    from medgan.training.loop import train as train_loop
    from medgan.training.tasks import check_user_values, resolve_config, user_values

    if steps is not None and minutes is not None:
        raise ConfigError("give steps or minutes, not both")
    given: dict[str, Any] = {"data": {"source": str(data)}}
    if resolution is not None:
        given["data"]["resolution"] = resolution
    if labels is not None:
        given["data"]["labels"] = str(labels)
    if steps is not None:
        given["train"] = {"steps": steps, "minutes": 0.0}
    if minutes is not None:
        given["train"] = {"minutes": minutes, "steps": 0}
    if seed is not None:
        given.setdefault("train", {})["seed"] = seed
    if task is not None:
        given["task"] = task
    config_file = None if config is None else str(config)
    values, recipe, file_values = user_values(config_file, model, deep_update(given, _dotted(overrides)))
    check_user_values(values, file_values, model, recipe, config_file, option="model")
    resolved = resolve_config(values, recipe)
    result = train_loop(resolved, out, progress=progress, scorer=training_score)
    return Run(Path(out), resolved, result)


def load(source: str | Path, *, which: str = "best", direction: str | None = None) -> Model:
    """Loads a run directory, a model bundle or a zoo model by name (``medgan zoo`` lists them), offline.

    Args:
        source: a run directory, a bundle folder (``medgan bundle``) or a zoo name such as ``"brain-t1"``.
        which: runs: "best" (by in-training score) or "latest".
        direction: runs that translate both ways: "a2b" (default) or "b2a".

    Returns:
        A ``Model``: ``.sample(n)`` for noise-to-image models, ``.translate(image)`` for translators.

    Raises:
        ConfigError: a bare name that is neither a path nor a zoo model (the message lists the zoo).
        CheckpointError: a path with no run or bundle, or a corrupt one.
    """
    from medgan.inference import load_model
    from medgan.zoo import locate

    path = locate(source)  # a bare name that is no path and no zoo model: ConfigError listing the zoo
    model = load_model(path, which, direction=direction)
    return Model(path, model, which)


def evaluate(real: str | Path, fake: str | Path, *, out: str | Path | None = None, features: str = "offline",
             train: str | Path | None = None, max_images: int | None = None, progress: bool = True, dims: int = 2,
             resolution: int | None = None, overrides: Mapping[str, Any] | Sequence[str] | None = None) -> Metrics:
    """Evaluates synthetic images or a trained run, as ``medgan evaluate`` does.

    Image sets (a folder of synthetic images, or a noise-to-image run) get fidelity, diversity and memorization
    (FID/KID on ``features``, precision/recall/density/coverage, MS-SSIM, nearest-training SSIM). A translation run
    is evaluated on held-out pairs of its own data against classic baselines, with bootstrap intervals. With
    ``dims=3``, ``real``, ``fake`` and ``train`` are volumes (NIfTI files, DICOM series, NumPy stacks
    ``[N, D, H, W]``), scored by three-plane FID/KID, 3D diversity and 3D memorization
    (``medgan.evaluation.volumes``, as ``medgan evaluate --dims 3``): ``metrics["volume_distribution.fid"]``.

    Args:
        real: real images: a data path, an embedded source or a run directory (its training data).
        fake: a folder of synthetic images, or a run directory.
        out: the report folder; None writes to a temporary folder that is removed after reading ``metrics.json``.
        features: ``offline`` (default; not a paper's Inception FID), ``inception[:weights.pth]`` or
            ``torchscript:model.pt``.
        train: training images for the memorization audit (default: ``real``, leave-one-out).
        max_images: at most this many images (``dims=3``: volumes) per set.
        progress: progress bars.
        dims: 2 for images, 3 for volumes.
        resolution: ``dims=3``: side of the cube every volume is resampled to (default 32, as the CLI's).
        overrides: ``dims=3``: intensity options as for ``--set``, e.g. ``{"data.window": "brain"}`` or
            ``["data.window=brain"]`` (``medgan.config.volume_rules.INTENSITY_KEYS``).

    Returns:
        ``Metrics``.
    """
    import json

    from medgan.evaluation.evaluate import evaluate as evaluate_sets
    from medgan.evaluation.evaluate import format_metrics
    from medgan.run import RunDir
    from medgan.training.tasks import TASKS, EvaluationRequest

    if dims not in (2, 3):
        raise ConfigError(f"dims must be 2 (images) or 3 (volumes), got {dims!r}")
    if dims == 2 and (resolution is not None or overrides):
        raise ConfigError("resolution and overrides are for dims=3: 2D images are scored at the synthetic images' "
                          "resolution, with the data config of the run that made them (or the defaults)")
    folder = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="medgan-evaluate-")) / "report"
    try:
        if dims == 3:
            values, table = _evaluate_volumes(real, fake, folder, features, train, max_images, progress, resolution,
                                              overrides)
        elif RunDir.is_run(fake):  # a trained run: its task says what evaluating it means (as the CLI)
            task = TASKS.get(RunDir(fake).read_config().task)
            request = EvaluationRequest(out=folder, real=str(real), features=features,
                                        train=None if train is None else str(train), max_images=max_images,
                                        progress=progress)
            table = str(task.evaluate(fake, request))
            values = json.loads((folder / "metrics.json").read_text())
        else:
            values = evaluate_sets(real, fake, folder, features=features, train=train, progress=progress,
                                   max_images=max_images)
            table = format_metrics(values, f"wrote {folder}")
    finally:
        if out is None:
            shutil.rmtree(folder.parent, ignore_errors=True)
    return Metrics(values, None if out is None else folder, table)


def _evaluate_volumes(real: str | Path, fake: str | Path, folder: Path, features: str, train: str | Path | None,
                      max_volumes: int | None, progress: bool, resolution: int | None,
                      overrides: Mapping[str, Any] | Sequence[str] | None) -> tuple[dict, str]:
    """``evaluate(..., dims=3)``: the metrics and the table the CLI prints."""
    from medgan.config.volume_rules import VOLUME_SIDE
    from medgan.evaluation.volumes import evaluate_volumes, format_volume_metrics, intensity_config
    from medgan.inference.noise import MAX_SAMPLES

    if max_volumes is not None and not 1 <= max_volumes <= MAX_SAMPLES:
        raise ConfigError(f"max_images must be between 1 and {MAX_SAMPLES}, got {max_volumes}")
    values = evaluate_volumes(real, fake, folder, features=features, train=train,
                              resolution=VOLUME_SIDE if resolution is None else resolution,
                              data_config=intensity_config(_dotted(overrides)), progress=progress,
                              max_volumes=max_volumes)
    return values, format_volume_metrics(values, f"wrote {folder}")


def compare(run_a: str | Path, run_b: str | Path, *, real: str | Path, out: str | Path | None = None,
            features: str = "offline", max_images: int | None = None, progress: bool = True) -> Metrics:
    """Compares two noise-to-image runs against one real set, as ``medgan evaluate --compare RUN_A RUN_B`` does.

    Both runs generate ``max_images`` images (default 1000) with the same seed; for each headline metric (FID, KID,
    precision, recall, density, coverage, pairwise MS-SSIM, FRD, spectrum top-band ratio) the result holds A, B,
    A - B with its paired 95% interval and a verdict ("A better", "B better" or "not separated at 95%").

    Args:
        run_a: run directory of the first noise-to-image run (A).
        run_b: run directory of the second noise-to-image run (B).
        real: real images: a data path, an embedded source or a run directory (its training data).
        out: the report folder; None writes to a temporary folder that is removed after reading ``metrics.json``.
        features: ``offline`` (default), ``inception[:weights.pth]``, ``swav[:weights.pth.tar]``,
            ``radimagenet[:weights.pth]`` or ``torchscript:model.pt``.
        max_images: images generated per run (and at most this many real images).
        progress: progress bars.

    Returns:
        ``Metrics``; ``metrics["comparison"]`` is the list of rows.
    """
    from medgan.evaluation.compare import compare_runs, format_comparison

    folder = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="medgan-compare-")) / "report"
    try:
        values = compare_runs(run_a, run_b, real, folder, features=features, max_images=max_images,
                              progress=progress)
    finally:
        if out is None:
            shutil.rmtree(folder.parent, ignore_errors=True)
    return Metrics(values, None if out is None else folder, format_comparison(values, f"wrote {folder}"))
