"""The one step-based training loop, shared by every task.

The loop feeds batches, keeps the budget (steps and/or minutes), logs, writes sample grids, scores, and
checkpoints; the task (``medgan.training.tasks``) owns networks, optimizers, losses and phases. The run
directory's layout belongs to ``medgan.run.RunDir``. The loop never looks at the task's name and never
edits the config.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from medgan.checkpoint import load_checkpoint
from medgan.config import RunConfig, from_dict, to_dict
from medgan.data import SliceSet, load_slices
from medgan.errors import CheckpointError, ConfigError, MedganError, TrainingError
from medgan.run import RunDir
from medgan.training.batches import BatchSampler
from medgan.training.guard import first_nonfinite_log, first_nonfinite_tensor
from medgan.training.precision import resolve_device
from medgan.training.tasks import TASKS, Scorer, Task
from medgan.utils import atomic_path, torch_threads
from medgan.visuals import save_grid, save_loss_curve

HORIZON_PROBE_STEPS = 10  # steps timed before a time budget's horizon is first estimated


@dataclass
class TrainResult:
    """What a finished run produced."""

    run_dir: Path
    steps: int  # training steps done in total
    seconds: float  # wall time of this invocation's training loop
    images_per_s: float  # real images through the task per second, averaged over this invocation
    checkpoint: Path  # latest checkpoint
    grid: Path  # final sample grid
    loss_curve: Path
    best_score: float | None  # best in-training score, if scoring ran
    score_key: str | None = None  # what best_score is (e.g. "fid")

    def summary(self) -> str:
        """The lines ``medgan train`` prints."""
        lines = [f"run directory : {self.run_dir}",
                 f"steps         : {self.steps} in {self.seconds:.1f} s ({self.images_per_s:.1f} images/s)",
                 f"checkpoint    : {self.checkpoint}", f"sample grid   : {self.grid}", f"loss curve    : {self.loss_curve}"]
        if self.best_score is not None and self.score_key is not None:
            features = " (offline features)" if self.score_key == "fid" else ""
            lines.append(f"{'best ' + self.score_key.upper():<14}: {self.best_score:.4g}{features}")
        return "\n".join(lines)


class Budget:
    """When training ends, and the horizon (total steps) that schedules should aim at.

    Args:
        steps: step limit (0: none).
        minutes: wall-clock limit (0: none).
        start_step: the step this invocation starts at (resume).
    """

    def __init__(self, steps: int, minutes: float, start_step: int) -> None:
        self.steps = steps if steps > 0 else math.inf
        self.start_step = start_step
        self.started = time.monotonic()
        self.deadline = self.started + 60.0 * minutes if minutes > 0 else math.inf

    def finished(self, step: int) -> bool:
        return step >= self.steps or time.monotonic() >= self.deadline

    def horizon(self, step: int) -> int:
        """``train.steps``, or under a time budget the steps it allows at the speed measured so far."""
        if math.isinf(self.deadline):
            return int(self.steps)
        done, elapsed = step - self.start_step, time.monotonic() - self.started
        if done < HORIZON_PROBE_STEPS:
            return int(min(self.steps, step + 1000))  # a placeholder until the speed is measured
        allowed = step + done / elapsed * max(self.deadline - time.monotonic(), 0.0)
        return int(min(self.steps, max(allowed, step + 1)))


def check_names(config: RunConfig) -> None:
    """Checks every registered name a config uses (task, networks, loss, augmentation) before anything runs."""
    TASKS.get(config.task).check_config(config)


def train(config: RunConfig | None, run_dir: str | Path, resume: bool = False, progress: bool = True,
          data: SliceSet | None = None, budget: dict[str, Any] | None = None,
          scorer: Scorer | None = None) -> TrainResult:
    """Trains the configured task and writes everything into ``run_dir``.

    Args:
        config: the resolved run config (ignored on resume: the run's own config is used, with ``budget``).
        run_dir: the run directory (created if needed).
        resume: continue from ``run_dir/checkpoints/latest.pt`` with its RNG states, optimizer states and step.
        progress: show a progress bar.
        data: an already loaded SliceSet (default: ``load_slices(config.data)``).
        budget: on resume, ``{"steps": N}`` and/or ``{"minutes": M}`` to extend or limit the budget.
        scorer: the in-training score (e.g. ``medgan.metrics.training_score``); None trains without scoring,
            and best.pt is then the final checkpoint.

    Returns:
        A TrainResult with paths and throughput.

    Raises:
        MedganError subclasses for bad data, bad config, bad checkpoints and non-finite losses or weights.
    """
    run = RunDir(run_dir)
    run.check_writable()
    state = None
    if resume:
        state = load_checkpoint(run.latest, required=("config", "data_spec", "inference", "task", "loop"))
        try:
            config = from_dict(state["config"])
        except (ConfigError, KeyError, TypeError) as error:
            raise CheckpointError(f"checkpoint config is incompatible ({error})", run.latest) from None
        if budget:
            config = replace(config, train=replace(config.train, **budget))
    else:
        if config is None:
            raise ConfigError("a new run needs a config")
        run.check_new()
    check_names(config)
    # The run seeds torch's global generator (network initialisation draws from it); fork_rng restores the
    # caller's generator state afterwards, so calling train() leaves no trace on the process.
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch_threads(config.train.threads), torch.random.fork_rng(devices=devices):
        torch.manual_seed(config.train.seed)
        try:
            return _train(config, run, state, progress, data, scorer)
        except BaseException:
            run.discard_unfinished()  # a new run that failed before its first checkpoint leaves nothing behind
            raise


def _train(config: RunConfig, run: RunDir, state: dict[str, Any] | None, progress: bool, data: SliceSet | None,
           scorer: Scorer | None) -> TrainResult:
    if data is None:
        data = load_slices(config.data, progress=progress)
    device = resolve_device(config.train.device)
    task: Task = TASKS.get(config.task)(config, data, device, torch.Generator().manual_seed(config.train.seed))
    sampler = BatchSampler(data, config.train.batch_size, config.data,
                           torch.Generator().manual_seed(config.train.seed + 1), task.attributes,
                           task.groups_by_class, task.nearest_domains)
    run.create()
    run.write_config(config)
    run.write_data_spec(task.spec)
    step, best_score = 0, None
    if state is not None:
        try:
            task.load_state_dict(state["task"], str(run.latest))
            sampler.load_state_dict(state["loop"]["sampler"])
            step, best_score = int(state["loop"]["step"]), state["loop"].get("best_score")
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise CheckpointError(f"checkpoint does not fit this run ({type(error).__name__}: {error})",
                                  run.latest) from None
        run.truncate_logs(step)
        run.remove_stale_temporaries()
        run.log(f"resumed at step {step}")
    else:
        run.log(f"new run: {len(data)} images of {task.spec.resolution}x{task.spec.resolution}, task {config.task}, "
                f"model {config.model.name}, loss {config.loss.adversarial}")
    rule = task.score_rule if scorer is not None and config.train.eval_every > 0 else None

    def checkpoint(which: str) -> Path:
        task.prepare_inference()
        bad = first_nonfinite_tensor(task.modules())
        if bad is not None:
            message = f"{bad} became non-finite at step {step}; training stopped"
            if run.latest.exists():
                message += f"; the last good checkpoint is kept at {run.latest}"
            run.log(message)
            raise TrainingError(message, run.path)
        return run.save_checkpoint(which, {
            "config": to_dict(config), "data_spec": task.spec.to_dict(), "inference": task.inference_state(),
            "task": task.state_dict(), "loop": {"step": step, "best_score": best_score,
                                                "sampler": sampler.state_dict()}})

    def snapshot(name: str) -> Path:
        task.prepare_inference()
        images, columns = task.grid()
        return save_grid(images, run.samples / name, columns=columns)

    limits = Budget(config.train.steps, config.train.minutes, step)
    task.set_horizon(limits.horizon(step))
    bar = tqdm(total=limits.horizon(step), initial=step, disable=not progress, unit="step", dynamic_ncols=True,
               desc="train")
    first_step = step
    interval: dict[str, list[float]] = {}
    interval_start = time.monotonic()
    try:
        while not limits.finished(step):
            logs = task.train_step(sampler.next(), step)
            bad = first_nonfinite_log(logs)
            if bad is not None:
                last = f"; the last good checkpoint is kept at {run.latest}" if run.latest.exists() else ""
                message = f"{bad} became {logs[bad]} at step {step + 1}; training stopped{last}"
                run.log(message)
                raise TrainingError(message, run.path)
            step += 1
            for key, value in logs.items():
                interval.setdefault(key, []).append(value)
            bar.update(1)
            if step - first_step == HORIZON_PROBE_STEPS or step % config.train.log_every == 0:
                horizon = limits.horizon(step)
                task.set_horizon(horizon)
                if bar.total != horizon:
                    bar.total = horizon
                    bar.refresh()
            if step % config.train.log_every == 0 or limits.finished(step):
                now = time.monotonic()
                steps_in_interval = len(next(iter(interval.values())))
                record = {"step": step, **{k: sum(v) / len(v) for k, v in interval.items()},
                          "images_per_s": steps_in_interval * config.train.batch_size / max(now - interval_start, 1e-9),
                          "elapsed_s": now - limits.started}
                run.append_loss(record)
                bar.set_postfix({k[5:] or k: f"{v:.3f}" for k, v in record.items() if k.startswith("loss_")}
                                | {"ips": f"{record['images_per_s']:.0f}"})
                interval, interval_start = {}, time.monotonic()
            if rule is not None and step % config.train.eval_every == 0:
                task.prepare_inference()
                try:
                    scores = task.score(scorer)
                except MedganError as error:
                    rule, scores = None, None  # the data cannot be scored; say so once and train on
                    run.log(f"evaluation switched off: {error.one_line()}")
                    bar.write(f"note: evaluation switched off: {error.one_line()}")
                if scores is not None:
                    run.append_metrics({"step": step, **scores})
                    run.log(f"step {step}: " + ", ".join(f"{k} {v:.4g}" for k, v in scores.items()))
                    if rule.improves(scores[rule.key], best_score):
                        best_score = scores[rule.key]
                        checkpoint("best")
            if step % config.train.sample_every == 0:
                snapshot(f"step_{step:07d}.png")
            if step % config.train.checkpoint_every == 0:
                checkpoint("latest")
    finally:
        bar.close()
    seconds = time.monotonic() - limits.started
    checkpoint("latest")
    if not run.best.exists() or best_score is None:
        # Without scores there is nothing to rank by: the best checkpoint is the final one.
        with atomic_path(run.best) as tmp:
            shutil.copyfile(run.latest, tmp)
    grid = snapshot("final.png")
    curve = save_loss_curve(run.losses_file, run.loss_curve)
    images_per_s = (step - first_step) * config.train.batch_size / max(seconds, 1e-9)
    run.log(f"finished at step {step} after {seconds:.1f} s ({images_per_s:.1f} images/s)")
    key = task.score_rule.key if task.score_rule is not None and best_score is not None else None
    return TrainResult(run.path, step, seconds, images_per_s, run.latest, grid, curve, best_score, key)
