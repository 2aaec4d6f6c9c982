"""Grey-level texture matrices of 2D images inside a region of interest (ROI): GLCM, GLRLM and GLSZM.

Definitions follow pyradiomics (and through it IBSI), computed in plain numpy/scipy, batched over images:

* Images ``[N, 1, H, W]`` in the model range [-1, 1] are quantized to ``LEVELS`` = 32 grey levels with a
  *fixed bin width* of 2/32 = 1/16 over [-1, 1] (pyradiomics' ``binWidth`` discretization, anchored at -1).
  A fixed width, not a per-image bin count, keeps one grey level the same intensity in every image, so a
  darker synthetic set is seen as darker, not rescaled away. Values outside [-1, 1] go to the end bins.
* The ROI is the given mask, or by default every pixel above ``BACKGROUND_LEVEL`` (-0.98): model images map
  air and everything clipped by the intensity window to -1, and the small margin keeps a generator's
  near -1 (tanh-saturated) background out of the ROI too, so real and synthetic ROIs are drawn alike. An
  image with fewer than ``MIN_ROI_PIXELS`` pixels above the background (a blank slice) uses the whole image.
* GLCM: symmetric co-occurrence counts of pixel pairs with *both* pixels in the ROI, one matrix per offset;
  the offsets of distance d are pyradiomics' (all (dy, dx) with max(|dy|, |dx|) = d, one of each +/- pair:
  the four directions 0, 45, 90, 135 degrees for d = 1, eight offsets for d = 2); each feature is computed per
  offset and averaged over the offsets that have pairs, as pyradiomics does. (scikit-image's
  ``graycomatrix`` rounds d * (sin, cos) instead, so its d = 2 differs on the diagonals.)
* GLRLM: runs of equal grey level along the same four directions, cut at the ROI border; features are
  averaged over the directions.
* GLSZM: zones are 8-connected components of equal grey level inside the ROI (pyradiomics' 2D connectivity).

Run lengths and zones are found with array tricks (a line-ordered permutation per direction, one
``scipy.ndimage.label`` per grey level over the whole stack), never pixel loops: 500 images of 64 x 64 take
about a second.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from medgan.errors import DataError

LEVELS = 32  # grey levels over [-1, 1]: fixed bin width 1/16 (pyradiomics binWidth discretization)
BACKGROUND_LEVEL = -0.98  # default ROI: pixels above this; -1 is air / below the window in model units
MIN_ROI_PIXELS = 16  # an ROI smaller than this has too few pixel pairs for texture statistics
DIRECTIONS = ((0, 1), (1, 1), (1, 0), (1, -1))  # (dy, dx): the four 2D run directions of pyradiomics' GLRLM
EPS = np.finfo(np.float64).eps  # inside log2 of probabilities, as pyradiomics (log2(0 + eps) * 0 = 0)
CHUNK = 256  # images per batch: index arrays of a 256 x 64 x 64 chunk stay a few tens of MB


def image_stack(images: torch.Tensor, masks: torch.Tensor | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Checked float64 images ``[N, H, W]`` and their boolean ROIs ``[N, H, W]``.

    Args:
        images: ``[N, 1, H, W]`` in [-1, 1].
        masks: optional ``[N, 1, H, W]`` boolean ROIs; None for the default (above ``BACKGROUND_LEVEL``).

    Returns:
        (images, rois) as numpy arrays without the channel axis.

    Raises:
        DataError: a non-tensor, a wrong shape, no images, NaN/Inf, a mask of another shape or type, or a
            given mask with fewer than ``MIN_ROI_PIXELS`` pixels.
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 1:
        raise DataError(f"texture features need images [N, 1, H, W], got {_shape(images)}")
    if images.shape[0] == 0 or min(images.shape[2:]) < 3:
        raise DataError(f"texture features need at least one image of at least 3 x 3, got {_shape(images)}")
    array = images.detach().cpu().double().numpy()[:, 0]
    if not np.isfinite(array).all():
        raise DataError("images contain NaN or Inf values")
    if masks is None:
        return array, default_rois(array)
    if not isinstance(masks, torch.Tensor) or tuple(masks.shape) != tuple(images.shape) or masks.dtype != torch.bool:
        raise DataError(f"masks must be a bool tensor shaped like the images {tuple(images.shape)}, got "
                        f"{_shape(masks)} {getattr(masks, 'dtype', '')}")
    rois = masks.detach().cpu().numpy()[:, 0]
    small = np.flatnonzero(rois.sum((1, 2)) < MIN_ROI_PIXELS)
    if small.size:
        raise DataError(f"{small.size} mask(s) have fewer than {MIN_ROI_PIXELS} pixels (first: image {small[0]})")
    return array, rois


def _shape(value: object) -> str:
    return str(tuple(value.shape)) if hasattr(value, "shape") else type(value).__name__


def default_rois(images: np.ndarray) -> np.ndarray:
    """Pixels above ``BACKGROUND_LEVEL``; the whole image where fewer than ``MIN_ROI_PIXELS`` are."""
    rois = images > BACKGROUND_LEVEL
    blank = rois.sum((1, 2)) < MIN_ROI_PIXELS
    rois[blank] = True
    return rois


def quantize(images: np.ndarray) -> np.ndarray:
    """Grey levels 0 .. LEVELS - 1 (int64) of images in [-1, 1], fixed bin width 2 / LEVELS."""
    return np.clip(np.floor((images + 1.0) * (LEVELS / 2.0)), 0, LEVELS - 1).astype(np.int64)


def _pairs(array: np.ndarray, dy: int, dx: int) -> tuple[np.ndarray, np.ndarray]:
    """Views of ``array[..., y, x]`` and ``array[..., y + dy, x + dx]`` over the positions where both exist."""
    height, width = array.shape[-2:]
    rows_a, rows_b = slice(0, height - dy), slice(dy, height)  # dy >= 0 for every direction
    cols_a, cols_b = (slice(0, width - dx), slice(dx, width)) if dx >= 0 else (slice(-dx, width), slice(0, width + dx))
    return array[..., rows_a, cols_a], array[..., rows_b, cols_b]


def offsets(distance: int) -> list[tuple[int, int]]:
    """pyradiomics' 2D GLCM offsets at ``distance``: every (dy, dx) with max(|dy|, |dx|) = distance, dy >= 0,
    and dx > 0 where dy = 0 (the other half are the same pairs reversed, which a symmetric GLCM counts)."""
    ring = range(-distance, distance + 1)
    return [(dy, dx) for dy in range(distance + 1) for dx in ring
            if max(abs(dy), abs(dx)) == distance and (dy > 0 or dx > 0)]


def glcm(levels: np.ndarray, rois: np.ndarray, distance: int) -> np.ndarray:
    """Symmetric grey-level co-occurrence counts, one matrix per offset of ``offsets(distance)``.

    Args:
        levels: ``[N, H, W]`` grey levels from ``quantize``.
        rois: ``[N, H, W]`` boolean ROIs; a pair counts only when both pixels are inside.
        distance: Chebyshev length of the offsets.

    Returns:
        ``[N, K, LEVELS, LEVELS]`` float64 counts (unnormalized), K = 4 distance offsets in ``offsets`` order.
    """
    count = levels.shape[0]
    image_index = np.arange(count)[:, None, None]
    shifts = offsets(distance)
    matrices = np.empty((count, len(shifts), LEVELS, LEVELS))
    for slot, (dy, dx) in enumerate(shifts):
        first, second = _pairs(levels, dy, dx)
        inside_first, inside_second = _pairs(rois, dy, dx)
        valid = inside_first & inside_second
        flat = ((image_index * LEVELS + first) * LEVELS + second)[valid]
        counts = np.bincount(flat, minlength=count * LEVELS * LEVELS).reshape(count, LEVELS, LEVELS)
        matrices[:, slot] = counts + counts.transpose(0, 2, 1)  # symmetric: (i, j) and (j, i) both count
    return matrices


def glcm_features(levels: np.ndarray, rois: np.ndarray, distance: int) -> dict[str, np.ndarray]:
    """GLCM features per image, averaged over the offsets that have at least one pixel pair.

    With p(i, j) the normalized matrix of one offset (pyradiomics name in brackets):
    contrast = sum (i - j)^2 p [Contrast]; dissimilarity = sum |i - j| p [DifferenceAverage];
    homogeneity = sum p / (1 + (i - j)^2) [Idm; scikit-image's homogeneity]; asm = sum p^2 [JointEnergy];
    energy = sqrt(asm) [scikit-image's energy]; correlation = sum (i - mu)(j - mu) p / sigma^2 [Correlation,
    1 for a flat region as pyradiomics]; entropy = -sum p log2(p + eps) [JointEntropy].

    Returns:
        name -> ``[N]`` float64; NaN for an image with no pixel pair at this distance inside its ROI.
    """
    counts = glcm(levels, rois, distance)
    totals = counts.sum((2, 3))  # [N, K]
    with np.errstate(invalid="ignore", divide="ignore"):
        p = counts / totals[..., None, None]
    grey = np.arange(LEVELS, dtype=np.float64)
    difference = grey[:, None] - grey[None, :]
    marginal = p.sum(3)  # [N, K, L]; equal to the other marginal because the matrix is symmetric
    mean = (marginal * grey).sum(2)
    variance = (marginal * (grey - mean[..., None]) ** 2).sum(2)
    covariance = (p * (grey[:, None] - mean[..., None, None]) * (grey[None, :] - mean[..., None, None])).sum((2, 3))
    flat = variance < 1e-12  # one grey level only: correlation is undefined, pyradiomics reports 1
    asm = (p**2).sum((2, 3))
    per_offset = {
        "contrast": (p * difference**2).sum((2, 3)),
        "dissimilarity": (p * np.abs(difference)).sum((2, 3)),
        "homogeneity": (p / (1.0 + difference**2)).sum((2, 3)),
        "asm": asm,
        "energy": np.sqrt(asm),
        "correlation": np.where(flat, 1.0, covariance / np.where(flat, 1.0, variance)),
        "entropy": -(p * np.log2(p + EPS)).sum((2, 3)),
    }
    has_pairs = totals > 0
    used = has_pairs.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {name: np.where(has_pairs, value, 0.0).sum(1) / used for name, value in per_offset.items()}


def _line_order(height: int, width: int, dy: int, dx: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel order that walks every line of direction (dy, dx) in turn, and the line id of each position."""
    y, x = np.mgrid[:height, :width]
    line = (dx * y - dy * x).ravel()  # constant along the direction
    position = (dy * y + dx * x).ravel()  # increases along it
    order = np.lexsort((position, line))
    return order, line[order]


def glrlm_features(levels: np.ndarray, rois: np.ndarray) -> dict[str, np.ndarray]:
    """Grey-level run-length features per image, averaged over the four directions.

    With Nr runs (of lengths l) in Np ROI pixels, P(i, j) the number of runs of grey level i and length j
    (pyradiomics name in brackets): short_run_emphasis = sum 1/l^2 / Nr [ShortRunEmphasis];
    long_run_emphasis = sum l^2 / Nr [LongRunEmphasis]; run_length_nonuniformity = sum_j (sum_i P)^2 / Nr^2
    [RunLengthNonUniformityNormalized]; grey_level_nonuniformity = sum_i (sum_j P)^2 / Nr^2
    [GrayLevelNonUniformityNormalized]; run_percentage = Nr / Np [RunPercentage].

    Returns:
        name -> ``[N]`` float64.
    """
    count, height, width = levels.shape
    pixels, longest = height * width, max(height, width)  # no run is longer than the image's longer side
    coded = np.where(rois, levels, -1).reshape(count, pixels)  # -1 marks outside the ROI, never a run
    roi_pixels = rois.reshape(count, pixels).sum(1)
    totals: dict[str, np.ndarray] = {}
    for dy, dx in DIRECTIONS:
        order, line = _line_order(height, width, dy, dx)
        values = coded[:, order]
        starts = np.ones_like(values, dtype=bool)
        starts[:, 1:] = (values[:, 1:] != values[:, :-1]) | (line[1:] != line[:-1])[None, :]
        flat_starts = np.flatnonzero(starts)
        lengths = np.diff(np.append(flat_starts, values.size)).astype(np.float64)  # a run ends where the next starts
        run_level = values.ravel()[flat_starts]
        run_image = flat_starts // pixels
        inside = run_level >= 0
        lengths, run_level, run_image = lengths[inside], run_level[inside], run_image[inside]
        runs = np.bincount(run_image, minlength=count).astype(np.float64)
        by_length = np.bincount(run_image * (longest + 1) + lengths.astype(np.int64), minlength=count * (longest + 1))
        by_level = np.bincount(run_image * LEVELS + run_level, minlength=count * LEVELS)
        features = {
            "short_run_emphasis": np.bincount(run_image, 1.0 / lengths**2, count) / runs,
            "long_run_emphasis": np.bincount(run_image, lengths**2, count) / runs,
            "run_length_nonuniformity": (by_length.reshape(count, -1).astype(np.float64) ** 2).sum(1) / runs**2,
            "grey_level_nonuniformity": (by_level.reshape(count, -1).astype(np.float64) ** 2).sum(1) / runs**2,
            "run_percentage": runs / roi_pixels,
        }
        for name, value in features.items():
            totals[name] = totals.get(name, 0.0) + value / len(DIRECTIONS)
    return totals


# 8-connectivity within each image and none across the stack axis: one label() call covers every image.
_IN_PLANE = np.zeros((3, 3, 3), dtype=bool)
_IN_PLANE[1] = True


def glszm_features(levels: np.ndarray, rois: np.ndarray) -> dict[str, np.ndarray]:
    """Grey-level size-zone features per image (zones: 8-connected pixels of one grey level in the ROI).

    With Nz zones of sizes s in Np ROI pixels (pyradiomics name in brackets):
    small_area_emphasis = sum 1/s^2 / Nz [SmallAreaEmphasis]; large_area_emphasis = sum s^2 / Nz
    [LargeAreaEmphasis]; zone_percentage = Nz / Np [ZonePercentage].

    Returns:
        name -> ``[N]`` float64.
    """
    count = levels.shape[0]
    pixels = levels[0].size
    zones = np.zeros(count)
    inverse_squares = np.zeros(count)
    squares = np.zeros(count)
    for level in np.unique(levels[rois]):
        labels, found = ndimage.label(rois & (levels == level), structure=_IN_PLANE)
        labelled = np.flatnonzero(labels)
        ids = labels.ravel()[labelled]
        sizes = np.bincount(ids, minlength=found + 1)[1:].astype(np.float64)
        # Every pixel of a zone lies in one image: the first pixel seen for each id gives its image.
        _, first = np.unique(ids, return_index=True)
        zone_image = labelled[first] // pixels
        zones += np.bincount(zone_image, minlength=count)
        inverse_squares += np.bincount(zone_image, 1.0 / sizes**2, count)
        squares += np.bincount(zone_image, sizes**2, count)
    return {
        "small_area_emphasis": inverse_squares / zones,
        "large_area_emphasis": squares / zones,
        "zone_percentage": zones / rois.reshape(count, -1).sum(1),
    }


GLCM_STATISTICS = ("contrast", "homogeneity", "energy", "correlation", "entropy")


def glcm_statistics(images: torch.Tensor, masks: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Per-image GLCM texture statistics, for a real-versus-synthetic table in the report.

    The GLCM is the symmetric co-occurrence matrix at distance 1, averaged over the four directions, of the
    image quantized to 32 fixed-width levels over [-1, 1], inside the ROI (see the module docstring).

    Args:
        images: ``[N, 1, H, W]`` in [-1, 1].
        masks: optional ``[N, 1, H, W]`` boolean ROIs; default: pixels above the -1 background.

    Returns:
        ``{"contrast", "homogeneity", "energy", "correlation", "entropy"}`` -> ``[N]`` float64 tensors.
        Energy is scikit-image's sqrt(sum p^2) (pyradiomics' JointEnergy is its square); homogeneity is
        scikit-image's sum p / (1 + (i - j)^2) (pyradiomics' Idm); entropy is in bits.

    Raises:
        DataError: bad shapes or values (see ``image_stack``), or an ROI without adjacent pixel pairs.
    """
    array, rois = image_stack(images, masks)
    parts = []
    for start in range(0, array.shape[0], CHUNK):
        chunk = slice(start, start + CHUNK)
        parts.append(glcm_features(quantize(array[chunk]), rois[chunk], distance=1))
    values = {name: np.concatenate([part[name] for part in parts]) for name in GLCM_STATISTICS}
    check_finite(values)
    return {name: torch.from_numpy(value) for name, value in values.items()}


def check_finite(values: dict[str, np.ndarray]) -> None:
    """Raises DataError naming the first image whose ROI left a texture feature undefined (NaN)."""
    for name, value in values.items():
        bad = np.flatnonzero(~np.isfinite(value))
        if bad.size:
            raise DataError(f"texture feature {name} is undefined for {bad.size} image(s) (first: image {bad[0]}): "
                            f"the ROI has no pixel pairs, runs or zones at that offset; use larger masks")
