"""What the volumetric 2D-vs-2.5D benchmarks (``volume_denoise.py``, ``volume_mr2ct.py``, ``volume_superres.py``,
``volume_inpaint.py``) share: reading a NIfTI volume slices-first, training and translating arms in worker
processes, per seed the paired differences of each 2.5D arm against the 2D arm of the same seed, over seeds their
mean with a 95% t interval, and the markdown tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import stats

from medgan.data.readers import read_volume
from medgan.metrics.volume_translation import MEASURES, paired_difference


def zyx(path: Path) -> np.ndarray:
    """A NIfTI volume as ``[Z, Y, X]`` float64 (slices first, the metrics' axis 0)."""
    return np.asarray(read_volume(path).array, dtype=np.float64).transpose(2, 1, 0)


def interval_text(entry: dict, key: str, digits: int) -> str:
    found = entry.get(f"{key}_interval")
    value = entry[key]
    if found is None:
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} [{found['low']:.{digits}f}, {found['high']:.{digits}f}]"


def apart(first: dict, second: dict, key: str) -> bool:
    """The two methods' 95% intervals of ``key`` do not overlap."""
    a, b = first.get(f"{key}_interval"), second.get(f"{key}_interval")
    return bool(a and b and (a["high"] < b["low"] or b["high"] < a["low"]))


UNITLESS = (("mae", "MAE", 2), ("psnr", "PSNR dB", 2), ("ssim", "SSIM", 4), ("through_plane_mae", "through-plane", 2),
            ("through_plane_ratio", "through-plane / MAE", 3))  # the shown measures, in the data's own units


def arm_label(context: int, seed: int) -> str:
    return ("2D" if context == 0 else f"2.5D (context {context})") + f", seed {seed}"


def seed_summary(differences: list[float]) -> dict:
    """Mean over seeds with a 95% t interval (one value: no interval)."""
    values = np.asarray(differences, np.float64)
    if len(values) < 2:
        return {"mean": float(values.mean()), "low": None, "high": None, "seeds": len(values)}
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return {"mean": float(values.mean()), "low": float(values.mean() - half), "high": float(values.mean() + half),
            "seeds": len(values)}


def seed_differences(methods: dict, contexts: list[int], seeds: list[int], subjects: list[str]) -> dict:
    """Per 2.5D context: per seed, each measure's paired difference against that seed's 2D arm (per subject), and
    over seeds the mean difference with its t interval."""
    differences = {}
    for context in contexts:
        if context == 0:
            continue
        per_seed = {}
        for seed in seeds:
            a = methods[arm_label(context, seed)]["per_volume"]
            b = methods[arm_label(0, seed)]["per_volume"]
            per_seed[seed] = {m: paired_difference(a[m], b[m], subjects) for m in MEASURES}
        over = {m: seed_summary([per_seed[s][m]["difference"] for s in seeds]) for m in MEASURES}
        differences[f"context {context}"] = {"context": context, "per_seed": per_seed, "over_seeds": over}
    return differences


def budget_train(cpu_minutes: float, seed: int, threads: int = 1) -> dict:
    """The ``train`` section of every arm: a CPU-time budget (steps never bind), no in-training scores, samples or
    intermediate checkpoints."""
    return {"steps": 100000, "cpu_minutes": cpu_minutes, "eval_every": 0, "sample_every": 100000, "log_every": 50,
            "checkpoint_every": 100000, "seed": seed, "threads": threads}


def method_rows(methods: dict, shown: tuple[tuple[str, str, int], ...]) -> list[str]:
    """A markdown table of every method's measures with their intervals."""
    lines = ["| method | " + " | ".join(title for _, title, _ in shown) + " |", "|---" * (len(shown) + 1) + "|"]
    for label, entry in methods.items():
        lines.append(f"| {label} | " + " | ".join(interval_text(entry, key, d) for key, _, d in shown) + " |")
    return lines


def difference_cell(difference: dict, digits: int, apart_too: bool) -> str:
    """``+d [low, high]`` of a ``paired_difference``, ``*`` when its interval excludes 0, ``, apart`` when the two
    methods' own intervals do not overlap."""
    bounds = difference["difference_interval"]
    return (f"{difference['difference']:+.{digits}f} [{bounds['low']:+.{digits}f}, {bounds['high']:+.{digits}f}]"
            f"{'*' if difference['separated'] else ''}{', apart' if apart_too else ''}")


def tables(methods: dict, differences: dict, shown: tuple[tuple[str, str, int], ...]) -> str:
    """Markdown: every method with intervals, then per 2.5D context the differences per seed and over seeds."""
    lines = method_rows(methods, shown)
    for name, found in differences.items():
        lines += ["", (f"{name} - 2D, per seed (per subject; * = interval excludes 0; apart = the two arms' own "
                       "intervals do not overlap), and over seeds (95% t):"), "",
                  "| seed | " + " | ".join(title for _, title, _ in shown[:4]) + " |", "|---" * 5 + "|"]
        for seed, measures in found["per_seed"].items():
            arm, flat = methods[arm_label(found["context"], seed)], methods[arm_label(0, seed)]
            cells = [difference_cell(measures[key], d, apart(arm, flat, key)) for key, _, d in shown[:4]]
            lines.append(f"| {seed} | " + " | ".join(cells) + " |")
        over = found["over_seeds"]
        lines.append("| over seeds | " + " | ".join(
            f"{over[key]['mean']:+.{d}f}" + (f" [{over[key]['low']:+.{d}f}, {over[key]['high']:+.{d}f}]"
                                             if over[key]["low"] is not None else "")
            for key, _, d in shown[:4]) + " |")
    return "\n".join(lines)


def train_and_translate(job: tuple) -> tuple[str, dict]:
    """One arm, in a worker process: ``job`` is ``(key, config, run, translate arguments, subjects, out)``. Trains
    ``config`` into ``run`` unless its ``arm.json`` exists, then runs ``medgan translate`` (the CLI code path) with
    ``--run run``, the arguments and ``--out out`` unless every subject's output is there; returns ``(key, the
    arm's steps, wall/CPU seconds and translation seconds)``."""
    import json
    import shutil
    import time

    from medgan.cli import main as cli
    from medgan.training.loop import train

    key, config, run, arguments, subjects, out = job
    record = run / "arm.json"
    if record.is_file():
        info = json.loads(record.read_text())
    else:
        shutil.rmtree(run, ignore_errors=True)
        wall, cpu = time.monotonic(), time.process_time()
        result = train(config, run, progress=False, scorer=None)
        info = {"context": config.data.context, "seed": config.train.seed, "steps": result.steps,
                "wall_s": time.monotonic() - wall, "cpu_s": time.process_time() - cpu}
        record.write_text(json.dumps(info, indent=1))
    if not all((out / f"{name}_translated.nii.gz").is_file() for name in subjects):
        shutil.rmtree(out, ignore_errors=True)
        started = time.monotonic()
        if cli(["translate", "--run", str(run), *arguments, "--out", str(out), "--quiet"]) != 0:
            raise SystemExit(f"medgan translate failed for {run}")
        info["translate_s"] = time.monotonic() - started
    return key, info


def run_arms(jobs: list[tuple], parallel: int) -> dict:
    """``train_and_translate`` of every job, ``parallel`` worker processes at a time (spawned: no fork after torch)."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    with ProcessPoolExecutor(parallel, mp_context=get_context("spawn")) as pool:
        arms = dict(pool.map(train_and_translate, jobs))
    for key, info in arms.items():
        print(f"arm {key}: {info}", flush=True)
    return arms


def only_these(folder: Path, names: list[str]) -> None:
    """Stops the benchmark when ``folder`` holds volumes of other subjects than ``names`` (an ``--out`` reused with
    other counts or seeds): training reads every file of a folder, so they would join the training set."""
    found = {path.name.removesuffix(".nii.gz") for path in folder.glob("*.nii.gz")}
    if found - set(names):
        raise SystemExit(f"{folder} holds {len(found - set(names))} other subject(s) than this run's: use a new --out")
