"""Privacy-utility trade-off of patient-level DP training on the phantom liver-lesion ROIs ("ct-lesions").

Three conditional runs with the same architecture, data and step budget: epsilon = inf (no DP), 10 and 1
(patient-level, delta automatic: min(1e-5, 1 / (10 * patients))). The architecture is the liver demo's with the
DP-incompatible piece switched off in all three (no minibatch-stddev), and no in-training scoring in any of
them (a DP run must not pick its checkpoint by looking at real images), so the runs differ only in DP-SGD.

For each run: training wall time, epsilon/delta/sigma/q from ``checkpoint["privacy"]``, FID (offline features,
all 180 real ROIs vs 60 samples per class), class fidelity (a judge trained on the real ROIs labels the samples;
chance 1/3) and downstream utility (``run_utility``: classifiers on real / real+synthetic / synthetic ROIs,
tested on ROIs of new phantom patients that no GAN saw). Writes a JSON and a PNG plot.

    python benchmarks/bench_privacy.py [--steps 300] [--seeds 2] [--out bench-privacy.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from medgan.checkpoint import load_checkpoint  # noqa: E402
from medgan.config import deep_update  # noqa: E402
from medgan.data import load_slices  # noqa: E402
from medgan.evaluation.utility import UtilityConfig, class_fidelity, run_utility, synthetic_set  # noqa: E402
from medgan.metrics import training_score  # noqa: E402
from medgan.training.loop import train  # noqa: E402
from medgan.training.tasks import DEMOS, resolve_config  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from liver_experiments import new_patient_rois  # noqa: E402

SETTINGS = (math.inf, 10.0, 1.0)


def run_config(epsilon: float, steps: int, resolution: int, batch_size: int, seed: int):
    """The liver demo's config, DP-compatible, on a step budget; DP-SGD at ``epsilon`` unless it is inf."""
    demo = DEMOS.get("liver")
    values = deep_update(demo.values, {
        "task": demo.task, "data": {"source": demo.source, "resolution": resolution},
        "model": {"minibatch_std": False},
        "train": {"steps": steps, "minutes": 0.0, "batch_size": batch_size, "seed": seed, "eval_every": 0,
                  "log_every": 25, "sample_every": 10 ** 6, "checkpoint_every": 10 ** 6},
        "privacy": {"epsilon": 0.0 if math.isinf(epsilon) else epsilon}})
    return resolve_config(values, "medgan")


def measure(epsilon: float, args: argparse.Namespace, folder: Path, real, new_patients) -> dict:
    config = run_config(epsilon, args.steps, args.resolution, args.batch_size, args.seed)
    run = folder / f"eps-{epsilon:g}"
    started, cpu_started = time.monotonic(), time.process_time()
    result = train(config, run, progress=not args.quiet, data=real)
    seconds, cpu_seconds = time.monotonic() - started, time.process_time() - cpu_started
    print(f"epsilon {epsilon:g}: trained {result.steps} steps in {seconds:.0f} s wall, {cpu_seconds:.0f} s CPU",
          flush=True)
    privacy = load_checkpoint(result.checkpoint).get("privacy")
    per_class = int(real.labels.bincount().max())
    synthetic = synthetic_set(str(run), per_class=per_class, seed=0)
    utility_config = UtilityConfig(seeds=args.seeds, threads=args.threads)
    row = {"epsilon": "inf" if math.isinf(epsilon) else epsilon, "train_seconds": seconds,
           "train_cpu_seconds": cpu_seconds, "load_average_after": os.getloadavg()[0], "steps": result.steps,
           "privacy": privacy, "fid": training_score(real.images, synthetic.images)["fid"],
           "class_fidelity": class_fidelity(real, synthetic, utility_config),
           "utility": run_utility(real, new_patients, synthetic, utility_config, progress=not args.quiet)}
    print(f"epsilon {row['epsilon']}: {seconds:.0f} s, FID {row['fid']:.1f}, class fidelity "
          f"{row['class_fidelity']['accuracy']:.3f}, synthetic-only accuracy "
          f"{row['utility']['arms']['synthetic']['accuracy']['mean']:.3f}", flush=True)
    return row


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"eps={row['epsilon']}" for row in rows]
    figure, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    axes[0].bar(labels, [row["fid"] for row in rows], color="#4c72b0")
    axes[0].set_title("FID (offline features, lower is better)")
    axes[1].bar(labels, [row["class_fidelity"]["accuracy"] for row in rows], color="#55a868")
    axes[1].axhline(rows[0]["class_fidelity"]["chance"], color="grey", linestyle="--", label="chance")
    axes[1].set_title("class fidelity (judge accuracy)")
    axes[1].set_ylim(0, 1)
    axes[1].legend()
    for offset, arm in ((-0.2, "real"), (0.0, "real+synthetic"), (0.2, "synthetic")):
        summaries = [row["utility"]["arms"][arm]["accuracy"] for row in rows]
        means = [s["mean"] for s in summaries]
        low = [m - (s["ci_low"] if s["ci_low"] is not None else m) for m, s in zip(means, summaries)]
        high = [(s["ci_high"] if s["ci_high"] is not None else m) - m for m, s in zip(means, summaries)]
        errors = [low, high]
        axes[2].bar([i + offset for i in range(len(rows))], means, width=0.2, yerr=errors, label=arm, capsize=2)
    axes[2].set_xticks(range(len(rows)), labels)
    axes[2].axhline(rows[0]["class_fidelity"]["chance"], color="grey", linestyle="--")
    axes[2].set_ylim(0, 1)
    axes[2].set_title("utility: accuracy on new patients")
    axes[2].legend(fontsize=7)
    figure.suptitle("patient-level DP-SGD on D, phantom lesion ROIs (same steps per run)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300, help="training steps of every run")
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16, help="expected patients per DP batch (q = this / 42)")
    parser.add_argument("--seeds", type=int, default=2, help="classifier seeds of class fidelity and utility")
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="bench-privacy.json")
    parser.add_argument("--plot", default="bench-privacy.png")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data_config = run_config(math.inf, args.steps, args.resolution, args.batch_size, args.seed).data
    real = load_slices(data_config, progress=False)
    new_patients = new_patient_rois(data_config)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for epsilon in SETTINGS:
            rows.append(measure(epsilon, args, Path(folder), real, new_patients))
    result = {"command": " ".join(["python", *sys.argv]), "cpu": os.cpu_count(), "torch_threads": args.threads,
              "steps": args.steps, "resolution": args.resolution, "batch_size": args.batch_size,
              "utility_seeds": args.seeds, "real_rois": len(real), "new_patient_rois": len(new_patients),
              "runs": rows}
    Path(args.out).write_text(json.dumps(result, indent=2))
    plot(rows, Path(args.plot))
    print(f"wrote {args.out} and {args.plot}")


if __name__ == "__main__":
    main()
