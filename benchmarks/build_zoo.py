"""Builds the pretrained model zoo shipped in ``src/medgan/zoo/models``: trains each entry's demo recipe for a fixed
number of steps, evaluates it the way its demo does, bundles it in float16 and checks that the float16 bundle
samples (or translates) like the float32 run.

    python3 benchmarks/build_zoo.py --work /tmp/zoo-runs            # every entry (about 40 CPU-minutes)
    python3 benchmarks/build_zoo.py --work /tmp/zoo-runs --only brain-t1 --steps 20   # a smoke run, not shipped

Each bundle folder gets ``ZOO.json``: what it is, the command that built it, the machine, the training steps and
time, the demo's figures and the float16 check. ``medgan zoo`` prints them.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

from medgan.demos import demo_config
from medgan.inference import Translator, load_model
from medgan.inference.bundle import write_bundle
from medgan.metrics import training_score
from medgan.training.loop import train
from medgan.training.tasks import DEMOS, TASKS

# name -> (demo, steps, model overrides, what). Steps are about what each demo reaches in its default minutes on a
# 2-core AVX2 CPU. The translators are one U-Net level shallower than their demos (and mr2ct's 24 channels wide,
# for its two directions) so that each file stays under 5 MB in float16; the figures in ZOO.json are theirs.
ENTRIES = {
    "brain-t1": ("brain", 2000, {}, "axial T1 brain MRI slices, 64 x 64 (trained on the MNI152 2009a template)"),
    "liver-lesions": ("liver", 1600, {}, "liver lesion CT ROIs by class (cyst, metastasis, hemangioma), 64 x 64 "
                                         "(trained on the simulated CT phantom)"),
    "ct-denoise": ("denoise", 400, {"depth": 3}, "quarter-dose -> routine-dose CT, any slice size, trained on 96 px "
                                                 "patches (simulated CT phantom)"),
    "mr2ct": ("mr2ct", 800, {"depth": 3, "generator_channels": 24}, "T1 + T2 MR -> CT (and back), 64 x 64, unpaired "
                                                                    "CycleGAN (simulated phantom)"),
}
ROOT = Path(__file__).resolve().parents[1] / "src" / "medgan" / "zoo" / "models"


def cpu_name() -> str:
    """The CPU model and its widest bf16-relevant instruction set (timings differ several-fold between them)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    name = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")),
                "unknown")
    flags = set(next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []))
    isa = ("AMX" if "amx_bf16" in flags else "AVX512-BF16" if "avx512_bf16" in flags else
           "AVX-512" if "avx512f" in flags else "AVX2 only" if "avx2" in flags else "no AVX2")
    return f"{name} ({isa})"


def half_check(run: Path, bundle: Path) -> dict:
    """Largest difference, in the output's physical units, between the run (float32) and the float16 bundle."""
    full, half = load_model(run), load_model(bundle)
    if isinstance(full, Translator):
        generator = torch.Generator().manual_seed(0)
        size = full.spec.resolution
        inputs = full.stack({name: torch.rand(2, full.spec.domain(name).channels, size, size, generator=generator)
                             * 2 - 1 for name in full.input_domains})
        a, b = full.translate(inputs), half.translate(inputs)
        mapping = full.spec.domain(full.target).mapping
    else:
        a, b = full.generate(8, seed=0), half.generate(8, seed=0)
        mapping = full.mapping
    a, b = mapping.to_physical(a.numpy()), mapping.to_physical(b.numpy())
    return {"max_abs_difference": float(np.abs(a - b).max()), "mean_abs_difference": float(np.abs(a - b).mean()),
            "unit": mapping.unit}


def _without_paths(table: str) -> str:
    """The evaluation table without the lines naming this machine's files (the report's location)."""
    return "\n".join(line for line in table.splitlines() if not line.startswith(("wrote ", "held-out evaluation:")))


def headline(run: Path, task: str, best: dict | None) -> str:
    """The entry's figure in one line: the held-out evaluation of a translator (its demo's), or the in-training
    FID of a generator (offline features, against the training slices)."""
    metrics_file = run / "evaluation" / "metrics.json"
    if task in ("paired", "unpaired") and metrics_file.is_file():
        metrics = json.loads(metrics_file.read_text())
        held = metrics["held_out"]
        unit = metrics.get("units", "")

        def cell(method: str, key: str, digits: str) -> str:
            value = metrics["methods"][method][key]
            return f"{value['mean']:{digits}} [{value['ci_low']:{digits}}, {value['ci_high']:{digits}}]"

        classic = metrics["best_classic"]
        label = {"linear": "a line fitted on the training pairs, which the unpaired model never sees",
                 "gaussian": "Gaussian smoothing", "nlm": "non-local means"}.get(classic, classic)
        return (f"held-out {held['n_subjects']} subjects ({held['slices']} slices): MAE {cell('gan', 'mae', '.1f')} "
                f"{unit}, SSIM {cell('gan', 'ssim', '.3f')}; best classic baseline ({label}): MAE "
                f"{cell(classic, 'mae', '.1f')} {unit}, SSIM {cell(classic, 'ssim', '.3f')} (95% subject-bootstrap "
                "intervals)")
    if best:
        return f"in-training FID {best['value']:.1f} (offline features, against the training slices; not a paper's FID)"
    return ""


def build(name: str, work: Path, steps: int | None, ship: bool) -> dict:
    demo_name, default_steps, model, what = ENTRIES[name]
    steps = steps or default_steps
    run = work / name
    if run.exists():
        shutil.rmtree(run)
    config = demo_config(demo_name, overrides={"train": {"steps": steps, "minutes": 0.0}, "model": model})
    started = time.monotonic()
    result = train(config, run, progress=False, scorer=training_score)
    seconds = time.monotonic() - started
    print(result.summary(), flush=True)
    figures = TASKS.get(config.task).showcase(run, progress=False)
    print("\n".join(figures), flush=True)
    out = (ROOT if ship else work / "bundles") / name
    if out.exists():
        shutil.rmtree(out)
    write_bundle(run, out, "best", half=True)
    check = half_check(run, out)
    entry = {
        "name": name, "what": what, "task": config.task, "demo": demo_name, "resolution": config.data.resolution,
        "steps": result.steps, "training_seconds": round(seconds), "machine": f"{cpu_name()}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}",
        "command": f"python3 benchmarks/build_zoo.py --work RUNS --only {name}",
        "best": None if result.best_score is None else {"key": result.score_key, "value": result.best_score},
        "evaluation": _without_paths(figures[0]) if figures and config.task in ("paired", "unpaired") else None,
        "headline": headline(run, config.task, None if result.best_score is None else
                             {"key": result.score_key, "value": result.best_score}),
        "float16_check": check, "synthetic": "every image it makes is synthetic; its training data is named in "
        "DATA_CARD.json (embedded sources only: no patient data)",
    }
    (out / "ZOO.json").write_text(json.dumps(entry, indent=2) + "\n")
    size = sum(path.stat().st_size for path in out.iterdir())
    print(f"{name}: {result.steps} steps in {seconds:.0f} s, bundle {size / 2**20:.2f} MiB, float16 check {check}",
          flush=True)
    return entry


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", required=True, help="folder for the training runs")
    parser.add_argument("--only", nargs="+", choices=sorted(ENTRIES), help="entries to build (default: all)")
    parser.add_argument("--steps", type=int, help="override the steps (smoke runs; the bundle is then not shipped)")
    parser.add_argument("--relabel", action="store_true", help="only rewrite each shipped ZOO.json's headline from "
                        "the runs in --work (no training)")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    if args.relabel:
        for name in args.only or list(ENTRIES):
            entry = json.loads((ROOT / name / "ZOO.json").read_text())
            entry["what"] = ENTRIES[name][3]
            entry["command"] = f"python3 benchmarks/build_zoo.py --work RUNS --only {name}"
            if entry.get("evaluation"):
                entry["evaluation"] = _without_paths(entry["evaluation"])
            entry["headline"] = headline(work / name, entry["task"], entry.get("best"))
            (ROOT / name / "ZOO.json").write_text(json.dumps(entry, indent=2) + "\n")
            print(f"{name}: {entry['headline']}")
        return 0
    for name in args.only or list(ENTRIES):
        build(name, work, args.steps, ship=args.steps is None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
