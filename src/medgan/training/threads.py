"""torch's CPU thread count during training: fixed, or automatic (``train.threads: 0``) under contention.

Why automatic: torch's threads meet at barriers inside every parallel operation, so a step runs at the pace of
its slowest thread. When another CPU-bound process shares a 2-core machine, one of two training threads is
descheduled at any moment and the other waits for it at each barrier. oneDNN's backward convolutions wait in
their own spinning barriers, which ``OMP_WAIT_POLICY=PASSIVE`` does not reach: each one then costs a scheduler
time slice, and a step got many times slower than on one core alone (bench_train.py). With as many threads as
cores the other processes leave free, training degrades in proportion to the cores it gets.

The load is first measured over a 0.1 s wait before training, then re-checked every few seconds, from the CPU
time the other processes used (``/proc/stat`` minus this process's own CPU time; the load average where
``/proc/stat`` is missing).
It never exceeds the thread count torch had when training started (the caller's choice, or torch's default),
and the previous count is restored afterwards: the process keeps no trace of it. Runs of a few steps keep
torch's count (``TrainingThreads.for_run``), so that they reproduce exactly.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any, Callable

import torch

CHECK_SECONDS = 2.0  # wall time between re-checks of the automatic thread count
FIRST_LOOK_SECONDS = 0.1  # the load is first measured over this short wait before training starts
AUTO_MIN_STEPS = 200  # shorter step budgets (without a time budget) keep torch's thread count: see for_run
PROC_STAT = Path("/proc/stat")


def available_cores() -> int:
    """The CPUs this process may run on (its affinity mask; the CPU count where affinity is unknown)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def pick_threads(cores: int, other_busy: float, ceiling: int) -> int:
    """Threads for training on ``cores`` CPUs while other processes keep ``other_busy`` of them busy.

    The free cores are rounded to the nearest whole core (one competitor on 2 cores, seen as 0.67 busy while
    it shares them with 2 training threads, leaves 1), at least 1 and at most ``ceiling``.
    """
    free = math.floor(cores - max(other_busy, 0.0) + 0.5)
    return max(1, min(free, cores, ceiling))


def busy_cpu_seconds(cpus: set[int] | None = None, stat: Path = PROC_STAT) -> float | None:
    """CPU seconds spent not idle since boot, over ``cpus`` (all CPUs if None); None without ``/proc/stat``."""
    try:
        lines = stat.read_text().splitlines()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total = 0
    for line in lines:
        name, *fields = line.split()
        if not name.startswith("cpu") or name == "cpu" or (cpus is not None and int(name[3:]) not in cpus):
            continue
        values = [int(value) for value in fields[:8]]  # user nice system idle iowait irq softirq steal
        total += sum(values) - values[3] - values[4]
    return total / ticks if total else None


class OtherLoad:
    """Cores kept busy by other processes between successive calls (busy CPU time minus this process's own)."""

    def __init__(self) -> None:
        try:
            self.cpus: set[int] | None = set(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            self.cpus = None
        self.last = self._reading()

    def _reading(self) -> tuple[float, float, float | None]:
        return time.monotonic(), time.process_time(), busy_cpu_seconds(self.cpus)

    def __call__(self) -> float:
        now = self._reading()
        then, self.last = self.last, now
        wall = max(now[0] - then[0], 1e-6)
        own = (now[1] - then[1]) / wall
        if now[2] is None or then[2] is None:
            return max(0.0, os.getloadavg()[0] - own)
        return max(0.0, (now[2] - then[2]) / wall - own)


class TrainingThreads:
    """A context for the training loop that sets torch's CPU thread count and restores it afterwards.

    Args:
        threads: a fixed count, or 0 for automatic (re-checked by :meth:`update`).
        load: returns the cores other processes kept busy since its last call (default :class:`OtherLoad`).
        every: seconds between automatic re-checks.
        automatic: False keeps torch's thread count where ``threads`` is 0.
    """

    def __init__(self, threads: int, load: Callable[[], float] | None = None, every: float = CHECK_SECONDS,
                 automatic: bool = True) -> None:
        self.requested = threads
        self.automatic = automatic
        self.load = load
        self.every = every
        self.previous = 0
        self.ceiling = 0
        self.cores = available_cores()
        self.changes = 0  # automatic changes made so far
        self.next_check = math.inf

    def __enter__(self) -> "TrainingThreads":
        self.previous = torch.get_num_threads()
        if self.requested > 0:
            torch.set_num_threads(self.requested)
        elif self.automatic and self.previous > 1:  # with one thread allowed there is nothing to choose
            self.ceiling = self.previous
            if self.load is None:
                self.load = OtherLoad()
                time.sleep(FIRST_LOOK_SECONDS)
            self.next_check = time.monotonic()
            self.update()
        return self

    @classmethod
    def for_run(cls, train: Any) -> "TrainingThreads":
        """The threads of a run with ``train`` (its TrainConfig): automatic for runs with a time budget or at least
        AUTO_MIN_STEPS steps. Thread counts change float rounding (oneDNN splits its reductions by thread), so a
        short run keeps torch's count and reproduces exactly; a fixed ``train.threads`` does that for any run."""
        timed = train.minutes > 0 or train.cpu_minutes > 0 or train.steps <= 0
        return cls(train.threads, automatic=timed or train.steps >= AUTO_MIN_STEPS)

    def update(self) -> int:
        """Re-checks the automatic count when it is due (cheap otherwise); returns the current thread count."""
        now = time.monotonic()
        if now >= self.next_check and self.load is not None:
            self.next_check = now + self.every
            wanted = pick_threads(self.cores, self.load(), self.ceiling)
            if wanted != torch.get_num_threads():
                torch.set_num_threads(wanted)
                self.changes += 1
        return torch.get_num_threads()

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self.previous)
