"""Whether a translation changed anatomy: tissue classes, thresholded Dice, per-organ HU errors, a linear baseline.

Pure functions on physical-unit slices ``[N, H, W]`` (HU for CT targets), used by
``medgan.evaluation.translation_eval``:

* tissue classes (``tissue_masks``): from the phantom's organ label maps where the held-out tiles have them
  (``PHANTOM_TISSUES``: air = outside air and bowel gas; fat; bone = cortical and cancellous bone; soft tissue =
  every other label), else from HU thresholds of the truth (``HU_CLASSES``: air < -500, fat [-500, -30),
  soft tissue [-30, 200], bone > 200 HU); a class whose HU range lies outside the target window is not
  measurable and is left out with a note;
* MAE per tissue class, per slice (NaN where the class is absent);
* Dice of thresholded bone (> ``BONE_HU`` = 200 HU) and of the body outline (> ``BODY_HU`` = -500 HU, or 5%
  of the window above its floor where the window starts higher, holes filled: the rule of ``body_mask``)
  between output and truth, per slice (NaN where both are empty);
* per-organ HU error (``organ_errors``): bias (mean of output - truth) and MAE inside each organ's label mask;
* the linear baseline (``fit_linear``): the least-squares line from an input to the target over body pixels.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from medgan.data.intensity import IntensityMapping
from medgan.errors import DataError
from medgan.evaluation.paired_regions import CT_BODY_HU

BONE_HU = 200.0  # bone Dice threshold (HU): cancellous bone (about 250 HU) and cortex are above, soft tissue below
BODY_HU = CT_BODY_HU  # body-outline Dice threshold (HU): the evaluation body rule of paired_regions
# Tissue classes from HU thresholds of the truth: (name, low inclusive, high exclusive) in HU.
HU_CLASSES = (("air", -np.inf, -500.0), ("fat", -500.0, -30.0), ("soft tissue", -30.0, 200.0 + 1e-6),
              ("bone", 200.0 + 1e-6, np.inf))
# Tissue classes from phantom labels (medgan.data.phantom.ORGANS); "soft tissue" is every other label.
PHANTOM_TISSUES = {"air": ("air", "gas"), "fat": ("fat",), "bone": ("bone-cortical", "bone-cancellous")}
TISSUE_ORDER = ("air", "fat", "soft tissue", "bone")
ORGANS = ("liver", "aorta", "kidney")  # per-organ HU error of contrast-phase translation
# Synthetic CT from MR with CycleGAN-type methods (DESIGN.md, issue 11); Wolterink et al. 2017 (brain, unpaired
# CycleGAN) is one such method. The band, not a single study's figure, is what we print beside ours.
LITERATURE_BAND_HU = (50.0, 100.0)
LITERATURE_NOTE = ("synthetic CT from MR with CycleGAN-type methods: body MAE about 50-100 HU in the literature "
                   "(e.g. Wolterink et al. 2017, 'Deep MR to CT synthesis using unpaired data', brain)")


def tissue_masks(target: np.ndarray, mapping: IntensityMapping,
                 labels: np.ndarray | None = None) -> tuple[dict[str, np.ndarray], str, list[str]]:
    """Tissue class masks ``{name: [N, H, W] bool}``, the rule used, and notes on classes left out.

    Args:
        target: the truth in HU.
        mapping: the target mapping (its window bounds what HU classes can be told apart).
        labels: phantom organ labels aligned with ``target``, or None (then HU thresholds of the truth).
    """
    if labels is not None:
        from medgan.data.phantom import LABEL

        masks = {name: np.isin(labels, [LABEL[label] for label in members]) for name, members in PHANTOM_TISSUES.items()}
        masks["soft tissue"] = ~(masks["air"] | masks["fat"] | masks["bone"])
        return {name: masks[name] for name in TISSUE_ORDER}, "the phantom's label maps (air: outside air and gas; " \
            "bone: cortical and cancellous; soft tissue: every other organ)", []
    masks, notes = {}, []
    for name, low, high in HU_CLASSES:
        if high <= mapping.low or low >= mapping.high or (low <= mapping.low and high >= mapping.high):
            notes.append(f"tissue {name!r} not measured: its HU range lies outside the window "
                         f"[{mapping.low:g}, {mapping.high:g}] HU")
            continue
        masks[name] = (target >= low) & (target < high)
    rule = "HU thresholds of the truth: air < -500, fat -500 to -30, soft tissue -30 to 200, bone > 200 HU"
    return masks, rule, notes


def masked_mae(output: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-slice mean |output - target| inside ``mask`` (NaN where the mask is empty)."""
    counts = mask.sum((1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(mask, np.abs(output - target), 0.0).sum((1, 2)) / counts


def masked_bias(output: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-slice mean (output - target) inside ``mask`` (NaN where the mask is empty)."""
    counts = mask.sum((1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(mask, output - target, 0.0).sum((1, 2)) / counts


def dice(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Per-slice Dice 2|A ∩ B| / (|A| + |B|) of boolean masks ``[N, H, W]`` (NaN where both are empty)."""
    overlap = (first & second).sum((1, 2)).astype(np.float64)
    total = first.sum((1, 2)) + second.sum((1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, 2.0 * overlap / total, np.nan)


def body_threshold(mapping: IntensityMapping) -> float:
    """The body-outline threshold in HU: ``BODY_HU``, or 5% of the window above its floor where that is higher."""
    return max(BODY_HU, mapping.low + 0.05 * (mapping.high - mapping.low))


def outline(images: np.ndarray, threshold: float) -> np.ndarray:
    """Pixels above ``threshold`` with holes filled, slice by slice (the body outline)."""
    return np.stack([ndimage.binary_fill_holes(image > threshold) for image in images])


def anatomy_measures(output: np.ndarray, target: np.ndarray, mapping: IntensityMapping,
                     tissues: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], list[str]]:
    """Per-slice tissue MAE (``tissue_mae.<class>``), bone Dice and body-outline Dice of HU outputs.

    Returns:
        The per-slice arrays and notes on what could not be measured in this window.
    """
    values = {f"tissue_mae.{name}": masked_mae(output, target, mask) for name, mask in tissues.items()}
    notes = []
    if mapping.low < BONE_HU < mapping.high:
        values["dice_bone"] = dice(output > BONE_HU, target > BONE_HU)
    else:
        notes.append(f"bone Dice not measured: {BONE_HU:g} HU is outside the window [{mapping.low:g}, "
                     f"{mapping.high:g}] HU")
    threshold = body_threshold(mapping)
    values["dice_body"] = dice(outline(output, threshold), outline(target, threshold))
    return values, notes


def organ_errors(output: np.ndarray, target: np.ndarray, labels: np.ndarray,
                 organs: tuple[str, ...] = ORGANS) -> dict[str, np.ndarray]:
    """Per-slice HU bias and MAE inside each organ's label mask: ``{"organ.<name>.bias", "organ.<name>.mae"}``."""
    from medgan.data.phantom import LABEL

    values = {}
    for organ in organs:
        mask = labels == LABEL[organ]
        values[f"organ.{organ}.bias"] = masked_bias(output, target, mask)
        values[f"organ.{organ}.mae"] = masked_mae(output, target, mask)
    return values


def fit_linear(inputs: np.ndarray, targets: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """Least-squares line ``target ≈ slope · input + intercept`` over the pixels of ``mask``.

    Raises:
        DataError: no pixels, or an input without variation (no line fits).
    """
    x, y = np.asarray(inputs, np.float64)[mask], np.asarray(targets, np.float64)[mask]
    if x.size < 2 or np.ptp(x) == 0:
        raise DataError("the linear baseline needs training pairs with varying input intensities in the body")
    design = np.stack([x, np.ones_like(x)], axis=1)
    (slope, intercept), *_ = np.linalg.lstsq(design, y, rcond=None)
    return float(slope), float(intercept)
