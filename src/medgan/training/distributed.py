"""Data-parallel training with torch.distributed: the process group, per-rank seeds, batch shards, and the
DistributedDataParallel (and torch.compile) wrappers around every module a task trains.

A run is data-parallel when it is started by ``torchrun`` (``WORLD_SIZE`` > 1 in the environment): every rank
(process) builds the same task from the same seed, takes a disjoint shard of every batch (the global batch stays
``train.batch_size``), and DDP averages the gradients, so the weights stay identical on every rank. Only rank 0
writes the run directory. Backends: NCCL for CUDA tensors and gloo for CPU tensors (``"cpu:gloo,cuda:nccl"`` on
GPU machines, so object collectives on CPU work too); no home-made cluster code.

Failures: a rank that raises or is killed ends its process; torchrun's elastic agent then stops the other ranks
and prints the failed rank's error (``--max-restarts 0``, the default). A rank that hangs (a lost node, a
deadlock) makes the others fail after ``timeout`` seconds in their next collective (``init_process_group``'s
timeout), instead of waiting for ever.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterator, TypeVar

import numpy as np
import torch
from torch import nn

from medgan.config import RunConfig
from medgan.errors import ConfigError, MedganError, TrainingError

DEFAULT_TIMEOUT_S = 600.0  # seconds a rank waits for the others in one collective before the job fails
MAX_TIMEOUT_S = 7 * 24 * 3600.0  # a week: any longer wait is a typo (and past ~1e14 s Python's timedelta overflows)
SEED_MASK = (1 << 63) - 1  # torch.Generator.manual_seed takes any 64-bit value; stay in the signed range

T = TypeVar("T")


def rank_seed(seed: int, rank: int, step: int = 0, stream: int = 0) -> int:
    """The seed of ``rank``'s random ``stream`` (0: the task's; 1, 2, ...: batch augmentation), derived from the
    run seed. Rank 0's task stream at step 0 keeps ``seed`` itself, so a one-process run draws exactly what it
    drew before data parallelism existed.

    Every other stream (and, after a resume with another world size, every stream at ``step``) is independent,
    from numpy's SeedSequence over (seed, rank, step, stream): neighbouring seeds give uncorrelated streams.
    """
    if rank == 0 and step == 0 and stream == 0:
        return seed
    words = [seed & SEED_MASK, rank, step, stream]
    state = np.random.SeedSequence(words).generate_state(1, dtype=np.uint64)[0]
    return int(state) & SEED_MASK


@dataclass
class World:
    """This process's place in a (possibly one-process) run.

    Args:
        rank: this process's global rank (0 writes the run directory).
        size: the number of processes (1: not distributed).
        local_rank: the rank on this machine (which GPU it uses).
        owns_group: this object initialized the default process group (and destroys it in :meth:`close`).
    """

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @classmethod
    def from_environment(cls, timeout_s: float = DEFAULT_TIMEOUT_S) -> "World":
        """The world torchrun describes in ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``, its process group initialized
        (gloo on CPU; NCCL for CUDA tensors where CUDA is present); one process when those are unset."""
        size = int(os.environ.get("WORLD_SIZE", "1"))
        if size <= 1:
            return cls()
        rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        import torch.distributed as dist

        if dist.is_initialized():  # the caller set the group up itself
            return cls(dist.get_rank(), dist.get_world_size(), local_rank, owns_group=False)
        backend = "gloo"
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank % torch.cuda.device_count())
            backend = "cpu:gloo,cuda:nccl"
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
        return cls(rank, size, local_rank, owns_group=True)

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, device: torch.device) -> torch.device:
        """This rank's device: on CUDA the GPU of its local rank; CPU stays CPU."""
        if device.type != "cuda" or not self.distributed:
            return device
        return torch.device("cuda", self.local_rank % torch.cuda.device_count())

    def close(self) -> None:
        if self.owns_group:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
            self.owns_group = False

    # ---------------------------------------------------------------------------------------------------
    # collectives (each a no-op in a one-process world)

    def barrier(self) -> None:
        if self.distributed:
            torch.distributed.barrier()

    def broadcast(self, value: T) -> T:
        """Rank 0's ``value`` on every rank (any picklable object)."""
        if not self.distributed:
            return value
        box = [value]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: Any) -> list[Any] | None:
        """Every rank's ``value`` on rank 0 (in rank order); None on the other ranks."""
        if not self.distributed:
            return [value]
        values: list[Any] | None = [None] * self.size if self.is_main else None
        torch.distributed.gather_object(value, values, dst=0)
        return values

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """Per-key means of scalar logs over the ranks that have the key (a rank may lack one: e.g. the
        mode-seeking ratio of a shard without two images of one class)."""
        if not self.distributed:
            return values
        everyone: list[Any] = [None] * self.size
        torch.distributed.all_gather_object(everyone, sorted(values))
        keys = sorted(set().union(*everyone))
        sums = torch.tensor([[float(values.get(k, 0.0)), float(k in values)] for k in keys], dtype=torch.float64)
        torch.distributed.all_reduce(sums.reshape(-1))
        return {k: float(total) / float(count) for k, (total, count) in zip(keys, sums.tolist())}

    def agree(self, work: Callable[[], T]) -> T:
        """Runs ``work`` on rank 0 and gives its result to every rank; a MedganError it raises is raised on
        every rank (so a bad path or config stops the whole job with one message instead of a hang)."""
        if not self.distributed:
            return work()
        result, error = None, None
        if self.is_main:
            try:
                result = work()
            except MedganError as caught:
                error = caught
        result, error = self.broadcast((result, error))
        if error is not None:
            raise error
        return result

    # ---------------------------------------------------------------------------------------------------
    # batches

    def check_batch(self, batch_size: int) -> None:
        check_batch(batch_size, self.size)

    def shard(self, index: torch.Tensor, groups: int) -> torch.Tensor:
        """This rank's disjoint share of a global batch's indices.

        When the batch divides into ``groups`` strided minibatch-stddev groups on every rank, the shard takes the
        same slice of each of the ``groups`` blocks, so the groups a rank's D forms (images i, i + n/G, ...) are
        exactly those a one-process run forms on the global batch; otherwise contiguous chunks.
        """
        if not self.distributed:
            return index
        count = len(index)
        if count % (groups * self.size) == 0:
            share = count // (groups * self.size)
            blocks = index.reshape(groups, -1)
            return blocks[:, self.rank * share: (self.rank + 1) * share].reshape(-1)
        share = count // self.size
        return index[self.rank * share: (self.rank + 1) * share]


def weights_digest(modules: dict[str, nn.Module]) -> str:
    """SHA-256 over the parameters of ``modules`` (by name, in order): equal on every rank while they agree."""
    digest = hashlib.sha256()
    for name in sorted(modules):
        for key, value in modules[name].named_parameters():
            digest.update(f"{name}.{key}".encode())
            digest.update(value.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class TrainingModules:
    """The wrappers a task's ``train_step`` runs through: DistributedDataParallel and/or ``torch.compile``
    around every module the task trains (``task.trained_modules()``).

    :meth:`active` puts the wrappers where the task's step reads its modules (``task.use_modules``) for the
    duration of a training step and restores the plain modules afterwards, so the task's own code is unchanged
    and everything outside the step (state dicts, sampling, EMA copies, checkpoints) sees plain modules with
    plain parameter names.

    On CUDA, BatchNorm layers become SyncBatchNorm (statistics over the global batch, as in a one-process run).
    torch's SyncBatchNorm runs on GPUs only: on CPU (gloo) BatchNorm normalizes each rank's shard, and DDP
    broadcasts rank 0's running statistics at every forward.

    Args:
        task: the task (fulfils ``medgan.training.tasks.Task``).
        world: this process's world.
        device: the task's device.
        compile: wrap each trained module in ``torch.compile`` (the DDP wrapper where there is one).
    """

    def __init__(self, task: Any, world: World, device: torch.device, compile: bool = False) -> None:
        self.task = task
        self.plain: dict[str, nn.Module] = {}
        self.wrapped: dict[str, nn.Module] = {}
        if not world.distributed and not compile:
            return
        self.plain = dict(task.trained_modules())
        for name, module in list(self.plain.items()):
            wrapper: nn.Module = module
            if world.distributed:
                if device.type == "cuda":
                    synced = nn.SyncBatchNorm.convert_sync_batchnorm(module)
                    if synced is not module:  # only when the module itself is a BatchNorm layer
                        self.plain[name] = module = synced
                ids = [device.index] if device.type == "cuda" else None
                wrapper = nn.parallel.DistributedDataParallel(module, device_ids=ids)  # buffers: rank 0's, synced
            if compile:
                wrapper = torch.compile(wrapper)
            self.wrapped[name] = wrapper
        task.use_modules(self.plain)

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """The wrappers in the task's attributes for the block (a training step), the plain modules after."""
        if self.wrapped:
            self.task.use_modules(self.wrapped)
        try:
            yield
        finally:
            if self.plain:
                self.task.use_modules(self.plain)


def quiet_run(run: Any) -> Any:
    """The run directory as a rank other than 0 sees it: the same paths, and every write a no-op (only rank 0
    writes the run directory, its samples, logs and checkpoints)."""
    from medgan.run import RunDir

    class QuietRun(RunDir):
        def _nothing(self, *args: Any, **kwargs: Any) -> None:
            return None

        create = write_config = write_data_spec = log = append_loss = append_metrics = _nothing
        truncate_logs = discard_unfinished = remove_stale_temporaries = _nothing

        def save_checkpoint(self, which: str, state: dict[str, Any]) -> Any:
            return self.checkpoint_file(which)

    return QuietRun(run.path)


def shard_task_samplers(task: Any, world: World, seed: int) -> list[torch.Generator]:
    """Shards every sampler a task draws from itself (``task.samplers()``; unpaired translation: domain A's) as
    the loop's is sharded, each with its own per-rank augmentation stream; returns those streams (checkpoint)."""
    streams = []
    if world.distributed:
        for stream, sampler in enumerate(task.samplers(), start=2):
            sampler.shard = world.shard
            sampler.augment_rng = torch.Generator().manual_seed(rank_seed(seed, world.rank, stream=stream))
            streams.append(sampler.augment_rng)
    return streams


def rank_state(task_rng: torch.Generator, augment_rngs: list[torch.Generator], digest: str | None) -> dict[str, Any]:
    """What a rank adds to a checkpoint: its random streams (and, only for the check, its weights' digest)."""
    return {"task_rng": task_rng.get_state(), "augment_rngs": [rng.get_state() for rng in augment_rngs],
            "digest": digest}


def restore_rank(states: list[dict[str, Any]] | None, world: World, seed: int, step: int, task_rng: torch.Generator,
                 augment_rngs: list[torch.Generator]) -> str | None:
    """Restores this rank's random streams from a checkpoint's per-rank states.

    With the world size the checkpoint was written with, every rank continues its own streams exactly. With
    another world size, the streams of rank 0's task (restored with the task state) are kept and the others
    restart from seeds derived from (run seed, rank, step); the returned note says so (None when exact).
    """
    if states and len(states) == world.size:
        mine = states[world.rank]
        task_rng.set_state(mine["task_rng"])
        for rng, saved in zip(augment_rngs, mine["augment_rngs"], strict=True):
            rng.set_state(saved)
        return None
    if not states and not world.distributed:
        return None  # a one-process checkpoint from before per-rank states: the task state holds them all
    if world.rank > 0:
        task_rng.manual_seed(rank_seed(seed, world.rank, step))
    for stream, rng in enumerate(augment_rngs, start=1):
        rng.manual_seed(rank_seed(seed, world.rank, step, stream))
    written = len(states) if states else 1
    return (f"resumed with {world.size} process(es) from a checkpoint written by {written}: the weights, optimizers "
            "and batch order continue, but the per-rank random streams (noise, augmentation) restart from seeds "
            "derived from the run seed and step, so the run does not repeat the one it would have been")


def check_digests(states: list[dict[str, Any]], step: int) -> str | None:
    """Rank 0's digest when every rank's weights agree; a TrainingError naming the first rank that differs."""
    digests = [state.pop("digest", None) for state in states]
    for rank, digest in enumerate(digests[1:], start=1):
        if digest != digests[0]:
            raise TrainingError(f"rank {rank}'s weights differ from rank 0's at step {step}: the data-parallel "
                                "replicas went out of sync")
    return digests[0]


def check_timeout(seconds: float, name: str = "timeout_s") -> None:
    """Raises ConfigError unless ``seconds`` (the collective timeout, option ``name``) is in (0, a week]."""
    number = isinstance(seconds, (int, float)) and not isinstance(seconds, bool)
    if not (number and 0 < seconds <= MAX_TIMEOUT_S):  # NaN fails both comparisons
        got = f"{seconds:g}" if number else repr(seconds)
        raise ConfigError(f"{name} must be a number of seconds in (0, {MAX_TIMEOUT_S:g}], got {got}")


def check_batch(batch_size: int, processes: int) -> None:
    """Raises ConfigError unless every one of ``processes`` ranks can take an equal shard of each batch."""
    if batch_size % processes:
        raise ConfigError(f"config key 'train.batch_size' ({batch_size}) must be a multiple of the number of "
                          f"processes ({processes}): every rank takes an equal shard of each batch")


def check_world(config: RunConfig, processes: int) -> None:
    """What a run of ``processes`` data-parallel ranks needs of its config; each rank checks it, and
    ``medgan train --nproc`` before it starts them."""
    if processes <= 1:
        return
    check_batch(config.train.batch_size, processes)
    if config.privacy.epsilon > 0 or config.privacy.noise > 0:
        raise ConfigError("differentially private training (privacy.*) runs in one process; start it without "
                          "torchrun / --nproc")


def torchrun_command(argv: list[str], nproc: int) -> list[str]:
    """The ``torchrun`` command that ``medgan train --nproc N ...`` becomes: ``N`` processes on this machine
    (``--standalone``: a free local rendezvous port, so several jobs can share a machine), each running
    ``python -m medgan`` with the same arguments less ``--nproc``."""
    import sys

    rest, skip = [], False
    for item in argv:
        if skip:
            skip = False
        elif item == "--nproc":
            skip = True
        elif not item.startswith("--nproc="):
            rest.append(item)
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
            "-m", "medgan", *rest]
