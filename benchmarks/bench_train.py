"""Training throughput: (1) the classic DCGAN as a plain fp32 loop vs medgan's trainer; (2) medgan's trainer alone
and beside a CPU-bound competitor process.

(1) Both train the same DCGAN architecture (ngf = ndf = 64, nz = 100) at the same batch size on the same MNI152
axial slices at 64x64, with BCE-on-logits and Adam(2e-4, beta1 0.5). The reference is the loop of
pytorch/examples' dcgan written plainly (NCHW, fp32, separate real and fake passes, D's weight gradients
computed in the G step). medgan's trainer adds channels_last, frozen D weights in the G step and bf16 autocast
where the CPU runs bf16 natively. The two are timed alternately, in rounds, and the medians are compared.
medgan's time is the loop's own wall clock (``elapsed_s`` in losses.jsonl, logging included) after 3 warm-up
steps. Images per CPU-second of this process are printed too: with --threads 1 they are the figure least
disturbed by other jobs on a shared machine.

(2) The liver demo's config (conditional, AC head, batch 32) trains for a fixed wall time, idle and then beside a
busy-looping Python process, with ``train.threads: 0`` (automatic, the default) and with 2 fixed threads (the
previous default on 2 cores). Contended / idle is the figure of merit; rounds alternate the three.

(3) One bf16 and one fp32 convolution's backward pass beside the competitor, with 1 and 2 threads: where the
contended slowdown with 2 threads comes from (oneDNN's bf16 backward convolutions wait in spinning barriers).

    python benchmarks/bench_train.py [--steps 20] [--rounds 3] [--seconds 6] [--threads N]
                                     [--only ratio|contention|barrier|profile]

OMP_WAIT_POLICY is PASSIVE unless set (as ``medgan`` sets it): ``OMP_WAIT_POLICY=ACTIVE python ...`` shows what
spinning OpenMP threads cost under contention. Load averages are printed next to the figures: on a machine that
other jobs load, compare ratios measured in one run, not rates across runs.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the medgan entry point does (medgan.cli.main)

import argparse  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from typing import Iterator  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from medgan.config import DataConfig, RunConfig, from_dict  # noqa: E402
from medgan.data import load_slices  # noqa: E402
from medgan.demos import demo_config  # noqa: E402
from medgan.networks.dcgan import DCGANDiscriminator, DCGANGenerator  # noqa: E402
from medgan.training.loop import train  # noqa: E402
from medgan.training.precision import cpu_has_fast_bf16  # noqa: E402
from medgan.training.tasks import resolve_config  # noqa: E402
from medgan.visuals import read_jsonl  # noqa: E402

WARMUP_STEPS = 3
QUIET = {"sample_every": 10**6, "checkpoint_every": 10**6, "eval_every": 0, "log_every": 1}


def reference_loop(images: torch.Tensor, steps: int, batch_size: int) -> tuple[float, float]:
    """pytorch/examples-style DCGAN loop in plain fp32; returns (images per wall second, images per CPU second of
    this process) over ``steps`` after the warm-up steps."""
    generator = DCGANGenerator(resolution=64, latent_dim=100, channels=64)
    discriminator = DCGANDiscriminator(resolution=64, channels=64)
    optimizer_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optimizer_g = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    started = cpu_started = 0.0
    for step in range(steps + WARMUP_STEPS):
        if step == WARMUP_STEPS:
            started, cpu_started = time.perf_counter(), time.process_time()
        real = images[torch.randint(0, len(images), (batch_size,))]
        ones, zeros = torch.ones(batch_size), torch.zeros(batch_size)
        # (1) Update D: maximize log D(x) + log(1 - D(G(z)))
        discriminator.zero_grad()
        loss_real = F.binary_cross_entropy_with_logits(discriminator(real), ones)
        loss_real.backward()
        fake = generator(torch.randn(batch_size, 100))
        loss_fake = F.binary_cross_entropy_with_logits(discriminator(fake.detach()), zeros)
        loss_fake.backward()
        optimizer_d.step()
        # (2) Update G: maximize log D(G(z))
        generator.zero_grad()
        loss_g = F.binary_cross_entropy_with_logits(discriminator(fake), ones)
        loss_g.backward()
        optimizer_g.step()
    images = steps * batch_size
    return images / (time.perf_counter() - started), images / (time.process_time() - cpu_started)


def trainer_rate(config: RunConfig, data) -> tuple[float, float]:
    """medgan's trainer on ``config``: (images/s after the warm-up steps by the loop's own clock, CPU seconds of
    this process in the whole call)."""
    with tempfile.TemporaryDirectory() as run_dir:
        started = time.process_time()
        train(config, run_dir, progress=False, data=data)
        spent = time.process_time() - started
        records = read_jsonl(f"{run_dir}/losses.jsonl")
    if not records:
        return 0.0, spent
    # Timed from the end of the warm-up steps, or of the first step where a slow machine made fewer steps.
    first = records[min(WARMUP_STEPS, len(records) - 1) - 1] if len(records) > 1 else {"step": 0, "elapsed_s": 0.0}
    seconds = records[-1]["elapsed_s"] - first["elapsed_s"]
    return (records[-1]["step"] - first["step"]) * config.train.batch_size / seconds, spent


def trainer_cpu_rate(config: RunConfig, data, spent: float) -> float:
    """Images per CPU second of this process from a run of ``config`` that took ``spent`` CPU seconds, less a run
    of the warm-up steps alone, so that set-up, the final checkpoint and the grid cancel out."""
    with tempfile.TemporaryDirectory() as run_dir:
        started = time.process_time()
        train(from_dict({"train": {"steps": WARMUP_STEPS}}, base=config), run_dir, progress=False, data=data)
        warmup = time.process_time() - started
    return (config.train.steps - WARMUP_STEPS) * config.train.batch_size / max(spent - warmup, 1e-9)


@contextmanager
def competitor() -> Iterator[None]:
    """One CPU-bound process (a Python busy loop) running beside the block."""
    process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        yield
    finally:
        process.kill()
        process.wait()


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            names = [line.split(":", 1)[1].strip() for line in info if line.startswith("model name")]
        return names[0] if names else "unknown CPU"
    except OSError:
        return "unknown CPU"


def load() -> str:
    return "{:.2f} / {:.2f} / {:.2f}".format(*os.getloadavg())


def ratio_part(args: argparse.Namespace) -> list[str]:
    """The plain fp32 loop and medgan's trainer at the classic recipe, alternately; returns table rows."""
    data = load_slices(DataConfig(source="mni152", resolution=64), progress=False)
    # The same thread count for both (not automatic): (1) compares arithmetic, (2) compares thread policies.
    config = resolve_config({"data": {"source": "mni152"}, "train": {"steps": args.steps + WARMUP_STEPS, **QUIET,
                                                                    "batch_size": args.batch_size,
                                                                    "threads": torch.get_num_threads()}},
                            "dcgan")
    print(f"(1) {len(data)} MNI152 axial slices at 64x64; batch {args.batch_size}; {args.steps} timed steps; "
          f"load average before {load()}")
    if torch.get_num_threads() > 1 and os.getloadavg()[0] >= len(os.sched_getaffinity(0)):
        print("    note: the machine is busy; with several threads each, both loops (bf16 most) wait in barriers "
              "for descheduled threads: --threads 1 compares their arithmetic")
    reference, ours, reference_cpu, ours_cpu = [], [], [], []
    for round_index in range(args.rounds):
        wall, cpu = reference_loop(data.images, args.steps, args.batch_size)
        reference.append(wall)
        reference_cpu.append(cpu)
        wall, spent = trainer_rate(config, data)
        ours.append(wall)
        ours_cpu.append(trainer_cpu_rate(config, data, spent))
        print(f"  round {round_index + 1}: plain fp32 loop {reference[-1]:.1f} img/s ({reference_cpu[-1]:.1f} per "
              f"CPU-s), medgan {ours[-1]:.1f} img/s ({ours_cpu[-1]:.1f} per CPU-s), ratio "
              f"{ours[-1] / reference[-1]:.2f}x (CPU time {ours_cpu[-1] / reference_cpu[-1]:.2f}x)", flush=True)
    ref, med = statistics.median(reference), statistics.median(ours)
    ref_cpu, med_cpu = statistics.median(reference_cpu), statistics.median(ours_cpu)
    return [f"| plain fp32 DCGAN loop (pytorch/examples) | {ref:.1f} | 1.00x | {ref_cpu:.1f} | 1.00x |",
            f"| medgan trainer, `dcgan` recipe | {med:.1f} | {med / ref:.2f}x (target >= 2.0x where bf16 is native) "
            f"| {med_cpu:.1f} | {med_cpu / ref_cpu:.2f}x |"]


def contention_part(args: argparse.Namespace) -> list[str]:
    """The liver demo's config idle and beside a competitor, automatic vs 2 fixed threads; returns table rows."""
    base = demo_config("liver", overrides={"train": {**QUIET, "steps": 0, "minutes": args.seconds / 60}})
    data = load_slices(base.data, progress=False)
    auto = from_dict({"train": {"threads": 0}}, base=base)
    fixed = from_dict({"train": {"threads": 2}}, base=base)
    print(f"(2) liver demo config: {len(data)} ROIs, batch {base.train.batch_size}, {args.seconds:.0f} s per run; "
          f"torch threads {torch.get_num_threads()}, cores {len(os.sched_getaffinity(0))}; load average before "
          f"{load()}")
    rates: dict[str, list[float]] = {"idle, threads auto": [], "contended, threads auto": [],
                                     "contended, 2 fixed threads": []}
    for round_index in range(args.rounds):
        rates["idle, threads auto"].append(trainer_rate(auto, data)[0])
        with competitor():
            rates["contended, threads auto"].append(trainer_rate(auto, data)[0])
            rates["contended, 2 fixed threads"].append(trainer_rate(fixed, data)[0])
        print(f"  round {round_index + 1}: " + ", ".join(f"{k} {v[-1]:.1f} img/s" for k, v in rates.items()),
              flush=True)
    idle = statistics.median(rates["idle, threads auto"])
    rows = []
    for name, values in rates.items():
        rows.append(f"| liver demo, {name} | {statistics.median(values):.1f} | {statistics.median(values) / idle:.2f}x "
                    f"of idle{' (target >= 0.40x)' if name == 'contended, threads auto' else ''} | | |")
    return rows


def barrier_part() -> list[str]:
    """One convolution's backward pass (with weight gradients) beside a competitor, 1 vs 2 threads, fp32 vs bf16."""
    layer = torch.nn.Conv2d(64, 128, 4, 2, 1, bias=False).to(memory_format=torch.channels_last)
    inputs = torch.randn(32, 64, 16, 16).contiguous(memory_format=torch.channels_last)
    threads, rows = torch.get_num_threads(), []
    with competitor():
        for count in sorted({1, threads}):
            torch.set_num_threads(count)
            for bf16 in (False, True):
                times = []
                for _ in range(6):
                    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                        output = layer(inputs)
                    started = time.perf_counter()
                    output.float().sum().backward()
                    times.append(time.perf_counter() - started)
                milliseconds = 1000 * statistics.median(times)
                rows.append(f"| one conv backward (64->128, 16x16, batch 32) beside the competitor, {count} "
                            f"thread(s), {'bf16' if bf16 else 'fp32'} | {milliseconds:.1f} ms | | | |")
    torch.set_num_threads(threads)
    return rows


def profile_part(args: argparse.Namespace) -> None:
    """torch.profiler's table of medgan's trainer on the classic recipe (where the step's time goes)."""
    from torch.profiler import ProfilerActivity, profile

    data = load_slices(DataConfig(source="mni152", resolution=64), progress=False)
    config = resolve_config({"data": {"source": "mni152"}, "train": {"steps": args.steps, **QUIET,
                                                                    "batch_size": args.batch_size,
                                                                    "threads": torch.get_num_threads()}},
                            "dcgan")
    with tempfile.TemporaryDirectory() as run_dir, profile(activities=[ProfilerActivity.CPU]) as trace:
        train(config, run_dir, progress=False, data=data)
    print(trace.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20, help="(1) timed steps per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64, help="(1) batch size")
    parser.add_argument("--seconds", type=float, default=6.0, help="(2) wall time per run")
    parser.add_argument("--only", choices=("ratio", "contention", "barrier", "profile"), default=None,
                        help="one part; profile (not in the default run): the trainer's torch.profiler table")
    parser.add_argument("--threads", type=int, default=0, help="torch threads of this process (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"{cpu_name()}, native bf16: {cpu_has_fast_bf16()}, torch {torch.__version__}, torch threads "
          f"{torch.get_num_threads()}, OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}")
    rows = []
    if args.only in (None, "ratio"):
        rows += ratio_part(args)
    if args.only in (None, "contention"):
        rows += contention_part(args)
    if args.only in (None, "barrier"):
        rows += barrier_part()
    if args.only == "profile":
        profile_part(args)
        return
    print(f"load average after (1 / 5 / 15 min): {load()}")
    print("| run | images/s (median, wall clock) | ratio | images per CPU-second | ratio |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
