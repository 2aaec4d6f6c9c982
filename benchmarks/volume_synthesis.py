"""3D synthesis against slice-wise 2D synthesis stacked into volumes, on held-out subjects (three-plane FID).

Both models train on the synthetic ``mni152-cohort`` (``medgan.data.cohort``: the MNI152 template deformed per
subject; one brain's anatomy, so this measures 3D coherence, not generalization across people) for the same
wall-clock budget on this machine:

* 3D: ``medgan demo volume``'s config (32^3 cubes, batch 16);
* 2D: the default recipe on the cohort's axial slices at 32 px (``data.resolution: 32``), the slice-wise model
  a user without 3D training would have.

A 2D model draws independent slices, so its "volume" is built the way one would have to: ``D`` samples (D, the
number of axial cube slices that hold brain in the real cubes, median) ordered by brain area, the largest in the
middle, and centre-padded with background to the cube. Both sets are scored against ``--held-out`` subjects
(``HELD_OUT`` onwards) with ``medgan.evaluation.volumes.evaluate_volumes``: slice-wise FID in each plane and their
mean (MAISI's protocol) with 95% bootstrap intervals over volumes.

    python3 benchmarks/volume_synthesis.py --minutes 8 --out /tmp/volume-synthesis
    python3 benchmarks/volume_synthesis.py --run3d medgan-demo-volume --minutes 8 --out /tmp/volume-synthesis

Timings are wall clock on this machine (say which CPU); run on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from medgan.config import DataConfig  # noqa: E402
from medgan.data import load_slices  # noqa: E402
from medgan.data.cohort import HELD_OUT, write_mni_cohort  # noqa: E402
from medgan.demos import demo_config  # noqa: E402
from medgan.evaluation.volumes import evaluate_volumes  # noqa: E402
from medgan.inference.sampling import load_generator  # noqa: E402
from medgan.metrics import training_score  # noqa: E402
from medgan.training.loop import train  # noqa: E402
from medgan.training.tasks import resolve_config  # noqa: E402

SIDE = 32


def train_2d(out: Path, minutes: float, seed: int) -> Path:
    """The default recipe on the cohort's axial slices at 32 px."""
    config = resolve_config({"data": {"source": "mni152-cohort", "resolution": SIDE},
                             "train": {"minutes": minutes, "steps": 0, "seed": seed}})
    train(config, out, progress=False, scorer=training_score)
    return out


def train_3d(out: Path, minutes: float, seed: int) -> Path:
    """``medgan demo volume``'s config."""
    config = demo_config("volume", minutes, {"train": {"seed": seed}})
    train(config, out, progress=False, scorer=training_score)
    return out


def brain_depth(held_out: Path) -> int:
    """The median number of axial cube slices with brain (any voxel above the background) in the held-out cubes."""
    cubes = load_slices(DataConfig(source=str(held_out), dims=3, resolution=SIDE), progress=False).images
    filled = (cubes[:, 0] > -0.9).flatten(2).any(dim=2).sum(dim=1)  # [N]
    return int(filled.median())


def stacked_volumes(run: Path, count: int, depth: int, seed: int = 0) -> torch.Tensor:
    """``count`` volumes [count, 1, SIDE, SIDE, SIDE] of ``depth`` 2D samples each, ordered by brain area with the
    largest in the middle, centre-padded with background."""
    loaded = load_generator(run)
    slices = loaded.generate(count * depth, seed=seed)[:, 0]  # [count * depth, H, W]
    volumes = torch.full((count, 1, SIDE, SIDE, SIDE), -1.0)
    start = (SIDE - depth) // 2
    for index in range(count):
        group = slices[index * depth:(index + 1) * depth]
        order = torch.argsort((group > -0.9).flatten(1).sum(1))  # smallest first
        mountain = torch.cat([order[0::2], order[1::2].flip(0)])  # rising, then falling
        # 2D samples are in display orientation (anterior up); cubes are [D, H, W] with H anterior: flip rows.
        volumes[index, 0, start:start + depth] = group[mountain].flip(-2)
    return volumes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=8.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run3d", type=Path, help="an existing 3D run (default: train one)")
    parser.add_argument("--run2d", type=Path, help="an existing 2D run (default: train one)")
    parser.add_argument("--held-out", type=int, default=32, help="held-out subjects")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    held_out = args.out / "held-out"
    write_mni_cohort(held_out, args.held_out, first=HELD_OUT)
    timings = {}
    for name, given, trainer in (("3d", args.run3d, train_3d), ("2d", args.run2d, train_2d)):
        started = time.perf_counter()
        if given is None:
            given = trainer(args.out / f"run-{name}", args.minutes, args.seed)
        timings[name] = time.perf_counter() - started
        setattr(args, f"run{name}", given)
    depth = brain_depth(held_out)
    sets = {"3D model (32^3 cubes)": load_generator(args.run3d).generate(args.held_out, seed=args.seed),
            f"2D model, {depth} slices stacked": stacked_volumes(args.run2d, args.held_out, depth, args.seed)}
    rows = {}
    for label, volumes in sets.items():
        stack = args.out / f"{label.split()[0]}-samples.npy"
        np.save(stack, volumes[:, 0].numpy())
        metrics = evaluate_volumes(held_out, stack, args.out / f"report-{label.split()[0]}", resolution=SIDE,
                                   progress=False)
        distribution = metrics["volume_distribution"]
        rows[label] = {"fid": distribution["fid"], "fid_interval": distribution["fid_interval"],
                       "planes": {plane: {"fid": values["fid"], "interval": values.get("fid_interval")}
                                  for plane, values in distribution["planes"].items()},
                       "ms_ssim": metrics["volume_diversity"]["synthetic"]["mean"],
                       "real_ms_ssim": metrics["volume_diversity"]["real"]["mean"]}
    result = {"rows": rows, "held_out": args.held_out, "depth": depth, "minutes": args.minutes, "seed": args.seed,
              "train_s": timings, "cpu": platform.processor() or platform.machine()}
    (args.out / "volume_synthesis.json").write_text(json.dumps(result, indent=2))
    def cell(value: float, interval: dict) -> str:
        return f"{value:.0f} [{interval['low']:.0f}, {interval['high']:.0f}]"

    real = next(iter(rows.values()))["real_ms_ssim"]
    print(f"| samples ({args.held_out} volumes each; {args.held_out} held-out subjects) | three-plane FID | axial | "
          f"coronal | sagittal | 3D MS-SSIM (real {real:.3f}) |")
    print("|---|---|---|---|---|---|")
    for label, row in rows.items():
        planes = " | ".join(cell(row["planes"][p]["fid"], row["planes"][p]["interval"])
                            for p in ("axial", "coronal", "sagittal"))
        print(f"| {label} | {cell(row['fid'], row['fid_interval'])} | {planes} | {row['ms_ssim']:.3f} |")

if __name__ == "__main__":
    main()
