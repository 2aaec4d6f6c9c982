"""Training throughput and peak memory of the default (dcgan) and resnet generators at 64, 128 and 256 pixels:
images/s through medgan's own loop and the peak memory of one process, on one GPU and on all GPUs of the machine
(torchrun, NCCL, the same global batch), or on the CPU when there is no GPU.

Every measurement runs in a fresh process (``--child``), so the peak memory is that configuration's alone: on a
GPU ``torch.cuda.max_memory_allocated``; on the CPU the peak resident set size (which includes torch itself).
Images/s is the median of the loop's per-step rate over the timed steps, after warm-up steps (torch.compile and
cuDNN autotuning happen there).

    python benchmarks/bench_gpu.py [--steps 20] [--warmup 5] [--batch-size 32] [--compile] [--json out.json]

Without a GPU the GPU rows are skipped with a message and the CPU rows are measured (few steps: at 256 pixels a
CPU step takes seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

RESOLUTIONS = (64, 128, 256)
MODELS = ("dcgan", "resnet")


def child(model: str, resolution: int, steps: int, warmup: int, batch_size: int, compile: bool, device: str,
          threads: int, out: Path) -> None:
    """One measurement (every rank of a torchrun launch runs this; rank 0 writes ``out``)."""
    import torch

    from medgan.training.loop import train
    from medgan.training.tasks import resolve_config
    from medgan.visuals import read_jsonl

    config = resolve_config({"data": {"source": "mni152", "resolution": resolution}, "model": {"name": model},
                             "train": {"steps": steps + warmup, "batch_size": batch_size, "log_every": 1,
                                       "sample_every": 10**6, "checkpoint_every": 10**6, "eval_every": 0,
                                       "compile": compile, "device": device, "threads": threads}},
                            "medgan")
    with tempfile.TemporaryDirectory() as folder:
        result = train(config, Path(folder) / "run", progress=False)
        rates = [r["images_per_s"] for r in read_jsonl(Path(folder) / "run" / "losses.jsonl")][warmup:]
    if os.environ.get("RANK", "0") != "0":
        return
    if device == "cuda":
        peak_mib = torch.cuda.max_memory_allocated() / 2**20
        kind = "GPU allocated"
    else:
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
        kind = "CPU resident"
    out.write_text(json.dumps({"images_per_s": statistics.median(rates), "peak_mib": peak_mib, "memory": kind,
                               "steps": result.steps}))


def measure(model: str, resolution: int, args: argparse.Namespace, device: str, processes: int) -> dict | None:
    """Runs :func:`child` in fresh process(es); None (with the reason printed) when it fails."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "result.json"
        options = ["--child", model, str(resolution), "--steps", str(args.steps), "--warmup", str(args.warmup),
                   "--batch-size", str(args.batch_size), "--device", device, "--threads", str(args.threads),
                   "--out", str(out)] + (["--compile"] if args.compile else [])
        if processes > 1:
            command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
                       str(processes), __file__, *options]
        else:
            command = [sys.executable, __file__, *options]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0 or not out.exists():
            print(f"  {model} {resolution}px x{processes}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
            return None
        return json.loads(out.read_text())


def describe_machine() -> tuple[str, int]:
    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}", torch.cuda.device_count()
    cpu = "unknown CPU"
    if Path("/proc/cpuinfo").exists():
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")]
        cpu = names[0] if names else cpu
    return f"no GPU; CPU {cpu}, {os.cpu_count()} cores", 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20, help="timed steps (default 20; CPU: use 3)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (default 5)")
    parser.add_argument("--batch-size", type=int, default=32, help="global batch (default 32, the recipe's)")
    parser.add_argument("--compile", action="store_true", help="train.compile (torch.compile of G and D)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads per process (0: torch default)")
    parser.add_argument("--resolutions", type=int, nargs="+", default=list(RESOLUTIONS))
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--child", nargs=2, metavar=("MODEL", "RESOLUTION"), help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cuda", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.steps, args.warmup, args.batch_size, args.compile, args.device,
              args.threads, Path(args.out))
        return
    machine, gpus = describe_machine()
    print(f"machine: {machine}")
    plans = [("cuda", 1)] + ([("cuda", gpus)] if gpus > 1 else [])
    if gpus == 0:
        print("no CUDA GPU here: the GPU rows (one GPU, and all GPUs with torchrun/NCCL) are skipped; GPU figures "
              "are pending until this runs on a GPU machine. Measuring on the CPU instead.")
        plans = [("cpu", 1)]
    rows = []
    print(f"{'model':<8}{'pixels':>7}{'device':>8}{'procs':>6}{'images/s':>10}{'peak MiB':>10}  memory")
    for model in args.models:
        for resolution in args.resolutions:
            for device, processes in plans:
                if args.batch_size % processes:
                    continue
                found = measure(model, resolution, args, device, processes)
                if found is None:
                    continue
                rows.append({"model": model, "resolution": resolution, "device": device, "processes": processes,
                             "batch_size": args.batch_size, "compile": args.compile, **found})
                print(f"{model:<8}{resolution:>7}{device:>8}{processes:>6}{found['images_per_s']:>10.1f}"
                      f"{found['peak_mib']:>10.0f}  {found['memory']}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
