"""The image-to-image demos measured as the paired issue asks: GAN vs pure L1 vs classic baselines.

For ``denoise`` (phantom quarter-dose -> routine-dose CT, 256 px) and ``superres`` (MNI T1, x4): trains the demo's
pix2pix run and the same run with ``paired.adversarial_weight: 0`` (pure L1) on one time budget each, evaluates
both on held-out subjects (phantom: patients 2000-2015; MNI: a held-out slab of axial positions) with
``medgan.evaluation.paired.evaluate_paired``, and prints one table: the input (for x4: bicubic), the classic
baselines, the pure-L1 U-Net and the GAN, with 95% intervals over subjects.

    python3 benchmarks/paired_demos.py --demo denoise --minutes 6.5 --out /tmp/paired-denoise
    python3 benchmarks/paired_demos.py --demo superres --minutes 7 --out /tmp/paired-superres

Timings are wall clock on this machine (say which CPU); run on a quiet machine.
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

from medgan.demos import demo_config  # noqa: E402
from medgan.evaluation.paired import evaluate_paired  # noqa: E402
from medgan.metrics import training_score  # noqa: E402
from medgan.training.loop import train  # noqa: E402

COLUMNS = (("mae", "MAE"), ("psnr", "PSNR dB"), ("ssim", "SSIM"), ("noise_std", "noise std"),
           ("nps_distance", "NPS dist"), ("cnr_ratio", "CNR/target"))


def cell(entry: dict, key: str) -> str:
    value = entry.get(key)
    if isinstance(value, dict) and "mean" in value:
        low, high = value.get("ci_low", value["mean"]), value.get("ci_high", value["mean"])
        return f"{value['mean']:.4g} [{low:.4g}, {high:.4g}]"
    if isinstance(value, (int, float)):
        return f"{value:.4g}"
    return "-"


def flat(method: dict) -> dict:
    """A method's metrics with nested summaries (NPS, CNR) lifted to the table's keys."""
    entry = dict(method)
    nps = method.get("nps") or {}
    if isinstance(nps, dict) and "distance" in nps:
        entry["nps_distance"] = nps["distance"]
    return entry


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", choices=("denoise", "superres"), required=True)
    parser.add_argument("--minutes", type=float, default=None, help="budget per run (default: the demo's)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    out = Path(args.out)
    results = {}
    for arm, overrides in (("gan", {}), ("l1", {"paired": {"adversarial_weight": 0.0}})):
        config = demo_config(args.demo, args.minutes, overrides)
        started = time.monotonic()
        result = train(config, out / arm, progress=False, scorer=training_score)
        metrics = evaluate_paired(out / arm, None, out / arm / "evaluation", progress=False)
        results[arm] = metrics
        print(f"{arm}: {result.steps} steps in {result.seconds:.0f} s, total {time.monotonic() - started:.0f} s",
              flush=True)
    rows = {name: flat(entry) for name, entry in results["gan"]["methods"].items() if name != "gan"}
    rows["U-Net, pure L1"] = flat(results["l1"]["methods"]["gan"])
    rows["GAN (pix2pix)"] = flat(results["gan"]["methods"]["gan"])
    print(f"\n{args.demo}: held-out {results['gan']['held_out']['description']}; CPU {platform.processor() or '?'}")
    print("| method | " + " | ".join(title for _, title in COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 1) + "|")
    for name, entry in rows.items():
        print(f"| {name} | " + " | ".join(cell(entry, key) for key, _ in COLUMNS) + " |")
    (out / "summary.json").write_text(json.dumps({arm: m["methods"] for arm, m in results.items()}, indent=2,
                                                 default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
