"""The manual's figure of the T1 -> T2 shift (``domain_shift.py --shifts t1t2``): for a few training slices, one
column each, the rows are the labelled T1 slice, its classic translations (histogram-matched to the unlabelled T2
slices; contrast-inverted then histogram-matched), the first CycleGAN's translation, and the same slice truly
rendered as T2 (which no arm but the upper bound sees), then the label map. Reads the benchmark's caches.

    python3 benchmarks/domain_shift_figure.py --work /tmp/ds/work --out docs/domain_shift_t1t2.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from domain_shift import histogram_matched, inverted_matched  # same folder

from medgan.visuals import save_grid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("runs/domain-shift"))
    parser.add_argument("--out", type=Path, default=Path("docs/domain_shift_t1t2.png"))
    parser.add_argument("--columns", type=int, default=8)
    parser.add_argument("--key", default="24x4", help="PATIENTSxSLICES of the cached training renders")
    parser.add_argument("--target-key", default="24x4", help="PATIENTSxSLICES of the cached unlabelled T2 renders")
    args = parser.parse_args()
    render = args.work / "render" / "brain"
    source = np.load(render / f"train-t1-{args.key}.npz")
    truth = np.load(render / f"train-t2-{args.key}.npz")
    unlabelled = np.load(render / f"target-t2-{args.target_key}.npz")["hu"]
    fake = np.load(args.work / "t1t2" / "translated.npz")["hu"]
    picks = np.linspace(0, len(source["hu"]) - 1, args.columns).round().astype(int)
    t1 = source["hu"][picks]
    rows = [t1, histogram_matched(t1, unlabelled), inverted_matched(t1, unlabelled), fake[picks],
            truth["hu"][picks], source["labels"][picks] / source["labels"].max() * 2 - 1]
    tiles = torch.from_numpy(np.concatenate([np.clip(row, -1, 1) for row in rows]).astype(np.float32))[:, None]
    save_grid(tiles, args.out, columns=args.columns, scale=2)
    print(f"wrote {args.out}: rows T1, histogram-matched, inverted + matched, CycleGAN, true T2, labels")


if __name__ == "__main__":
    main()
