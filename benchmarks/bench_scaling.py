"""Data-parallel scaling on the CPU: one process vs N gloo processes (torchrun) on the same machine and the same
global batch, with one thread per process, and one process with N threads for comparison.

On a small CPU expect little or no gain: the processes share the same cores and memory bandwidth, and every step
adds a gradient all-reduce (gloo, through the loopback interface) for G and D. The set-ups are timed alternately,
in rounds, and the medians compared, so load from other work on the machine hits them alike. (On a machine
crowded with other processes, a process with several OpenMP threads can be far slower than one with a single
thread: every parallel region waits for its slowest thread, and a descheduled thread stalls it.)
On a machine with GPUs, ``bench_gpu.py`` measures 1 vs all GPUs.

    python benchmarks/bench_scaling.py [--processes 2] [--rounds 3] [--steps 20] [--resolution 64]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_gpu import measure  # noqa: E402  (a sibling script)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32, help="global batch")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--model", default="dcgan")
    args = parser.parse_args()
    setups = [(1, 1), (args.processes, 1), (1, args.processes)]  # (processes, threads per process)
    rates: dict[tuple[int, int], list[float]] = {setup: [] for setup in setups}
    for round_number in range(args.rounds):
        for processes, threads in setups:
            settings = argparse.Namespace(steps=args.steps, warmup=args.warmup, batch_size=args.batch_size,
                                          compile=False, threads=threads)
            found = measure(args.model, args.resolution, settings, "cpu", processes)
            if found is not None:
                rates[(processes, threads)].append(found["images_per_s"])
                print(f"round {round_number + 1}: {processes} process(es) x {threads} thread(s): "
                      f"{found['images_per_s']:.1f} images/s", flush=True)
    medians = {setup: statistics.median(values) for setup, values in rates.items() if values}
    reference = medians.get((1, 1))
    for (processes, threads), value in medians.items():
        ratio = f", {value / reference:.2f}x one process x one thread" if reference else ""
        print(f"median: {processes} process(es) x {threads} thread(s): {value:.1f} images/s{ratio}")

if __name__ == "__main__":
    main()
