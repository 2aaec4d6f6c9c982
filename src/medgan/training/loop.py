"""The one step-based training loop, shared by every task.

The loop feeds batches, keeps the budget (steps or minutes), logs, writes sample grids, evaluates and
checkpoints; the task (see ``medgan.training.tasks``) owns networks, losses and phases. A run directory holds:

    config.yaml          the resolved config
    data.json            intensity mapping, spacing, class names: how to write samples back in physical units
    checkpoints/         latest.pt and best.pt (atomic writes)
    samples/             grids over training (fixed noise), final.png
    losses.jsonl         one JSON object per log interval
    metrics.jsonl        one JSON object per evaluation
    train.log            human-readable log
    loss_curve.png       L_D and L_G over steps
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from medgan.config import RunConfig, from_dict, save_yaml, to_dict
from medgan.data import SliceSet, classic_augment, load_slices
from medgan.errors import CheckpointError, ConfigError, MedganError, TrainingError
from medgan.networks.common import MINIBATCH_GROUP
from medgan.training.checkpoint import load_checkpoint, save_checkpoint
from medgan.training.tasks import TASKS, Batch
from medgan.utils import atomic_path, atomic_write_text, exists
from medgan.visuals import save_grid, save_loss_curve

GRID_SIZE = 64  # images in each sample grid (8 x 8)
EVAL_IMAGES = 256  # synthetic images per in-training evaluation


@dataclass
class TrainResult:
    """What a finished run produced."""

    run_dir: Path
    steps: int  # generator steps done in total
    seconds: float  # wall time of this invocation's training loop
    images_per_s: float  # real images through D per second, averaged over this invocation
    checkpoint: Path  # latest checkpoint
    grid: Path  # final sample grid
    loss_curve: Path
    best_score: float | None  # best evaluation FID, if evaluation ran


def resolve_device(name: str) -> torch.device:
    """The torch device for ``train.device`` ("auto" picks CUDA when present)."""
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ConfigError("config key 'train.device' is cuda but no CUDA device is available")
        return torch.device("cuda")
    return torch.device("cpu")


def data_meta(data: SliceSet) -> dict[str, Any]:
    """The parts of a SliceSet that sampling needs later (stored in data.json and in checkpoints).

    Continuous attributes are stored with their mean and standard deviation: G and D see standardized
    values, and ``medgan sample --attribute NAME=VALUE`` takes raw ones.
    """
    meta = {
        "mapping": data.mapping.to_dict(),
        "spacing": list(data.spacing),
        "class_names": list(data.class_names),
        "images": len(data),
        "channels": int(data.images.shape[1]),
        "resolution": int(data.images.shape[-1]),
    }
    if exists(data.attributes):
        meta["attribute_names"] = list(data.attribute_names)
        meta["attribute_mean"] = data.attributes.mean(0).tolist()
        # A constant attribute carries no information; unit scale keeps it at 0 instead of dividing by 0.
        meta["attribute_std"] = [v if v > 1e-6 else 1.0 for v in data.attributes.std(0, unbiased=False).tolist()]
    return meta


def standardized_attributes(data: SliceSet, meta: dict[str, Any]) -> torch.Tensor | None:
    """The data's attributes as (value - mean) / std with the stored statistics, or None without attributes."""
    if not exists(data.attributes):
        return None
    return (data.attributes - torch.tensor(meta["attribute_mean"])) / torch.tensor(meta["attribute_std"])


class BatchSampler:
    """Shuffled epochs over an in-memory SliceSet, with classic augmentation; its state is checkpointable.

    The whole dataset is a small tensor, so batches are gathered by index in-process: on a 2-core CPU,
    DataLoader workers would only compete with the training step for the same cores.
    """

    def __init__(self, data: SliceSet, config: RunConfig, rng: torch.Generator,
                 attributes: torch.Tensor | None = None) -> None:
        self.images = data.images
        self.labels = data.labels
        self.attributes = attributes  # standardized, or None
        self.config = config
        self.rng = rng
        self.order = torch.randperm(len(data), generator=rng)
        self.position = 0
        if exists(self.labels):
            self.members = {int(c): torch.nonzero(self.labels == c)[:, 0] for c in self.labels.unique()}

    def next(self) -> Batch:
        """The next batch (wrapping into a new shuffled epoch as needed)."""
        index = self._class_grouped() if exists(self.labels) else self._shuffled()
        data = self.config.data
        images = classic_augment(self.images[index], data.flip, data.rotate_degrees, data.scale, self.rng)
        labels = self.labels[index] if exists(self.labels) else None
        attributes = self.attributes[index] if exists(self.attributes) else None
        return Batch(images=images, labels=labels, attributes=attributes)

    def _class_grouped(self) -> torch.Tensor:
        """Indices laid out as MINIBATCH_GROUP blocks that repeat one random label sequence.

        Strided minibatch-stddev groups (image i, i + N/G, ...) then hold one class each, so D can see a
        generator that ignores its noise within a class (class differences would otherwise mask it).
        Images are drawn uniformly at random within their class (with replacement).
        """
        size = self.config.train.batch_size
        per_block = -(-size // MINIBATCH_GROUP)
        pick = torch.randint(0, len(self.labels), (per_block,), generator=self.rng)
        sequence = self.labels[pick]  # class frequencies follow the data
        blocks = []
        for _ in range(MINIBATCH_GROUP):
            chosen = []
            for label in sequence.tolist():
                members = self.members[label]
                chosen.append(members[torch.randint(0, len(members), (1,), generator=self.rng)])
            blocks.append(torch.cat(chosen))
        return torch.cat(blocks)[:size]

    def _shuffled(self) -> torch.Tensor:
        """The next ``batch_size`` indices of shuffled epochs."""
        size = self.config.train.batch_size
        chosen = []
        while size > 0:
            if self.position >= len(self.order):
                self.order = torch.randperm(len(self.images), generator=self.rng)
                self.position = 0
            take = self.order[self.position : self.position + size]
            chosen.append(take)
            self.position += len(take)
            size -= len(take)
        return torch.cat(chosen)

    def state_dict(self) -> dict[str, Any]:
        return {"order": self.order.clone(), "position": self.position, "rng": self.rng.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.order = state["order"].clone()
        self.position = int(state["position"])
        self.rng.set_state(state["rng"])


class Run:
    """Paths and log writers of a run directory."""

    def __init__(self, run_dir: str | Path) -> None:
        self.dir = Path(run_dir)
        self.checkpoints = self.dir / "checkpoints"
        self.samples = self.dir / "samples"
        self.latest = self.checkpoints / "latest.pt"
        self.best = self.checkpoints / "best.pt"
        self.losses = self.dir / "losses.jsonl"
        self.metrics = self.dir / "metrics.jsonl"
        self.log_file = self.dir / "train.log"

    def create(self) -> None:
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        self.samples.mkdir(parents=True, exist_ok=True)

    def append(self, path: Path, record: dict[str, Any]) -> None:
        """Appends one JSON line (a single write, so a crash leaves at most a torn last line)."""
        with path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def log(self, message: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with self.log_file.open("a", encoding="utf-8") as handle:
            handle.write(f"{stamp} {message}\n")


def _check_new_run(run: Run) -> None:
    if run.latest.exists():
        raise ConfigError(
            "run directory already holds a checkpoint; pass --resume to continue it or choose another --out",
            run.dir,
        )


def _evaluate(task: Any, data: SliceSet, noise: torch.Generator, conditions_for: Any) -> dict[str, float]:
    """In-training score (lower FID is better) of EMA samples against a fixed subset of real images.

    Raises:
        MedganError: when the data cannot be scored (e.g. fewer images than feature dimensions).
    """
    from medgan.metrics import training_score

    count = min(EVAL_IMAGES, len(data))
    z = torch.randn(count, task.config.model.latent_dim, generator=noise)
    fake = task.sample(z, *conditions_for(count, noise))
    return training_score(data.images[:count], fake)


def train(config: RunConfig, run_dir: str | Path, resume: bool = False, progress: bool = True,
          data: SliceSet | None = None, budget: dict[str, Any] | None = None) -> TrainResult:
    """Trains the configured task and writes everything into ``run_dir``.

    Args:
        config: the resolved run config (ignored on resume except for ``budget``: the run's own config is used).
        run_dir: the run directory (created if needed).
        resume: continue from ``run_dir/checkpoints/latest.pt`` with its RNG states, optimizer states and step.
        progress: show a progress bar.
        data: an already loaded SliceSet (default: ``load_slices(config.data)``).
        budget: on resume, ``{"steps": N}`` and/or ``{"minutes": M}`` to extend or limit the budget.

    Returns:
        A TrainResult with paths and throughput.

    Raises:
        MedganError subclasses for bad data, bad config, bad checkpoints and non-finite losses.
    """
    run = Run(run_dir)
    state = None
    if resume:
        state = load_checkpoint(run.latest)
        try:
            config = from_dict(state["config"])
        except (ConfigError, KeyError, TypeError) as error:
            raise CheckpointError(f"checkpoint config is incompatible ({error})", run.latest) from None
        if budget:
            config = replace(config, train=replace(config.train, **budget))
    else:
        _check_new_run(run)
    if config.train.threads > 0:
        torch.set_num_threads(config.train.threads)
    torch.manual_seed(config.train.seed)
    if data is None:
        data = load_slices(config.data, progress=progress)
    if config.task == "conditional" and not exists(data.labels):
        raise ConfigError("task 'conditional' needs labelled data (a labels CSV, a labelled layout or source)",
                          config.data.source)
    if config.task == "conditional" and config.model.num_classes != len(data.class_names):
        config = replace(config, model=replace(config.model, num_classes=len(data.class_names)))
    num_attributes = len(data.attribute_names) if config.task == "conditional" and exists(data.attributes) else 0
    if config.model.num_attributes != num_attributes:
        config = replace(config, model=replace(config.model, num_attributes=num_attributes))
    device = resolve_device(config.train.device)
    run.create()
    save_yaml(config, run.dir / "config.yaml")
    meta = data_meta(data)
    atomic_write_text(run.dir / "data.json", json.dumps(meta, indent=2))

    task_rng = torch.Generator().manual_seed(config.train.seed)
    data_rng = torch.Generator().manual_seed(config.train.seed + 1)
    task = TASKS.get(config.task)(config, int(data.images.shape[1]), device, task_rng)
    attributes = standardized_attributes(data, meta) if num_attributes else None
    sampler = BatchSampler(data, config, data_rng, attributes)
    step, best_score = 0, None
    if state is not None:
        task.load_state_dict(state["task"], str(run.latest))
        sampler.load_state_dict(state["sampler"])
        step, best_score = int(state["step"]), state.get("best_score")
        run.log(f"resumed at step {step}")
    else:
        run.log(f"new run: {len(data)} images of {meta['resolution']}x{meta['resolution']}, task {config.task}, "
                f"model {config.model.name}, loss {config.loss.adversarial}")

    num_classes = len(data.class_names)

    def conditions_for(count: int, rng: torch.Generator) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Balanced class labels for samples of a conditional task and, with attributes, the standardized
        attributes of a random real image of each sample's class."""
        if config.task != "conditional":
            return None, None
        labels = torch.arange(count) % num_classes
        if attributes is None:
            return labels, None
        picks = [sampler.members[int(label)] for label in labels]
        rows = torch.stack([m[torch.randint(0, len(m), (1,), generator=rng)][0] for m in picks])
        return labels, attributes[rows]

    grid_noise = torch.randn(GRID_SIZE, config.model.latent_dim, generator=torch.Generator().manual_seed(1234))
    grid_labels, grid_attributes = conditions_for(GRID_SIZE, torch.Generator().manual_seed(1235))

    def checkpoint(path: Path) -> None:
        task.prepare_inference(torch.Generator().manual_seed(4321))
        save_checkpoint(path, {"task": task.state_dict(), "sampler": sampler.state_dict(), "step": step,
                               "best_score": best_score, "config": to_dict(config), "data": meta})

    def snapshot(name: str) -> Path:
        task.prepare_inference(torch.Generator().manual_seed(4321))
        return save_grid(task.sample(grid_noise, grid_labels, grid_attributes), run.samples / name, columns=8)

    total_steps = config.train.steps
    deadline = time.monotonic() + 60.0 * config.train.minutes if config.train.minutes > 0 else math.inf
    bar = tqdm(total=total_steps, initial=step, disable=not progress, unit="step", dynamic_ncols=True,
               desc="train")
    started = time.monotonic()
    first_step = step
    interval: dict[str, list[float]] = {}
    interval_start = time.monotonic()
    evaluating = config.train.eval_every > 0
    try:
        while step < total_steps and time.monotonic() < deadline:
            batch = sampler.next()
            logs: dict[str, float] = {}
            for _ in range(config.optim.d_steps):
                logs.update(task.discriminator_step(batch, step))
            logs.update(task.generator_step(batch, step))
            task.end_step(step)
            bad = [key for key, value in logs.items() if not math.isfinite(value)]
            if bad:
                last = f"; the last good checkpoint is kept at {run.latest}" if run.latest.exists() else ""
                message = f"{bad[0]} became {logs[bad[0]]} at step {step + 1}; training stopped{last}"
                run.log(message)
                raise TrainingError(message, run.dir)
            step += 1
            for key, value in logs.items():
                interval.setdefault(key, []).append(value)
            bar.update(1)
            if config.train.minutes > 0 and step - first_step == 20:
                # With a time budget, re-estimate the total so the bar's ETA is the real one.
                rate = (step - first_step) / (time.monotonic() - started)
                bar.total = min(total_steps, step + int(rate * max(deadline - time.monotonic(), 0)))
                bar.refresh()
            if step % config.train.log_every == 0 or step == total_steps:
                now = time.monotonic()
                record = {"step": step, **{k: sum(v) / len(v) for k, v in interval.items()}}
                steps_in_interval = len(next(iter(interval.values())))
                record["images_per_s"] = steps_in_interval * config.train.batch_size / max(now - interval_start, 1e-9)
                record["elapsed_s"] = now - started
                run.append(run.losses, record)
                bar.set_postfix(d=f"{record['loss_d']:.3f}", g=f"{record['loss_g']:.3f}",
                                ips=f"{record['images_per_s']:.0f}")
                interval, interval_start = {}, time.monotonic()
            if evaluating and step % config.train.eval_every == 0:
                task.prepare_inference(torch.Generator().manual_seed(4321))
                try:
                    scores = _evaluate(task, data, torch.Generator().manual_seed(99), conditions_for)
                except MedganError as error:
                    evaluating, scores = False, None  # the data cannot be scored; say so once and train on
                    run.log(f"evaluation switched off: {error.one_line()}")
                    bar.write(f"note: evaluation switched off: {error.one_line()}")
                if scores is not None:
                    run.append(run.metrics, {"step": step, **scores})
                    run.log(f"step {step}: " + ", ".join(f"{k} {v:.4g}" for k, v in scores.items()))
                    if best_score is None or scores["fid"] < best_score:
                        best_score = scores["fid"]
                        checkpoint(run.best)
            if step % config.train.sample_every == 0:
                snapshot(f"step_{step:07d}.png")
            if step % config.train.checkpoint_every == 0:
                checkpoint(run.latest)
    finally:
        bar.close()
    seconds = time.monotonic() - started
    checkpoint(run.latest)
    if not run.best.exists() or best_score is None:
        # Without evaluation there is no score to rank by: the best checkpoint is the final one.
        with atomic_path(run.best) as tmp:
            shutil.copyfile(run.latest, tmp)
    grid = snapshot("final.png")
    curve = save_loss_curve(run.losses, run.dir / "loss_curve.png")
    images_per_s = (step - first_step) * config.train.batch_size * config.optim.d_steps / max(seconds, 1e-9)
    run.log(f"finished at step {step} after {seconds:.1f} s ({images_per_s:.1f} images/s)")
    return TrainResult(run.dir, step, seconds, images_per_s, run.latest, grid, curve, best_score)
