"""The volumetric phantom, measured: render time, through-plane texture correlation before/after, HU per tissue.

Simulated data. For a few phantom patients (seeds 2000 on, the held-out range) it prints:

* seconds (and the process's peak RSS) to render one 64-slice patient (2.5 mm slices) in the default renderings (CT portal and unenhanced at
  doses 1.0 and 0.25, T1w, T2w) at each ``--sizes`` (``--views`` sets the CT projections at 256 px);
* the through-plane correlation of texture: the Pearson correlation between adjacent slices of the residual
  (image minus the slice's median in the tissue, inside the tissue's label eroded by 2 pixels), pooled over
  slices, for the volume (3D fields) and for the same heights rendered slice by slice (the 2D sources'
  per-slice texture), at 128 px and 2.5 mm. First on the CT truth before the scan with the painting subtracted,
  which isolates the texture (liver: tissue texture; fat: texture and septa), then on the images: noise-free
  and routine-dose CT, T1w and T2w MR, where anatomy, reconstruction artefacts and noise add their own share;
* per CT phase, the median HU inside liver, spleen, kidney, aorta, muscle and fat (eroded by one pixel in
  plane) over a 64-slice routine-dose volume at 128 px.

Run: ``OMP_NUM_THREADS=1 python benchmarks/phantom_volume.py [--sizes 128 256] [--patients 2]``.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch
from scipy import ndimage

from medgan.data.phantom import LABEL
from medgan.data.phantom.anatomy import patient_anatomy, seed_key
from medgan.data.phantom.cases import render_patient
from medgan.data.phantom.fields import patient_fields
from medgan.data.phantom.mr import render_mr, tissue_map
from medgan.data.phantom.paint import SliceFields, paint_slice, textured
from medgan.data.phantom.volumes import phantom_patient_volume

HU_TISSUES = ("liver", "spleen", "kidney", "aorta", "muscle", "fat")
IN_PLANE = ndimage.generate_binary_structure(2, 1)[:, :, None]  # a 4-neighbour cross, no erosion along z


def adjacent_correlation(stack: np.ndarray, labels: np.ndarray, tissue: str) -> float:
    """Correlation of the in-tissue residual between adjacent slices of ``[Z, H, W]`` stacks (2-pixel erosion)."""
    masks = np.stack([ndimage.binary_erosion(plane == LABEL[tissue], iterations=2) for plane in labels])
    residual = np.zeros(stack.shape, dtype=np.float64)
    for index, (image, mask) in enumerate(zip(stack, masks)):
        if mask.sum() > 10:
            residual[index] = image - np.median(image[mask])
    both = masks[:-1] & masks[1:]
    return float(np.corrcoef(residual[:-1][both], residual[1:][both])[0, 1])


def slices(volume: np.ndarray) -> np.ndarray:
    """``[X, Y, Z]`` -> ``[Z, rows, columns]``."""
    return volume.transpose(2, 1, 0)


def per_slice(seed: int, heights: tuple[float, ...], size: int) -> dict[str, np.ndarray]:
    """The same heights rendered one by one as the 2D sources do (texture drawn per slice), without lesions."""
    out: dict[str, list[np.ndarray]] = {"noisefree": [], "dose1": [], "t1": [], "t2": [], "labels": []}
    tissue_hu = patient_anatomy(seed, "portal").tissue_hu
    for z in heights:
        ideal = render_patient(seed, size, None, n_lesions=0, z_mm=z)
        out["noisefree"].append(ideal.image_hu)
        out["dose1"].append(render_patient(seed, size, 1.0, n_lesions=0, z_mm=z).image_hu)
        out["labels"].append(ideal.organ_labels)
        for name, (image, _) in render_mr(tissue_map(ideal, tissue_hu), seed, z, ideal.pixel_spacing_mm).items():
            out[name].append(image)
    return {name: np.stack(stack) for name, stack in out.items()}


def texture_residuals(seed: int, heights: tuple[float, ...], size: int) -> dict[str, np.ndarray]:
    """The CT truth's random parts per slice: tissue texture (truth minus the untextured truth) and fat septa
    (painting minus the painting without septa), drawn per slice as the 2D path does and from the 3D fields."""
    anatomy, fields = patient_anatomy(seed, "portal"), patient_fields(seed, heights, size)
    zero = np.zeros((size, size), dtype=np.float32)
    no_septa = np.full((size, size), 1e3, dtype=np.float32)  # a field with no zero crossing paints no septa
    out: dict[str, list[np.ndarray]] = {name: [] for name in ("texture", "texture-3d", "septa", "septa-3d", "labels")}
    for index, z in enumerate(heights):
        plain = paint_slice(anatomy, z, size, SliceFields(no_septa, fields.faeces[index], zero))
        canvas = paint_slice(anatomy, z, size)  # as render_patient: streams keyed by the slice height
        rng = np.random.default_rng(np.random.SeedSequence([seed, 41, *seed_key(z)]))
        out["texture"].append(textured(canvas, rng) - textured(canvas, None, zero))
        out["septa"].append(canvas.hu - plain.hu)
        canvas = paint_slice(anatomy, z, size, fields.at(index))  # as phantom_patient_volume
        out["texture-3d"].append(textured(canvas, None, fields.texture[index]) - textured(canvas, None, zero))
        out["septa-3d"].append(canvas.hu - plain.hu)
        out["labels"].append(canvas.labels)
    return {name: np.stack(stack) for name, stack in out.items()}


def correlations(seed: int, n_slices: int, size: int) -> dict[str, tuple[float, float]]:
    """(per-slice, volume) correlation per (image, tissue)."""
    volume = phantom_patient_volume(seed, n_slices, size=size, doses=(None, 1.0), phases=("portal",), n_lesions=0)
    after = {"noisefree": slices(volume.images["ct-portal-noisefree"]), "dose1": slices(volume.images["ct-portal-dose1"]),
             "t1": slices(volume.images["t1"]), "t2": slices(volume.images["t2"]), "labels": slices(volume.labels)}
    before = per_slice(seed, volume.heights_mm, size)
    parts = texture_residuals(seed, volume.heights_mm, size)
    rows = {}
    for part, tissue in (("texture", "liver"), ("texture", "fat"), ("septa", "fat")):
        rows[f"truth {part} {tissue}"] = (adjacent_correlation(parts[part], parts["labels"], tissue),
                                          adjacent_correlation(parts[f"{part}-3d"], parts["labels"], tissue))
    for image, tissue in (("noisefree", "liver"), ("noisefree", "fat"), ("dose1", "liver"), ("t1", "liver"),
                          ("t2", "liver")):
        rows[f"{image} {tissue}"] = (adjacent_correlation(before[image], before["labels"], tissue),
                                     adjacent_correlation(after[image], after["labels"], tissue))
    return rows


def hu_medians(seed: int, size: int) -> dict[str, dict[str, float]]:
    """Median HU in eroded tissues over a 64-slice routine-dose volume, per phase."""
    volume = phantom_patient_volume(seed, size=size, doses=(1.0,), sequences=())
    out = {}
    for name, image in volume.images.items():
        values = {}
        for tissue in HU_TISSUES:
            mask = ndimage.binary_erosion(volume.labels == LABEL[tissue], structure=IN_PLANE)
            values[tissue] = float(np.median(image[mask]))
        out[name] = values
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256], help="in-plane sizes to time")
    parser.add_argument("--views", type=int, default=None, help="CT projections at 256 px (default 256)")
    parser.add_argument("--patients", type=int, default=2, help="patients for correlations and HU")
    parser.add_argument("--corr-slices", type=int, default=24, help="slices per correlation volume")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for size in args.sizes:
        start = time.perf_counter()
        volume = phantom_patient_volume(2000, size=size, n_views=args.views if size == 256 else None)
        seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        print(f"render 64 slices at {size} px ({len(volume.images)} renderings): {seconds:.1f} s, "
              f"peak RSS so far {peak:.0f} MiB")
        del volume
    seeds = range(2000, 2000 + args.patients)
    if not seeds:
        return
    table = [correlations(seed, args.corr_slices, 128) for seed in seeds]
    print("through-plane correlation of adjacent slices (128 px, 2.5 mm), per-slice -> volume, mean over patients:")
    for key in table[0]:
        before = np.mean([row[key][0] for row in table])
        after = np.mean([row[key][1] for row in table])
        print(f"  {key:22s} {before:+.3f} -> {after:+.3f}")
    medians = [hu_medians(seed, 128) for seed in seeds]
    print("median HU in eroded tissue, 64 slices at 128 px, routine dose, mean over patients:")
    for name in medians[0]:
        cells = ", ".join(f"{t} {np.mean([m[name][t] for m in medians]):.0f}" for t in HU_TISSUES)
        print(f"  {name}: {cells}")


if __name__ == "__main__":
    main()
