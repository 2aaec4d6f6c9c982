"""Brain tumour detection on new patients, with and without synthetic slices (issue 28, item 1).

Setting (simulated data throughout: glioma-like tumours painted into the deformed MNI152 cohort,
``medgan.data.brain_tumour_sources``):

* the GAN: a class-conditional run (``normal`` / ``tumour`` slices) on the embedded ``brain-tumour-SEQUENCE``
  source, training split (patients 0-47), trained here for ``--steps`` steps with the brain demo's recipe plus
  the conditional settings of the liver demo (``--run`` reuses one);
* the classifier experiment: ``medgan utility``'s protocol (``medgan.evaluation.utility.run_utility``): a small
  CNN trained (a) on the real training slices, (b) on real plus synthetic slices, (c) on synthetic slices only,
  ``--seeds`` seeds each, tested on the slices of the held-out patients (``data.split: test``: patients nobody
  trains on); (b) - (a) is the paired difference per seed with a t interval over seeds.

Writes ``--out`` (JSON) and, with ``--figure``, the manual's grid: a row of real slices per class, then rows of
the run's samples per class.

Usage::

    python3 benchmarks/brain_tumour.py --work /tmp/tumour-bench [--sequence flair] [--steps 4000] [--seeds 5]
        [--figure docs/brain_tumour_synthesis.png]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
from inversion import cpu_name  # same folder

RECIPE = ["--task", "conditional", "--resolution", "64", "--set", "model.auxiliary_classifier=true",
          "--set", "conditional.mode_seeking=0.075", "--set", "train.minutes=0"]


def medgan(*arguments: str) -> str:
    print("$ medgan " + " ".join(arguments), flush=True)
    result = subprocess.run([sys.executable, "-m", "medgan.cli", *arguments], capture_output=True, text=True,
                            check=False)
    if result.returncode != 0:
        raise SystemExit(result.stderr)
    return result.stdout


def figure(run: Path, train_set, path: Path, per_row: int = 8) -> None:
    """Real slices of each class (first rows), then the run's samples of each class."""
    from medgan.evaluation.utility import synthetic_set
    from medgan.visuals import save_grid

    rows = []
    for index in range(len(train_set.class_names)):
        chosen = torch.nonzero(train_set.labels == index).flatten()
        step = max(1, len(chosen) // per_row)
        rows.append(train_set.images[chosen[::step][:per_row]])
    synthetic = synthetic_set(run, per_row, seed=0)
    for index in range(len(synthetic.class_names)):
        rows.append(synthetic.images[synthetic.labels == index])
    print(save_grid(torch.cat(rows), path, columns=per_row, scale=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/tumour-bench"))
    parser.add_argument("--sequence", default="flair", help="t1, t1c, t2 or flair")
    parser.add_argument("--run", type=Path, help="an existing conditional run on brain-tumour-SEQUENCE")
    parser.add_argument("--steps", type=int, default=4000, help="GAN training steps when trained here")
    parser.add_argument("--seeds", type=int, default=5, help="classifier runs per arm")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--per-class", type=int, default=0, help="synthetic slices per class (0: the largest class)")
    parser.add_argument("--figure", type=Path, help="write the grid of real and synthetic slices here")
    parser.add_argument("--out", type=Path, help="JSON result (default: WORK/brain-tumour-SEQUENCE.json)")
    args = parser.parse_args()

    from medgan.data import load_slices
    from medgan.evaluation.utility import UtilityConfig, format_utility, run_utility, synthetic_set
    from medgan.inference.sampling import load_generator

    source = f"brain-tumour-{args.sequence}"
    run = args.run or args.work / f"run-{args.sequence}"
    started = time.monotonic()
    if not (run / "checkpoints").is_dir():
        medgan("train", "--data", source, "--out", str(run), "--steps", str(args.steps), *RECIPE, "--quiet")
    gan_seconds = time.monotonic() - started
    loaded = load_generator(run)
    train_set = load_slices(loaded.config.data, progress=False)
    test_set = load_slices(replace(loaded.config.data, split="test", flip=False), progress=False)
    per_class = args.per_class or int(train_set.labels.bincount().max())
    synthetic = synthetic_set(run, per_class, seed=0, loaded=loaded)
    config = UtilityConfig(seeds=args.seeds, epochs=args.epochs)
    result = run_utility(train_set, test_set, synthetic, config, progress=True)
    print(format_utility(result))
    shared = set(train_set.subjects) & set(test_set.subjects)
    difference = result["differences"]["real+synthetic - real"]
    summary = {
        "source": source, "run": str(run), "cpu": cpu_name(),
        "gan_steps": loaded.config.train.steps, "gan_seconds_here": round(gan_seconds, 1),
        "train_patients": len(set(train_set.subjects)), "test_patients": len(set(test_set.subjects)),
        "shared_patients": len(shared),
        "train_slices_per_class": result["n_train_per_class"], "test_slices_per_class": result["n_test_per_class"],
        "synthetic_per_class": result["n_synthetic_per_class"], "seeds": args.seeds,
        "balanced_accuracy": {arm: [round(v, 3) for v in (s["balanced_accuracy"]["mean"],
                                                         s["balanced_accuracy"]["ci_low"] or float("nan"),
                                                         s["balanced_accuracy"]["ci_high"] or float("nan"))]
                              for arm, s in result["arms"].items()},
        "real+synthetic - real": {metric: [round(difference[metric][k] or float("nan"), 3)
                                           for k in ("mean", "ci_low", "ci_high")]
                                  for metric in ("balanced_accuracy", "macro_auc")},
        "synthetic - real": {metric: [round(result["differences"]["synthetic - real"][metric][k] or float("nan"), 3)
                                      for k in ("mean", "ci_low", "ci_high")]
                             for metric in ("balanced_accuracy", "macro_auc")},
        "seconds": round(time.monotonic() - started, 1),
    }
    out = args.out or args.work / f"brain-tumour-{args.sequence}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"summary": summary, "utility": result}, indent=2))
    print(json.dumps(summary, indent=2))
    if args.figure:
        figure(run, train_set, args.figure)


if __name__ == "__main__":
    main()
