"""How much of a layer-wise inversion is the generator's (``medgan invert --layer-steps``)? Inverts held-out brain
slices of the MNI cohort and two kinds of images a brain generator never saw (the same slices rotated 90 degrees
and mirrored; abdominal CT slices of the phantom, dataset seed 5, abdomen window mapped to [-1, 1]) with the
command's latent search (300 steps x 4 starts), then refines each search's result on the generator's feature maps
at 16 x 16 (the command's stage), 8 x 8 and 4 x 4, with the pull-back weight 0.1 (the command's) and 1.0, 200
steps. Prints the mean SSIM per set: if the refined images of foreign images are as close as the brain's, the
refinement is fitting images, not finding what the generator knows.

    python3 benchmarks/layerwise_control.py --run /tmp/inv27/run [--images 6]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from inversion import held_out  # same folder

from medgan.data.cohort import HELD_OUT
from medgan.data.phantom.cases import patient_seed, render_patient
from medgan.evaluation.inversion import discriminator_features
from medgan.inference.inversion import InversionConfig, Objective, invert
from medgan.inference.layerwise import refine
from medgan.inference.noise import inference_copy
from medgan.inference.sampling import load_generator
from medgan.metrics.image import ssim


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="a 64 px unconditional run on mni152-cohort")
    parser.add_argument("--images", type=int, default=6, help="images per set")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = load_generator(args.run)
    features, _ = discriminator_features(args.run)
    brain, _ = held_out(model.config.data, args.images, 1, HELD_OUT, seed=0)
    ct = [np.clip((render_patient(patient_seed(5, i), 64, z_mm=0.0).image_hu - 50) / 200, -1, 1)
          for i in range(args.images)]
    sets = {"held-out brain": brain, "rotated, mirrored brain": torch.rot90(brain, 1, (2, 3)).flip(-1),
            "CT abdomen": torch.tensor(np.stack(ct), dtype=torch.float32)[:, None]}
    config = InversionConfig(steps=300, restarts=4)
    generator, objective = inference_copy(model.generator), Objective(config, features)
    for name, images in sets.items():
        found = invert(model, images, config, None, features)
        cells = [f"{name}: latent only {float(ssim(found.images, images).mean()):.3f}"]
        for side in (16, 8, 4):
            for weight in (0.1, 1.0):
                refined, _ = refine(generator, objective, images, found.latents, None, None, 200, weight, side=side)
                cells.append(f"{side}x{side} w{weight:g} {float(ssim(refined, images).mean()):.3f}")
        print("; ".join(cells), flush=True)


if __name__ == "__main__":
    main()
