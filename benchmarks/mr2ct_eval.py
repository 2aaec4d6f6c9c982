"""The README tables of the translation demos: did the anatomy change? Measured on held-out phantom patients.

Given trained run directories, evaluates each on the true pairs of the phantom's held-out patients (the test
split, patients 2000-2015, every modality rendered from the same anatomy) with the run's task's evaluation
(``medgan.training.tasks.TASKS.get(task).evaluate``, what ``medgan evaluate --fake RUN`` runs) and prints markdown
tables:

* MR -> CT (``--mr2ct``, an unpaired run; ``--paired``, the paired run trained on the same patients with pairs,
  evaluated on the same slices in the same table): body MAE (HU), PSNR, SSIM, bone Dice (> 200 HU), body Dice
  (> -500 HU), per-tissue MAE (phantom labels) and the cycle error, beside the identity baseline (T1 linearly
  mapped to HU, least squares on the training split's pairs) and the literature band (50-100 HU);
* contrast phases (``--phases``, unenhanced -> portal-venous CT): body MAE and per-organ bias and MAE (liver,
  aorta, kidney) beside the unenhanced input as it is and the linear baseline.

    medgan demo mr2ct --out /tmp/mr2ct && medgan demo phases --out /tmp/phases
    medgan train --task paired --domain-a phantom-t1 phantom-t2 --data phantom-ct --set data.window=body-wide \\
        --set model.residual=false \\
        --resolution 64 --minutes 7.5 --out /tmp/mr2ct-paired
    python3 benchmarks/mr2ct_eval.py --mr2ct /tmp/mr2ct --paired /tmp/mr2ct-paired --phases /tmp/phases \\
        --out /tmp/translation-eval

Each evaluation writes metrics.json, report.html and DATA_CARD.json under ``--out/<name>``. Timings are wall
clock on this machine (say which CPU, and whether others loaded it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from medgan.run import RunDir  # noqa: E402
from medgan.training.tasks import TASKS, EvaluationRequest  # noqa: E402

MR2CT_COLUMNS = (("mae", "body MAE (HU)"), ("psnr", "PSNR (dB)"), ("ssim", "SSIM"), ("dice_bone", "bone Dice"),
                 ("dice_body", "body Dice"), ("tissue_mae.air", "air MAE"), ("tissue_mae.fat", "fat MAE"),
                 ("tissue_mae.soft tissue", "soft-tissue MAE"), ("tissue_mae.bone", "bone MAE"),
                 ("cycle_l1", "cycle L1"))
PHASE_COLUMNS = (("mae", "body MAE (HU)"), ("ssim", "SSIM"),
                 *((f"organ.{organ}.{kind}", f"{organ} {kind} (HU)") for organ in ("liver", "aorta", "kidney")
                   for kind in ("bias", "mae")))


def cell(entry: dict, key: str) -> str:
    """``mean [low, high]`` of a summary, or "-"."""
    value = entry.get(key)
    if not isinstance(value, dict) or value.get("mean") is None:
        return "-"
    digits = ".3g" if abs(value["mean"]) < 0.01 else ".3f" if abs(value["mean"]) < 10 else ".1f"
    if value.get("ci_low") is None:
        return format(value["mean"], digits)
    return f"{value['mean']:{digits}} [{value['ci_low']:{digits}}, {value['ci_high']:{digits}}]"


def table(metrics: dict, columns: tuple) -> str:
    """One markdown table: a row per method, the columns that have values."""
    present = [(key, title) for key, title in columns
               if any(cell(entry, key) != "-" for entry in metrics["methods"].values())]
    lines = ["| method | " + " | ".join(title for _, title in present) + " |",
             "|---" * (len(present) + 1) + "|"]
    for entry in metrics["methods"].values():
        lines.append(f"| {entry['label']} | " + " | ".join(cell(entry, key) for key, _ in present) + " |")
    return "\n".join(lines)


def facts(metrics: dict) -> str:
    held = metrics["held_out"]
    lines = [f"held-out: {held['slices']} slices of {held['n_subjects']} patients ({held['description']}); "
             f"window {metrics['window']}"]
    fit = (metrics["methods"].get("linear") or {}).get("fit")
    if fit:
        lines.append(f"best line (fitted on training pairs): HU = {fit['slope_per_unit']:.1f} x input + {fit['intercept']:.1f} "
                     f"(input in [-1, 1] as the model sees it), least squares on {fit['pixels']} body pixels of "
                     f"{fit['slices']} training slices")
    scores = metrics.get("distribution") or {}
    if scores:
        lines.append(f"KID of the run's outputs vs held-out CT: {scores['kid']:.4g} (offline features)")
    if metrics.get("literature"):
        ours = metrics["methods"]["gan"]["mae"]["mean"]
        lines.append(f"literature: {metrics['literature']['note']}; ours: {ours:.1f} HU")
    return "\n".join(f"- {line}" for line in lines + [f"note: {n}" for n in metrics.get("notes", [])])


def evaluate(run: str, out: Path, name: str, compare: tuple[str, ...], max_slices: int | None) -> dict:
    started = time.perf_counter()
    task = TASKS.get(RunDir.existing(run).read_config().task)
    task.evaluate(run, EvaluationRequest(out=out / name, real=None, compare=compare, max_images=max_slices,
                                         progress=False))
    metrics = json.loads((out / name / "metrics.json").read_text())
    print(f"[{name}: evaluated in {time.perf_counter() - started:.1f} s]", file=sys.stderr)
    return metrics


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mr2ct", help="an unpaired MR -> CT run (medgan demo mr2ct)")
    parser.add_argument("--paired", help="the paired MR -> CT run trained on the same patients, with pairs")
    parser.add_argument("--phases", help="an unpaired unenhanced -> portal-venous CT run (medgan demo phases)")
    parser.add_argument("--out", required=True, help="folder for the evaluations' reports")
    parser.add_argument("--max-slices", type=int, default=None, help="at most this many held-out slices")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}")
    if args.mr2ct:
        metrics = evaluate(args.mr2ct, out, "mr2ct", (args.paired,) if args.paired else (), args.max_slices)
        print("\n### MR -> CT on held-out phantom patients\n")
        print(table(metrics, MR2CT_COLUMNS))
        print(facts(metrics))
    elif args.paired:
        parser.error("--paired is compared with --mr2ct; give both")
    if args.phases:
        metrics = evaluate(args.phases, out, "phases", (), args.max_slices)
        print("\n### Unenhanced -> portal-venous CT on held-out phantom patients\n")
        print(table(metrics, PHASE_COLUMNS))
        print(facts(metrics))
    if not (args.mr2ct or args.phases):
        parser.error("give --mr2ct and/or --phases run directories")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
