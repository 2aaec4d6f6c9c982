"""Where paired evaluation measures: the body or hole, the uniform region and NPS squares, phantom lesions.

* Evaluation region: the body (CT: target above -500 HU, or 5% of the window above its floor where the window
  starts higher, as air and lung are clipped to the floor there; MR: target above the 5th percentile of its
  foreground; holes filled), or, for inpainting, the hole of the mask domain.
* Uniform region (CT): the phantom's liver eroded by 1 px, from its own organ labels (``phantom_labels``), or
  for other data the flattest R/4 square of the body eroded by 2 px (``medgan.metrics.paired.flattest_roi``).
* NPS squares: per slice the flattest R/4 square of the uniform region, else of the eroded body.
* Lesion CNR (phantom only): lesion pixels against a liver ring 1-3 px around them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import ndimage

from medgan.config import DataConfig
from medgan.data.datasets import SliceSet
from medgan.data.intensity import IntensityMapping
from medgan.metrics.paired import flattest_roi, square_mask

CT_BODY_HU = -500.0
MR_BODY_PERCENTILE = 5.0
FOREGROUND_UNIT = -0.9  # the pipeline's foreground rule (medgan.data.slicing): 5% above the window floor


def body_mask(target: np.ndarray, target_unit: np.ndarray, mapping: IntensityMapping) -> tuple[np.ndarray, str]:
    """The evaluation body mask ``[N, H, W]`` (module docstring), holes filled slice by slice, and its rule."""
    if mapping.kind == "ct_window" or mapping.unit == "HU":
        threshold = max(CT_BODY_HU, mapping.low + 0.05 * (mapping.high - mapping.low))
        inside = target > threshold
        rule = f"the body: target above {threshold:g} HU, holes filled"
    else:
        inside = np.zeros(target.shape, dtype=bool)
        for index, (image, unit) in enumerate(zip(target, target_unit)):
            foreground = image[unit > FOREGROUND_UNIT]
            if foreground.size:
                inside[index] = image > np.percentile(foreground, MR_BODY_PERCENTILE)
        rule = f"the body: target above the {MR_BODY_PERCENTILE:g}th percentile of its foreground, holes filled"
    return np.stack([ndimage.binary_fill_holes(mask) for mask in inside]), rule


PHANTOM_NAME = re.compile(r"(phantom-(\d+))/z([+-]?\d+)mm")


def phantom_labels(data: SliceSet, config: DataConfig) -> tuple[np.ndarray | None, str]:
    """Organ labels ``[N, H, W]`` aligned with held-out "ct-phantom" tiles, or None and why not.

    Each tile's patient and slice height come from its provenance (``ct-phantom/phantom-02003/z-36mm``); the
    phantom renders that routine-dose slice again with its organ labels (``phantom.pairs.render_pair``, at the
    exact height of ``phantom.sources.slice_heights``) and both are sliced together
    (``aligned_slices_from_volumes``). The labels are used only when the re-rendered image tiles equal the
    held-out targets, so a change in how the source renders cannot misplace a lesion mask.
    """
    if config.source != "ct-phantom":
        return None, "lesion masks are known for the ct-phantom source only"
    from medgan.data import Domain, aligned_slices_from_volumes
    from medgan.data.phantom import FOV_MM, slice_volume
    from medgan.data.phantom.pairs import render_pair
    from medgan.data.phantom.sources import PHANTOM_SLICES_PER_PATIENT, render_size, slice_heights

    found = [PHANTOM_NAME.search(source) for source in data.sources]
    if not all(found):
        return None, "held-out phantom tiles do not name their patient and slice height"
    size = render_size(config.resolution)
    spacing = FOV_MM / size
    groups = []
    for match in found:
        seed = int(match.group(2))  # phantom ids are the patient seeds (phantom.cases.patient_id)
        heights = [float(z) for z in slice_heights(seed, PHANTOM_SLICES_PER_PATIENT) if round(z) == int(match.group(3))]
        if not heights:
            return None, f"phantom slice {match.group(0)} is not one of the phantom sources' slices"
        case, _ = render_pair(seed, heights[0], size, None)
        groups.append({"image": slice_volume(case.image_hu, spacing, match.group(0), case.patient),
                       "labels": slice_volume(case.organ_labels.astype(np.float32), spacing, match.group(0),
                                              case.patient)})
    plain = replace(config, input=None, pairs=None, degrade=None)
    tiles = aligned_slices_from_volumes(groups, plain, {"image": Domain(), "labels": Domain(label_map=True)})
    if tiles.images.shape != data.images.shape or (tiles.images - data.images).abs().max() > 1e-3:
        return None, "re-rendered phantom slices differ from the held-out targets"
    return tiles.aligned["labels"][:, 0].numpy().round().astype(np.int64), ""


@dataclass
class Regions:
    """Where each measure is taken, per held-out slice."""

    evaluation: np.ndarray  # [N, H, W] MAE / PSNR / SSIM
    description: str
    uniform: np.ndarray | None = None  # [N, H, W] noise std (CT)
    uniform_description: str = ""
    nps_corners: list[tuple[int, int, int]] = field(default_factory=list)  # (slice, row, column)
    roi_size: int = 0
    lesion: np.ndarray | None = None  # [N, H, W] (phantom)
    background: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)


def ct_regions(regions: Regions, target: np.ndarray, body: np.ndarray, labels: np.ndarray | None) -> Regions:
    """Adds the uniform region, NPS squares and lesion masks of CT data (module docstring)."""
    from medgan.data.phantom import LABEL

    size = max(4, target.shape[-1] // 4)
    eroded = np.stack([ndimage.binary_erosion(mask, iterations=2) for mask in body])
    regions.roi_size = size
    if labels is not None:
        liver = labels == LABEL["liver"]
        regions.uniform = np.stack([ndimage.binary_erosion(mask) for mask in liver])
        regions.uniform_description = "the phantom's liver, eroded by 1 px"
        lesion = labels == LABEL["lesion"]
        near = np.stack([ndimage.binary_dilation(mask, iterations=1) for mask in lesion])
        ring = np.stack([ndimage.binary_dilation(mask, iterations=3) for mask in lesion]) & ~near & liver
        regions.lesion, regions.background = lesion, ring
    else:
        regions.uniform = np.zeros_like(body)
        regions.uniform_description = f"the flattest {size} x {size} px square of the body eroded by 2 px"
    for index in range(len(target)):
        corner = flattest_roi(target[index], regions.uniform[index], size) if labels is not None else None
        corner = corner or flattest_roi(target[index], eroded[index], size)
        if corner is not None:
            regions.nps_corners.append((index, *corner))
            if labels is None:
                regions.uniform[index] = square_mask(target.shape[1:], corner, size)
    return regions
