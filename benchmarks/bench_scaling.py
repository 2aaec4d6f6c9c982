"""Data-parallel scaling on the CPU: one process vs N gloo processes (torchrun) on the same machine, the same
global batch and the same total number of threads (one process with N threads vs N processes with one each).

On a small CPU expect little or no gain: the processes share the same cores and memory bandwidth, and every step
adds a gradient all-reduce (gloo, through the loopback interface) for G and D. The two set-ups are timed
alternately, in rounds, and the medians compared, so load from other work on the machine hits both alike.
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
    rates: dict[int, list[float]] = {1: [], args.processes: []}
    for round_number in range(args.rounds):
        for processes in rates:
            settings = argparse.Namespace(steps=args.steps, warmup=args.warmup, batch_size=args.batch_size,
                                          compile=False, threads=args.processes // processes)
            found = measure(args.model, args.resolution, settings, "cpu", processes)
            if found is not None:
                rates[processes].append(found["images_per_s"])
                print(f"round {round_number + 1}: {processes} process(es) x {settings.threads} thread(s): "
                      f"{found['images_per_s']:.1f} images/s", flush=True)
    one, many = statistics.median(rates[1]), statistics.median(rates[args.processes])
    print(f"median: 1 process {one:.1f} images/s, {args.processes} processes {many:.1f} images/s, "
          f"ratio {many / one:.2f}")


if __name__ == "__main__":
    main()
