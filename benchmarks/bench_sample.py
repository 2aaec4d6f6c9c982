"""Sampling throughput at 64x64 through medgan's real sampling path (``medgan.inference.sampling.generate``).

Trains a 2-step run of each recipe (the default "medgan" recipe, ngf 32; and the classic "dcgan", ngf 64) on the
MNI152 slices at 64x64 (the weights do not matter for speed), loads it back like ``medgan sample`` does, and times
``generate(run, n)``: the inference copy (BatchNorm folded into the convolutions, channels-last, fp32, 64 images
per forward pass). Beside it, in the same rounds, the path before this change: the loaded generator as it is.
Export is timed separately (PNG files of 256 images, ``write_samples``).

    python benchmarks/bench_sample.py [--n 2048] [--rounds 5] [--threads 0]

Prints the load average next to the figures: on a machine other jobs load, compare the ratio, not the rates;
images per CPU-second (this process's CPU time) are less sensitive to the other jobs than wall-clock rates.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the medgan entry point does (medgan.cli.main)

import argparse  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from medgan.config import DataConfig  # noqa: E402
from medgan.data import load_slices  # noqa: E402
from medgan.inference.sampling import generate, load_generator, write_samples  # noqa: E402
from medgan.training.loop import train  # noqa: E402
from medgan.training.tasks import resolve_config  # noqa: E402

PLAIN_BATCH = 64  # images per forward pass, as medgan.inference.noise.SAMPLE_BATCH


def plain(loaded, n: int, seed: int = 0) -> torch.Tensor:
    """The previous sampling path: the generator as loaded (BatchNorm layers, contiguous layout)."""
    noise = torch.randn(n, loaded.latent_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return torch.cat([loaded.generator(noise[i : i + PLAIN_BATCH]).float() for i in range(0, n, PLAIN_BATCH)])


def rate(function, n: int, clock=time.perf_counter) -> float:
    """Images per second of ``function`` making ``n`` images (wall clock, or this process's CPU time)."""
    started = clock()
    function()
    return n / (clock() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2048, help="images per timed call")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_slices(DataConfig(source="mni152", resolution=64), progress=False)
    print(f"CPU threads {torch.get_num_threads()} (cores {os.cpu_count()}); {args.n} images of 64x64 per call; "
          f"median of {args.rounds} rounds; load average at start {os.getloadavg()[0]:.2f}")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in ("medgan", "dcgan"):
            run = Path(folder) / name
            config = resolve_config({"data": {"source": "mni152", "resolution": 64},
                                     "train": {"steps": 2, "eval_every": 0, "sample_every": 10**6}}, name)
            train(config, run, progress=False, data=data)
            loaded = load_generator(run)
            same = torch.allclose(generate(run, 256, loaded=loaded)[0], plain(loaded, 256), atol=1e-4)
            generate(run, 64, loaded=loaded)  # warm-up
            fast, old, cpu = [], [], []
            for _ in range(args.rounds):
                fast.append(rate(lambda: generate(run, args.n, loaded=loaded), args.n))
                old.append(rate(lambda: plain(loaded, args.n), args.n))
                cpu.append(rate(lambda: generate(run, args.n, loaded=loaded), args.n, time.process_time))
            images = generate(run, 256, loaded=loaded)[0]
            export = rate(lambda: write_samples(images, loaded, Path(folder) / f"{name}-png", "png"), 256)
            rows.append((name, config.model.generator_channels, statistics.median(fast), statistics.median(old),
                         statistics.median(cpu), export, same))
    print(f"load average at end {os.getloadavg()[0]:.2f}")
    print("| recipe | ngf | medgan.inference.sampling.generate (img/s) | previous path (img/s) | ratio | generate, images per "
          "CPU-second | PNG export (img/s) | same images |")
    print("|---|---|---|---|---|---|---|---|")
    for name, width, fast, old, cpu, export, same in rows:
        print(f"| {name} | {width} | {fast:,.0f} | {old:,.0f} | {fast / old:.2f}x | {cpu:,.0f} | {export:,.0f} | "
              f"{'yes' if same else 'NO'} |")


if __name__ == "__main__":
    main()
