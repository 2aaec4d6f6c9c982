"""Lesions that help? Downstream utility of the conditional GAN in the easy and the hard phantom regime.

The easy regime is ``ct-lesions`` (60 ROIs per class, routine dose): a real-only classifier is near-perfect on
new patients, so synthetic ROIs have no room to help. The hard regime is ``ct-lesions-hard`` (20 ROIs per
class, a quarter of the dose): a real-only classifier sits near the 80% sensitivity of Frid-Adar et al. 2018.

``--calibrate`` prints the real-only balanced accuracy on new patients for a grid of doses and ROI counts (how
the hard regime's parameters were chosen). Otherwise, per regime and per GAN seed (``--gan-seeds``): a conditional
GAN (the liver demo's config on that source, ``train.seed`` = the GAN seed) trains for ``--cpu-minutes`` of CPU
time (one thread), then ``run_utility`` trains the downstream classifier ``--seeds`` times per arm (a) real, (b)
real + synthetic, (c) synthetic only, and tests it on ROIs of new patients (another dataset seed, the regime's
dose). With ``--select`` the arms run a second time with samples that a classifier trained on the real training
ROIs assigns to their requested class (``select_consistent``: ``--oversample`` times as many generated, a random
subset of the accepted kept). Each GAN seed contributes its mean over classifier seeds; the table gives means
with 95% t intervals over GAN seeds, so the GAN's own variance is in the interval. Results are cached per GAN
seed in ``--out``: a rerun resumes.

    python benchmarks/liver_hard_regime.py --calibrate
    python benchmarks/liver_hard_regime.py --cpu-minutes 3 --gan-seeds 5 --seeds 3 --select --out liver-hard
"""

from __future__ import annotations

import os

# One thread per process, idle OpenMP workers asleep: the budget is CPU time, fair on a shared machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import sys  # noqa: E402
from concurrent.futures import ProcessPoolExecutor, as_completed  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from medgan.config import DataConfig, deep_update, parse_overrides  # noqa: E402
from medgan.data import load_slices  # noqa: E402
from medgan.data.phantom.cases import lesion_rois  # noqa: E402
from medgan.errors import DataError  # noqa: E402
from medgan.data.phantom.sources import HARD_LESION_DOSE, HARD_LESION_ROIS_PER_CLASS, lesion_slice_set  # noqa: E402
from medgan.demos import demo_config  # noqa: E402
from medgan.evaluation.utility import (UtilityConfig, acceptance_rate, class_fidelity, run_utility,  # noqa: E402
                                       select_consistent, summarize, synthetic_set)

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_quality, in spawned workers too

REGIMES = {"easy": ("ct-lesions", 1.0), "hard": ("ct-lesions-hard", HARD_LESION_DOSE)}
TEST_SEED = 5  # dataset seed of the new test patients (ct-lesions uses 1: no patient shared)
TEST_PER_CLASS = 30
JUDGE_SEED = 100  # seed of the judge that selects samples (the arms' classifiers use seeds 0, 1, ...)


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


def gan_run(name: str, gan_seed: int, args: argparse.Namespace):
    """Trains (or reuses) the regime's GAN with ``train.seed = gan_seed``; returns (config, run directory)."""
    from medgan.training.loop import train

    source, _ = REGIMES[name]
    overrides = deep_update({"data": {"source": source},
                             "train": {"cpu_minutes": args.cpu_minutes, "minutes": 0, "steps": 0, "threads": 1,
                                       "eval_every": 0, "seed": gan_seed}}, parse_overrides(args.set))
    config = demo_config("liver", overrides=overrides)
    run = Path(args.out) / name / f"gan-seed{gan_seed}"
    if not (run / "checkpoints" / "latest.pt").exists():
        if run.exists():  # an interrupted run: start it again
            import shutil
            shutil.rmtree(run)
        result = train(config, run, progress=False)
        print(f"{name} GAN seed {gan_seed}: {result.steps} steps in {args.cpu_minutes} CPU-minutes "
              f"({result.seconds:.0f} s wall)", flush=True)
    return config, run


def one_gan(name: str, gan_seed: int, args: argparse.Namespace) -> dict:
    """One GAN seed of a regime: the three arms with its samples as they come and, with ``--select``, with the
    samples a real-trained judge accepts. Cached as ``<out>/<regime>/seed<g>.json``."""
    torch.set_num_threads(1)
    cached = Path(args.out) / name / f"seed{gan_seed}.json"
    if cached.exists():
        return json.loads(cached.read_text())
    config, run = gan_run(name, gan_seed, args)
    utility = UtilityConfig(seeds=args.seeds, threads=1)
    real = load_slices(config.data, progress=False)
    test = new_patients(config.data, REGIMES[name][1])
    per_class = int(real.labels.bincount().max())
    synthetic = synthetic_set(run, per_class=per_class, seed=0)
    result = {"regime": name, "gan_seed": gan_seed,
              "plain": run_utility(real, test, synthetic, utility, progress=False),
              "class_fidelity": class_fidelity(real, synthetic, utility)["balanced_accuracy"],
              "within_class_ms_ssim": diversity(real, synthetic)}
    if args.select:
        pool = synthetic_set(run, per_class=per_class * args.oversample, seed=10_000)
        try:
            kept, info = select_consistent(real, pool, per_class, utility, seed=JUDGE_SEED)
        except DataError as error:  # a class the judge never recognises: reported, not a crash of the batch
            result["selection"] = {"error": str(error), "acceptance": 0.0}
        else:
            result["selected"] = run_utility(real, test, kept, utility, progress=False)
            result["selection"] = {**info, "acceptance": acceptance_rate(info)}
    cached.write_text(json.dumps(result, indent=2))
    return result


def diversity(real, synthetic) -> dict:
    """Mean within-class pairwise MS-SSIM of the training ROIs and of the samples (higher: less varied)."""
    from bench_quality import within_class_ms_ssim  # benchmarks/ is on sys.path when this script runs

    return {"real": within_class_ms_ssim(real.images, real.labels),
            "synthetic": within_class_ms_ssim(synthetic.images, synthetic.labels)}


def per_gan(result: dict, variant: str, metric: str = "balanced_accuracy") -> dict[str, float]:
    """One GAN seed's arms and paired differences, each the mean over its classifier seeds."""
    arms, differences = result[variant]["arms"], result[variant]["differences"]
    return {"a": arms["real"][metric]["mean"], "b": arms["real+synthetic"][metric]["mean"],
            "c": arms["synthetic"][metric]["mean"],
            "b-a": next(v for k, v in differences.items() if k.startswith("real+synthetic"))[metric]["mean"],
            "c-a": next(v for k, v in differences.items() if k.startswith("synthetic"))[metric]["mean"]}


def cell(values: list[float]) -> str:
    summary = summarize(values, bounds=(-1.0, 1.0))
    if summary["ci_low"] is None:
        return f"{summary['mean']:.3f}"
    return f"{summary['mean']:.3f} [{summary['ci_low']:.3f}, {summary['ci_high']:.3f}]"


def table(results: list[dict]) -> str:
    lines = ["| regime | samples | GAN seeds | (a) real | (b) real + synthetic | (c) synthetic only | (b) - (a) | "
             "(c) - (a) | class fidelity | within-class MS-SSIM (real) |", "|---" * 10 + "|"]
    for name in REGIMES:
        mine = sorted((r for r in results if r["regime"] == name), key=lambda r: r["gan_seed"])
        for variant in ("plain", "selected"):
            rows = [per_gan(r, variant) for r in mine if variant in r]
            if not rows:
                continue
            label = "as generated" if variant == "plain" else "judge-selected " + "{:.2f}".format(
                sum(r["selection"]["acceptance"] for r in mine) / len(mine)) + " accepted"
            diversity_cell = (f"{sum(r['within_class_ms_ssim']['synthetic'] for r in mine) / len(mine):.3f} "
                              f"({mine[0]['within_class_ms_ssim']['real']:.3f})") if variant == "plain" else ""
            fidelity = f"{sum(r['class_fidelity'] for r in mine) / len(mine):.3f}" if variant == "plain" else ""
            lines.append(f"| {name} | {label} | {len(rows)} | " + " | ".join(
                cell([row[key] for row in rows]) for key in ("a", "b", "c", "b-a", "c-a"))
                + f" | {fidelity} | {diversity_cell} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calibrate", action="store_true")
    parser.add_argument("--regimes", nargs="+", default=["easy", "hard"], choices=sorted(REGIMES))
    parser.add_argument("--cpu-minutes", type=float, default=3.0, help="GAN training budget in CPU-minutes")
    parser.add_argument("--gan-seeds", type=int, default=5, help="GANs trained per regime, one per seed")
    parser.add_argument("--seeds", type=int, default=3, help="classifier seeds per arm and GAN")
    parser.add_argument("--select", action="store_true",
                        help="also the arms with judge-selected samples (medgan.evaluation.utility.select_consistent)")
    parser.add_argument("--oversample", type=int, default=3, help="--select: samples generated per sample kept")
    parser.add_argument("--parallel", type=int, default=2, help="GAN seeds at a time (one thread each)")
    parser.add_argument("--set", action="append", default=[], help="GAN config override KEY=VALUE")
    parser.add_argument("--out", default="liver-hard-regime")
    parser.add_argument("--report", action="store_true", help="only tabulate every GAN seed cached in --out")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.calibrate:
        calibrate(UtilityConfig(seeds=min(args.seeds, 3), threads=1), skip_easy="easy" not in args.regimes)
        return
    for name in args.regimes:
        Path(args.out, name).mkdir(parents=True, exist_ok=True)
    jobs = [(name, seed) for seed in range(args.gan_seeds) for name in args.regimes]
    results = []
    if args.report:
        results = [json.loads(path.read_text()) for name in args.regimes
                   for path in sorted(Path(args.out, name).glob("seed*.json"))]
        jobs = []
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=args.parallel, mp_context=context) as pool:
        futures = [pool.submit(one_gan, name, seed, args) for name, seed in jobs]
        for future in as_completed(futures):
            result = future.result()
            results.append(result)
            row = per_gan(result, "plain")
            print(f"{result['regime']} GAN seed {result['gan_seed']}: (a) {row['a']:.3f} (b) {row['b']:.3f} "
                  f"(c) {row['c']:.3f}" + (f", selected (b) {per_gan(result, 'selected')['b']:.3f}"
                                           if "selected" in result else ""), flush=True)
    text = table(results)
    print("\nbalanced accuracy on new patients; means over GAN seeds of each GAN's mean over classifier seeds, "
          "95% t intervals over GAN seeds\n\n" + text)
    Path(args.out, "table.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
