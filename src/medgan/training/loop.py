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

from medgan.checkpoint import load_checkpoint
from medgan.config import RunConfig, to_dict, validate
from medgan.data import SliceSet
from medgan.errors import CheckpointError, ConfigError, MedganError, TrainingError
from medgan.progress import progress_bar, write as progress_write
from medgan.run import RunDir
from medgan.training.batches import BatchSampler
from medgan.training.distributed import (DEFAULT_TIMEOUT_S, TrainingModules, World, check_digests, check_timeout,
                                         check_world, quiet_run, rank_seed, rank_state, restore_rank,
                                         shard_task_samplers, weights_digest)
from medgan.training.guard import first_nonfinite_log, first_nonfinite_tensor
from medgan.training.precision import resolve_device
from medgan.training.privacy import privacy_section
from medgan.training.tasks import TASKS, Scorer, Task, reload_config
from medgan.training.tasks.base import check_instance
from medgan.training.threads import TrainingThreads
from medgan.utils import atomic_path
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
    weights_digest: str | None = None  # SHA-256 of the trained weights (equal on every rank of a data-parallel run)

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
        cpu_minutes: limit on the CPU time of this process (``time.process_time``, all threads; 0: none). On a
            shared machine it is fairer than wall time: other people's work does not shorten the run.
    """

    def __init__(self, steps: int, minutes: float, start_step: int, cpu_minutes: float = 0.0) -> None:
        self.steps = steps if steps > 0 else math.inf
        self.start_step = start_step
        self.started = time.monotonic()
        self.deadline = self.started + 60.0 * minutes if minutes > 0 else math.inf
        self.cpu_started = time.process_time()
        self.cpu_deadline = self.cpu_started + 60.0 * cpu_minutes if cpu_minutes > 0 else math.inf

    def finished(self, step: int) -> bool:
        return step >= self.steps or time.monotonic() >= self.deadline or time.process_time() >= self.cpu_deadline

    def horizon(self, step: int) -> int:
        """``train.steps``, or under a time budget the steps it allows at the speed measured so far."""
        clocks = [(clock, started, deadline) for clock, started, deadline in
                  ((time.monotonic, self.started, self.deadline), (time.process_time, self.cpu_started,
                                                                   self.cpu_deadline)) if not math.isinf(deadline)]
        if not clocks:
            return int(self.steps)
        done = step - self.start_step
        if done < HORIZON_PROBE_STEPS:
            return int(min(self.steps, step + 1000))  # a placeholder until the speed is measured
        allowed = min(step + done / max(clock() - started, 1e-9) * max(deadline - clock(), 0.0)
                      for clock, started, deadline in clocks)
        return int(min(self.steps, max(allowed, step + 1)))


def train(config: RunConfig | None, run_dir: str | Path, resume: bool = False, progress: bool = True,
          data: SliceSet | None = None, budget: dict[str, Any] | None = None,
          scorer: Scorer | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> TrainResult:
    """Trains the configured task and writes everything into ``run_dir``.

    Started by ``torchrun`` (``WORLD_SIZE`` > 1), every process calls this and the run is data-parallel (see
    ``medgan.training.distributed``): rank 0 checks and writes the run directory, and its errors stop every rank.

    Args:
        config: the resolved run config (ignored on resume: the run's own config is used, with ``budget``).
        run_dir: the run directory (created if needed).
        resume: continue from ``run_dir/checkpoints/latest.pt`` with its RNG states, optimizer states and step.
        progress: show a progress bar.
        data: an already loaded SliceSet (default: ``load_slices(config.data)``).
        budget: on resume, ``{"steps": N}`` and/or ``{"minutes": M}`` to extend or limit the budget.
        scorer: the in-training score (e.g. ``medgan.metrics.training_score``); None trains without scoring,
            and best.pt is then the final checkpoint.
        timeout_s: data-parallel runs: seconds a rank waits for the others in one collective before failing.

    Returns:
        A TrainResult with paths and throughput.

    Raises:
        MedganError subclasses for bad data, bad config, bad checkpoints and non-finite losses or weights.
    """
    check_timeout(timeout_s)
    world = World.from_environment(timeout_s)
    try:
        run = RunDir(run_dir)
        config, state = world.agree(lambda: _open(run, config, resume, budget))
        # The run seeds torch's global generator (network initialisation draws from it); fork_rng restores the
        # caller's generator state afterwards, so calling train() leaves no trace on the process.
        devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
        with TrainingThreads.for_run(config.train) as threads, torch.random.fork_rng(devices=devices):
            torch.manual_seed(config.train.seed)
            run = run if world.is_main else quiet_run(run)
            try:
                return _train(config, run, state, progress and world.is_main, data, scorer, world, threads)
            except BaseException:
                run.discard_unfinished()  # a new run that failed before its first checkpoint leaves nothing behind
                raise
    finally:
        world.close()


def check_start(config: RunConfig | None, run_dir: str | Path, resume: bool = False,
                budget: dict[str, Any] | None = None) -> RunConfig:
    """What ``train`` checks before it reads data or writes anything (the run directory; on resume, the checkpoint
    against the run's own files, and the new budget), for a caller that starts training elsewhere (``medgan train
    --nproc``). Returns the config the run would train. Raises MedganError subclasses, as ``train`` does."""
    return _open(RunDir(run_dir), config, resume, budget)[0]


def _open(run: RunDir, config: RunConfig | None, resume: bool,
          budget: dict[str, Any] | None) -> tuple[RunConfig, dict[str, Any] | None]:
    """The checked config and, on resume, the checkpoint, before anything is written (rank 0's work)."""
    run.check_writable()
    state = None
    if resume:
        state = load_checkpoint(run.latest, required=("config", "data_spec", "inference", "task", "loop"))
        try:
            config = reload_config(state["config"])
        except (ConfigError, KeyError, TypeError) as error:
            raise CheckpointError(f"checkpoint config is incompatible ({error})", run.latest) from None
        run.check_checkpoint(state["config"], state["data_spec"], run.latest)  # not one from another run
        if budget:
            config = replace(config, train=replace(config.train, **budget))
            validate(config)
    else:
        if config is None:
            raise ConfigError("a new run needs a config")
        run.check_new()
    return TASKS.get(config.task or TASKS.default).resolve(config), state


def _train(config: RunConfig, run: RunDir, state: dict[str, Any] | None, progress: bool, data: SliceSet | None,
           scorer: Scorer | None, world: World, threads: TrainingThreads | None = None) -> TrainResult:
    seed = config.train.seed
    check_world(config, world.size)
    family = TASKS.get(config.task)
    if data is None:
        data = family.load_data(config, progress)  # a task may read its data its own way (two domains)
    device = world.device(resolve_device(config.train.device))
    task_rng = torch.Generator().manual_seed(rank_seed(seed, world.rank))  # per-rank noise and augmentation
    task: Task = family(config, data, device, task_rng)
    check_instance(task)
    # Every rank draws the same global batch order (seed + 1) and augments its own shard (its own stream).
    augment_rng = torch.Generator().manual_seed(rank_seed(seed, world.rank, stream=1)) if world.distributed else None
    sampler = BatchSampler(data, config.train.batch_size, config.data, torch.Generator().manual_seed(seed + 1),
                           task.attributes, task.groups_by_class, task.nearest_domains,
                           world.shard if world.distributed else None, augment_rng)
    trained = TrainingModules(task, world, device, config.train.compile)
    augment_rngs = ([augment_rng] if augment_rng is not None else []) + shard_task_samplers(task, world, seed)
    privacy = task.privacy  # a DP task's engine (medgan.training.privacy), else None
    if privacy is not None:
        sampler = privacy.sampler  # Poisson-sampled privacy units (patients), one slice each
    run.create()
    run.write_config(config)
    run.write_data_spec(task.spec)
    step, best_score = 0, None
    if state is not None:
        try:
            task.load_state_dict(state["task"], str(run.latest))
            sampler.load_state_dict(state["loop"]["sampler"])
            step, best_score = int(state["loop"]["step"]), state["loop"].get("best_score")
            note = restore_rank(state["loop"].get("ranks"), world, seed, step, task_rng, augment_rngs)
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise CheckpointError(f"checkpoint does not fit this run ({type(error).__name__}: {error})",
                                  run.latest) from None
        run.truncate_logs(step)
        run.remove_stale_temporaries()
        run.log(f"resumed at step {step}")
        if note is not None:
            run.log(f"note: {note}")
            if world.is_main:
                progress_write(f"note: {note}")
    else:
        shape = "x".join([str(task.spec.resolution)] * task.spec.dims)
        what = "volumes" if task.spec.dims == 3 else "images"
        run.log(f"new run: {len(data)} {what} of {shape}, task {config.task}, "
                f"model {config.model.name}, loss {config.loss.adversarial}")
    if world.distributed:
        run.log(f"data-parallel: {world.size} processes, {config.train.batch_size // world.size} images each per "
                f"step, {device.type}")
    if privacy is not None:
        run.log(privacy.describe())
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
        nonlocal digest
        digest = weights_digest(task.modules()) if world.distributed or which == "final" else None
        ranks = world.gather(rank_state(task_rng, augment_rngs, digest))
        if ranks is None:  # ranks other than 0 write nothing
            return run.latest
        digest = check_digests(ranks, step)
        return run.save_checkpoint("latest" if which == "final" else which, {
            "config": to_dict(config), "data_spec": task.spec.to_dict(), "inference": task.inference_state(),
            "task": task.state_dict(), **privacy_section(privacy),
            "loop": {"step": step, "best_score": best_score, "world_size": world.size,
                     "sampler": sampler.state_dict(), "ranks": ranks}})

    def snapshot(name: str) -> Path:
        task.prepare_inference()  # on every rank: BatchNorm standing statistics may be a collective
        images, columns = task.grid()
        return save_grid(images, run.samples / name, columns=columns) if world.is_main else run.samples / name

    # With a clock in the budget, ranks could disagree on when time is up (or on the horizon): rank 0 decides.
    timed = world.distributed and (config.train.minutes > 0 or config.train.cpu_minutes > 0)

    def finished() -> bool:
        return world.broadcast(limits.finished(step)) if timed else limits.finished(step)

    limits = Budget(config.train.steps, config.train.minutes, step, config.train.cpu_minutes)
    task.set_horizon(limits.horizon(step))
    bar = progress_bar(total=limits.horizon(step), initial=step, disable=not progress, unit="step",
                       dynamic_ncols=True, desc="train")
    first_step, digest = step, None
    interval: dict[str, list[float]] = {}
    interval_start = time.monotonic()
    try:
        while not finished():
            if privacy is not None and privacy.spent():  # the next step would pass the target epsilon
                message = f"privacy budget spent: epsilon {privacy.epsilon():.4g} at step {step}; training stopped"
                run.log(message)
                bar.write(message)
                break
            with trained.active():
                logs = task.train_step(sampler.next().to(device), step)
            bad = first_nonfinite_log(logs)
            if bad is not None:
                last = f"; the last good checkpoint is kept at {run.latest}" if run.latest.exists() else ""
                message = f"{bad} became {logs[bad]} at step {step + 1}; training stopped{last}"
                run.log(message)
                raise TrainingError(message, run.path)
            step += 1
            if threads is not None:
                threads.update()  # train.threads 0: follows the cores other processes leave free
            for key, value in logs.items():
                interval.setdefault(key, []).append(value)
            bar.update(1)
            if step - first_step == HORIZON_PROBE_STEPS or step % config.train.log_every == 0:
                horizon = world.broadcast(limits.horizon(step)) if timed else limits.horizon(step)
                task.set_horizon(horizon)
                if bar.total != horizon:
                    bar.total = horizon
                    bar.refresh()
            if step % config.train.log_every == 0 or finished():
                now = time.monotonic()
                steps_in_interval = len(next(iter(interval.values())))
                means = world.mean({k: sum(v) / len(v) for k, v in interval.items()})  # over ranks
                record = {"step": step, **means,
                          "images_per_s": steps_in_interval * config.train.batch_size / max(now - interval_start, 1e-9),
                          "elapsed_s": now - limits.started}
                if privacy is not None:
                    record["dp_epsilon"] = privacy.epsilon()
                run.append_loss(record)
                bar.set_postfix({k[5:] or k: f"{v:.3f}" for k, v in record.items() if k.startswith("loss_")}
                                | {"ips": f"{record['images_per_s']:.0f}"})
                interval, interval_start = {}, time.monotonic()
            if rule is not None and step % config.train.eval_every == 0:
                task.prepare_inference()
                try:
                    scores = world.agree(lambda: task.score(scorer))  # rank 0 scores; every rank learns it
                except MedganError as error:
                    rule, scores = None, None  # the data cannot be scored; say so once and train on
                    run.log(f"evaluation switched off: {error.one_line()}")
                    if world.is_main:
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
    checkpoint("final")
    if world.is_main and (not run.best.exists() or best_score is None):
        # Without scores there is nothing to rank by: the best checkpoint is the final one.
        with atomic_path(run.best) as tmp:
            shutil.copyfile(run.latest, tmp)
    grid = snapshot("final.png")
    curve = save_loss_curve(run.losses_file, run.loss_curve) if world.is_main else run.loss_curve
    world.barrier()  # every rank returns once rank 0 has written everything
    images_per_s = (step - first_step) * config.train.batch_size / max(seconds, 1e-9)
    if privacy is not None:
        run.log(f"privacy: epsilon {privacy.epsilon():.4g} at delta {privacy.delta:.3g} after {privacy.steps} DP steps")
    run.log(f"finished at step {step} after {seconds:.1f} s ({images_per_s:.1f} images/s)")
    key = task.score_rule.key if task.score_rule is not None and best_score is not None else None
    return TrainResult(run.path, step, seconds, images_per_s, run.latest, grid, curve, best_score, key, digest)
