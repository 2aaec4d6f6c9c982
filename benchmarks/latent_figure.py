"""The pictures of the manual's "Invert real images" page (issue 27): inversion of held-out brain slices beside the
retrieval baseline, and counterfactuals of new patients' liver lesion ROIs with the minimal (steered) edit.

Top rows (``--brain-run``, a 2D unconditional ``mni152-cohort`` run): ``--brain`` held-out slices (one per held-out
subject from ``medgan.data.cohort.HELD_OUT``, seeded, as ``benchmarks/inversion.py`` draws them): the input, the
nearest training slice by SSIM (retrieval), the inversion (``--steps`` x ``--restarts``, the command's defaults, with the
run's discriminator features), and |inversion - input|.

Bottom rows (``--liver-run``, a liver lesion run; ``--judge``, a TorchScript judge such as ``medgan utility``'s
``judge.pt``; ``--liver-inputs``, a folder of new patients' ROIs with ``labels.csv`` as
``benchmarks/counterfactual.py`` writes it): one ROI per class; the input, its reconstruction (class searched),
the minimal counterfactual (``steer``: the first class weight at which the judge changes its decision, 10 steps)
and the full counterfactual as the next class in the run's order, and the full change (counterfactual -
reconstruction). Everything is simulated data.

    python3 benchmarks/latent_figure.py --brain-run /tmp/inv27/run --liver-run /tmp/m27/liver \
        --judge /tmp/m27/cf/utility/judge.pt --liver-inputs /tmp/m27/cf/new-patients --out docs/latent.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from counterfactual import inputs_by_class  # same folder
from inversion import held_out  # same folder


def brain_rows(run: Path, count: int, config) -> list[tuple[list[np.ndarray], list[str]]]:
    from medgan.data.cohort import HELD_OUT
    from medgan.data.pipeline import load_slices
    from medgan.evaluation.inversion import discriminator_features
    from medgan.inference.inversion import invert, ssim_values
    from medgan.inference.sampling import load_generator

    model = load_generator(run)
    queries, _ = held_out(model.config.data, count, 1, HELD_OUT, seed=0)
    training = load_slices(model.config.data, progress=False, skip_blank=True).images.float()
    found_ssim, nearest = [], []  # the retrieval baseline (benchmarks/inversion.py's), keeping the slice it found
    for query in queries:
        with torch.no_grad():
            values = torch.cat([ssim_values(query[None].expand(len(block), -1, -1, -1), block)
                                for block in training.split(1024)])
        found_ssim.append(float(values.max()))
        nearest.append(training[int(values.argmax())])
    features, _ = discriminator_features(run)
    result = invert(model, queries, config, None, features)
    from medgan.metrics.image import ssim

    scores = ssim(result.images.clamp(-1, 1), queries).numpy()
    rows = []
    for k in range(count):
        recon = result.images[k, 0].clamp(-1, 1).numpy()
        rows.append(([queries[k, 0].numpy(), nearest[k][0].numpy(), recon, np.abs(recon - queries[k, 0].numpy()) - 1],
                     ["held-out input", f"nearest training, SSIM {found_ssim[k]:.2f}",
                      f"inversion, SSIM {scores[k]:.2f}", "|inversion - input|"]))
    return rows


def liver_rows(run: Path, judge_path: Path, inputs: Path, steps: int, config) -> list[tuple[list[np.ndarray], list[str]]]:
    from medgan.data.readers import read_volume
    from medgan.evaluation.counterfactual import changes, counterfactual_images, judged, load_judge, steer
    from medgan.evaluation.inversion import invert_targets, target_from_volume
    from medgan.inference.sampling import load_generator

    model = load_generator(run)
    judge = load_judge(judge_path, model)
    names = model.class_names
    groups = inputs_by_class(inputs, 1)
    targets = [target_from_volume(model, read_volume(groups[name][0])) for name in names]
    tiles = torch.cat([t.tile for t in targets])
    result, _ = invert_targets(model, tiles, config, progress=False)
    rows = []
    for k, target in enumerate(targets):
        found = int(result.labels[k])
        to_index = (found + 1) % len(names)
        latents, labels = result.latents[k : k + 1], result.labels[k : k + 1]
        recon, full = counterfactual_images(model, latents, labels, to_index)
        alphas, minimal = steer(model, judge, latents, labels, recon, to_index, steps)
        before, after = judged(judge, recon, names)[0], judged(judge, full, names)[0]
        _, _, area = changes(target, recon, full)
        _, _, minimal_area = changes(target, recon, minimal)
        minimal_title = (f"minimal (a = {alphas[0]:.1f}): {judged(judge, minimal, names)[0]}, area {minimal_area:.2f}"
                         if alphas[0] is not None else "judge never changed")
        rows.append(([tiles[k, 0].numpy(), recon[0, 0].numpy(), minimal[0, 0].numpy(), full[0, 0].numpy(),
                      (full - recon)[0, 0].clamp(-1, 1).numpy()],
                     [f"new patient: {names[k]}", f"reconstruction ({names[found]}; judge: {before})", minimal_title,
                      f"as {names[to_index]}: judge {after}, area {area:.2f}", "change (grey 0)"]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--brain-run", type=Path, required=True)
    parser.add_argument("--liver-run", type=Path, required=True)
    parser.add_argument("--judge", type=Path, required=True)
    parser.add_argument("--liver-inputs", type=Path, required=True)
    parser.add_argument("--brain", type=int, default=3, help="held-out brain slices")
    parser.add_argument("--steer", type=int, default=10)
    parser.add_argument("--steps", type=int, default=300, help="inversion steps per start (the command's default)")
    parser.add_argument("--restarts", type=int, default=4, help="starts per image (the command's default)")
    parser.add_argument("--out", type=Path, default=Path("docs/latent.png"))
    args = parser.parse_args()
    torch.manual_seed(0)
    from medgan.inference.inversion import InversionConfig

    config = InversionConfig(steps=args.steps, restarts=args.restarts)
    import matplotlib

    matplotlib.use("Agg")  # a benchmark script, not the library
    import matplotlib.pyplot as plt

    rows = brain_rows(args.brain_run, args.brain, config) + liver_rows(args.liver_run, args.judge, args.liver_inputs,
                                                                       args.steer, config)
    columns = max(len(images) for images, _ in rows)
    figure, axes = plt.subplots(len(rows), columns, figsize=(2.3 * columns, 2.45 * len(rows)))
    for r, (images, titles) in enumerate(rows):
        for c in range(columns):
            axis = axes[r, c]
            axis.axis("off")
            if c < len(images):
                grey = "change" in titles[c]
                axis.imshow(images[c], cmap="gray", vmin=-1, vmax=1) if not grey else \
                    axis.imshow(images[c], cmap="gray", vmin=-0.5, vmax=0.5)
                axis.set_title(titles[c], fontsize=6.5)
    figure.suptitle("Inversion of held-out brain slices (top) and counterfactuals of new patients' liver lesions "
                    "(bottom); simulated data", fontsize=9)
    figure.tight_layout(rect=(0, 0, 1, 0.98))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
