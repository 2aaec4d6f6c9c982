"""Lesions that help? Downstream utility of the conditional GAN in the easy and the hard phantom regime.

The easy regime is ``ct-lesions`` (60 ROIs per class, routine dose): a real-only classifier is near-perfect on
new patients, so synthetic ROIs have no room to help. The hard regime is ``ct-lesions-hard`` (20 ROIs per
class, a quarter of the dose): a real-only classifier sits near the 80% sensitivity of Frid-Adar et al. 2018.

``--calibrate`` prints the real-only balanced accuracy on new patients for a grid of doses and ROI counts (how
the hard regime's parameters were chosen). Otherwise, per regime: a conditional GAN (the liver demo's config on
that source) trains for ``--cpu-minutes`` of CPU time (one thread), then ``run_utility`` trains the downstream
classifier ``--seeds`` times per arm (a) real, (b) real + synthetic, (c) synthetic only, and tests it on ROIs of
new patients (another dataset seed, the regime's dose). Prints (b) - (a) and (c) - (a) with 95% intervals.

    python benchmarks/liver_hard_regime.py --calibrate
    python benchmarks/liver_hard_regime.py --cpu-minutes 4 --seeds 5 --out liver-hard [--set loss.mode_seeking=1]
"""

from __future__ import annotations

import os

# One thread per process, idle OpenMP workers asleep: the budget is CPU time, fair on a shared machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from medgan.config import DataConfig, deep_update, parse_overrides  # noqa: E402
from medgan.data import load_slices  # noqa: E402
from medgan.data.phantom.cases import lesion_rois  # noqa: E402
from medgan.data.phantom.sources import HARD_LESION_DOSE, HARD_LESION_ROIS_PER_CLASS, lesion_slice_set  # noqa: E402
from medgan.demos import demo_config  # noqa: E402
from medgan.evaluation.utility import UtilityConfig, class_fidelity, run_utility, synthetic_set  # noqa: E402

REGIMES = {"easy": ("ct-lesions", 1.0), "hard": ("ct-lesions-hard", HARD_LESION_DOSE)}
TEST_SEED = 5  # dataset seed of the new test patients (ct-lesions uses 1: no patient shared)
TEST_PER_CLASS = 30


def new_patients(config: DataConfig, dose: float, per_class: int = TEST_PER_CLASS) -> object:
    """Lesion ROIs of patients the GAN and the classifier never saw, at ``dose``, windowed as ``config``."""
    rois = lesion_rois(n_per_class=per_class, roi_size=config.roi_size, seed=TEST_SEED, dose=dose)
    return lesion_slice_set(rois, config, prefix="new")


def calibrate(utility: UtilityConfig, skip_easy: bool = False) -> None:
    """Real-only balanced accuracy on new patients over a grid of (dose, ROIs per class)."""
    config = demo_config("liver").data
    grid = ((1.0, (60,)), (0.25, (20,)), (HARD_LESION_DOSE, (HARD_LESION_ROIS_PER_CLASS,)))
    for dose, counts in grid[1:] if skip_easy else grid:
        test = new_patients(config, dose)
        for per_class in counts:
            train = lesion_slice_set(lesion_rois(per_class, config.roi_size, 1, dose=dose), config)
            scores = [class_fidelity(train, test, utility, seed=seed)["balanced_accuracy"]
                      for seed in range(utility.seeds)]
            print(f"dose {dose:4.2f}  {per_class:2d} ROIs/class  real-only balanced accuracy on new patients: "
                  f"{sum(scores) / len(scores):.3f}  ({', '.join(f'{s:.3f}' for s in scores)})", flush=True)


def regime(name: str, args: argparse.Namespace, utility: UtilityConfig) -> dict:
    """Trains the GAN on the regime's source (or reuses the run) and measures the three arms."""
    from medgan.training.loop import train

    source, dose = REGIMES[name]
    overrides = deep_update({"data": {"source": source},
                             "train": {"cpu_minutes": args.cpu_minutes, "minutes": 0, "steps": 0, "threads": 1,
                                       "eval_every": 0}}, parse_overrides(args.set))
    config = demo_config("liver", overrides=overrides)
    run = Path(args.out) / f"gan-{name}"
    if not (run / "checkpoints" / "latest.pt").exists():
        result = train(config, run, progress=False)
        print(f"{name}: GAN trained {result.steps} steps in {args.cpu_minutes} CPU-minutes "
              f"({result.seconds:.0f} s wall)")
    real = load_slices(config.data, progress=False)
    test = new_patients(config.data, dose)
    synthetic = synthetic_set(run, per_class=int(real.labels.bincount().max()), seed=0)
    if args.diversity_only:
        return {"within_class_ms_ssim": diversity(real, synthetic)}
    result = run_utility(real, test, synthetic, utility, progress=False)
    result["class_fidelity"] = class_fidelity(real, synthetic, utility)
    result["within_class_ms_ssim"] = diversity(real, synthetic)
    return result


def diversity(real, synthetic) -> dict:
    """Mean within-class pairwise MS-SSIM of the training ROIs and of the samples (higher: less varied)."""
    from bench_quality import within_class_ms_ssim  # benchmarks/ is on sys.path when this script runs

    return {"real": within_class_ms_ssim(real.images, real.labels),
            "synthetic": within_class_ms_ssim(synthetic.images, synthetic.labels)}


def cell(summary: dict) -> str:
    return f"{summary['mean']:.3f} [{summary['ci_low']:.3f}, {summary['ci_high']:.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calibrate", action="store_true")
    parser.add_argument("--regimes", nargs="+", default=["easy", "hard"], choices=sorted(REGIMES))
    parser.add_argument("--cpu-minutes", type=float, default=4.0, help="GAN training budget in CPU-minutes")
    parser.add_argument("--seeds", type=int, default=5, help="classifier seeds per arm")
    parser.add_argument("--set", action="append", default=[], help="GAN config override KEY=VALUE")
    parser.add_argument("--out", default="liver-hard-regime")
    parser.add_argument("--diversity-only", action="store_true",
                        help="only the within-class MS-SSIM of the GANs already trained in --out")
    args = parser.parse_args()
    torch.set_num_threads(1)
    utility = UtilityConfig(seeds=args.seeds, threads=1)
    if args.calibrate:
        calibrate(UtilityConfig(seeds=min(args.seeds, 3), threads=1), skip_easy="easy" not in args.regimes)
        return
    Path(args.out).mkdir(parents=True, exist_ok=True)
    results = {}
    for name in args.regimes:
        results[name] = regime(name, args, utility)
        if args.diversity_only:
            print(f"{name}: within-class pairwise MS-SSIM {json.dumps(results[name]['within_class_ms_ssim'])}")
            continue
        Path(args.out, "utility.json").write_text(json.dumps(results, indent=2))
    if args.diversity_only:
        return
    metric = "balanced_accuracy"
    print("\n| regime | (a) real | (b) real + synthetic | (c) synthetic only | (b) - (a) | (c) - (a) | "
          "class fidelity |\n|---|---|---|---|---|---|---|")
    for name, result in results.items():
        arms, differences = result["arms"], result["differences"]
        diff_b = next(v for k, v in differences.items() if k.startswith("real+synthetic"))[metric]
        diff_c = next(v for k, v in differences.items() if k.startswith("synthetic"))[metric]
        print(f"| {name} | {cell(arms['real'][metric])} | {cell(arms['real+synthetic'][metric])} | "
              f"{cell(arms['synthetic'][metric])} | {cell(diff_b)} | {cell(diff_c)} | "
              f"{result['class_fidelity']['balanced_accuracy']:.3f} |")


if __name__ == "__main__":
    main()
