"""Degradations: derive a paired task's input from each target image, in physical units, before any mapping.

``data.degrade`` names one (``parse_degradation`` checks the text); ``degrade_volume`` applies it slice by slice
along ``data.axis`` to one target volume, deterministically: every slice draws from its own random stream,
keyed by the volume's subject and name, the slice index and the degradation, so a dataset derives the same
inputs at every load. The registered degradations (``DEGRADATIONS``):

* ``lowdose:F`` (0 < F <= 1): a CT scan of the slice at F times the reference dose (``lowdose``).
* ``downsample:N[,blur=MM][,noise=STD]`` (N = 2, 3, 4, ...): an anti-aliased downsampling by N, optionally
  after a Gaussian blur of ``MM`` mm (a thicker, blurrier acquisition) and with Gaussian noise of ``STD``
  physical units added at the low resolution, then bicubic upsampling back to the original grid, so input and
  target stay pixel-aligned: the input *is* the bicubic super-resolution baseline.
* ``inpaint``: random boxes and brush strokes cover about 5-25% of each slice's foreground; the input is the
  target with the hole set to the background (the volume's minimum, -1 after any mapping), plus a ``"mask"``
  domain, a label map of the hole (1 inside) that ``medgan.data.pairs`` turns into +1/-1.
* ``mask``: label maps as input (mask-to-image). Not computed from the image: the input is the data's own
  segmentation (``medgan.data.pairs`` finds it); the entry here only names and parses it.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import numpy as np

from medgan.config import DataConfig
from medgan.data.domains import dataset_modality, kept_slices, volume_mapping
from medgan.data.phantom.acquisition import simulate_acquisition
from medgan.data.readers import Volume, progress_over
from medgan.data.slicing import FOREGROUND_THRESHOLD, neighbour_indices, to_canonical
from medgan.errors import ConfigError, DataError
from medgan.registry import Registry

TARGET, INPUT, MASK = "target", "input", "mask"  # the domains of paired data (the target becomes ``images``)
AIR_HU = -1000.0  # what lowdose pads with: air, no attenuation
# Above this a pixel outside the reconstruction circle is not air (real CT pads outside its field of view with
# -1024 to -3024 HU, and air itself reads about -1000 +/- 20 HU): the slice is then padded so it lies inside.
AIR_LIMIT_HU = -900.0
INPAINT_COVERAGE = (0.05, 0.25)  # each slice's hole covers a fraction of its foreground drawn from this range
INPAINT_MAX_COVERAGE = 0.3  # a shape that would take the hole past this fraction is drawn again
INPAINT_TRIES = 60  # shapes tried per slice before the hole is taken as it is
MAX_DOWNSAMPLE = 16


@dataclass(frozen=True)
class Degradation:
    """A parsed ``data.degrade``.

    Attributes:
        name: the registered degradation (``"lowdose"``, ``"downsample"``, ``"inpaint"``, ``"mask"``).
        arguments: its keyword arguments (e.g. ``{"fraction": 0.25}``).
        text: the normalized text, recorded with the data (``SliceSet.degradation``), e.g. ``"downsample:4"``.
    """

    name: str
    arguments: dict[str, float] = field(default_factory=dict)
    text: str = ""


@dataclass(frozen=True)
class SlicePiece:
    """One 2D slice of a target volume, what a degradation function receives.

    Attributes:
        image: ``[H, W]`` float in physical units (HU for CT).
        spacing: (row, column) mm per pixel.
        foreground: boolean ``[H, W]``: pixels above the foreground level of the target's intensity mapping.
        background: the physical value of "no signal" (the volume's minimum; -1 after mapping).
        rng: the slice's own random stream.
    """

    image: np.ndarray
    spacing: tuple[float, float]
    foreground: np.ndarray
    background: float
    rng: np.random.Generator


@dataclass(frozen=True)
class Degrader:
    """A registered degradation.

    Attributes:
        derive: per slice, ``derive(piece, **arguments)`` -> ``{"input": [H, W], ...}`` (extra domains are label
            maps, e.g. inpainting's ``"mask"``); None when the input is not computed from the image (``mask``).
        parse: the text after ``name:`` split on commas -> keyword arguments; raises ValueError with the problem.
        form: the valid form, for error messages.
        needs_ct: the degradation is only defined for CT in HU.
        label_domains: the extra domains ``derive`` returns, all label maps.
    """

    derive: Callable[..., dict[str, np.ndarray]] | None
    parse: Callable[[Sequence[str]], dict[str, float]]
    form: str
    needs_ct: bool = False
    label_domains: tuple[str, ...] = ()


DEGRADATIONS: Registry[Degrader] = Registry("degradation")


def parse_degradation(text: str) -> Degradation:
    """``data.degrade`` as a ``Degradation``.

    Raises:
        ConfigError: an unknown name or bad arguments, naming ``data.degrade`` and the valid forms.
    """
    name, _, rest = str(text).strip().partition(":")
    name = name.strip().lower()
    if name not in DEGRADATIONS:
        _refuse(text, "unknown degradation")
    parts = [part.strip() for part in rest.split(",")] if rest.strip() else []
    try:
        arguments = DEGRADATIONS.get(name).parse(parts)
    except ValueError as error:
        _refuse(text, str(error))
    shown = [f"{value:g}" if key in ("fraction", "factor") else f"{key}={value:g}" for key, value in arguments.items()]
    return Degradation(name, arguments, name + (":" + ",".join(shown) if shown else ""))


def _refuse(text: str, problem: str) -> None:
    forms = "; ".join(DEGRADATIONS.get(name).form for name in DEGRADATIONS)
    raise ConfigError(f"config key 'data.degrade' is {text!r}: {problem}; valid forms: {forms}")


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{what} must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{what} must be finite, got {text!r}")
    return value


def _no_arguments(parts: Sequence[str]) -> dict[str, float]:
    if parts:
        raise ValueError("takes no arguments")
    return {}


def _lowdose_arguments(parts: Sequence[str]) -> dict[str, float]:
    if len(parts) != 1:
        raise ValueError("give one dose fraction, e.g. lowdose:0.25")
    fraction = _number(parts[0], "the dose fraction")
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"the dose fraction must be in (0, 1], got {parts[0]}")
    return {"fraction": fraction}


def _downsample_arguments(parts: Sequence[str]) -> dict[str, float]:
    if not parts:
        raise ValueError("give a factor, e.g. downsample:4")
    factor = _number(parts[0], "the factor")
    if factor != int(factor) or not 2 <= factor <= MAX_DOWNSAMPLE:
        raise ValueError(f"the factor must be a whole number from 2 to {MAX_DOWNSAMPLE}, got {parts[0]}")
    arguments = {"factor": float(int(factor))}
    for part in parts[1:]:
        key, equals, value = part.partition("=")
        if key not in ("blur", "noise") or not equals or key in arguments:
            raise ValueError(f"unexpected {part!r} (options: blur=MM, noise=STD, once each)")
        arguments[key] = _number(value, key)
        if arguments[key] < 0:
            raise ValueError(f"{key} must be >= 0, got {value}")
    return arguments


# --------------------------------------------------------------------------------------------------------
# the degradations, one 2D slice at a time


def lowdose(piece: SlicePiece, fraction: float) -> dict[str, np.ndarray]:
    """A CT scan of ``piece.image`` (HU) at ``fraction`` times the reference dose, by the phantom's physics.

    HU -> linear attenuation (``mu_water * (1 + HU / 1000)``) -> parallel-beam projection (skimage ``radon``)
    -> Poisson photon counts -> log -> filtered back-projection (``iradon``, ramp) -> HU: the phantom's own
    acquisition (``medgan.data.phantom.acquisition.simulate_acquisition``), not a copy of it. The photon count
    per ray is ``fraction * FULL_DOSE_PHOTONS`` (2e6 at 256 px over 400 mm with 360 views, a routine abdominal
    dose: about 12 HU of liver noise at 1.56 mm pixels), scaled with the detector bin width (the pixel size)
    and the view count (one view per pixel of the side), so a fraction means the same photon fluence at any
    size: quarter dose doubles the noise. A real routine-dose slice keeps its own noise, so its input carries
    both. Non-square slices are padded with air to a square, and a slice with anything but air outside its
    inscribed circle (a cropped body, the table) is padded until it fits inside the reconstruction circle.
    Non-square pixels are scanned as square pixels of their mean size (the noise level is then approximate).
    About 2-3 s per 512 x 512 slice (512 views) on one CPU core.
    """
    image = np.asarray(piece.image, dtype=np.float64)
    height, width = image.shape
    side = max(height, width)
    if (_outside_circle(side) & (_centred(image, side) > AIR_LIMIT_HU)).any():
        side = int(math.ceil(math.hypot(height, width))) + 2  # the whole rectangle inside the inscribed circle
    square = _centred(image, side)
    square[_outside_circle(side) | (square < AIR_HU)] = AIR_HU  # exactly zero attenuation outside the circle
    pixel = float(np.mean(piece.spacing))
    scanned = simulate_acquisition(square, pixel, fraction, piece.rng)
    top, left = (side - height) // 2, (side - width) // 2
    return {INPUT: scanned[top : top + height, left : left + width].astype(np.float32)}


def _centred(image: np.ndarray, side: int) -> np.ndarray:
    """``image`` centred on a ``side`` x ``side`` canvas of air."""
    canvas = np.full((side, side), AIR_HU, dtype=np.float64)
    top, left = (side - image.shape[0]) // 2, (side - image.shape[1]) // 2
    canvas[top : top + image.shape[0], left : left + image.shape[1]] = image
    return canvas


def _outside_circle(side: int) -> np.ndarray:
    """True on the pixels of a ``side`` x ``side`` image outside its inscribed circle (skimage's reconstruction
    circle, defined as skimage's ``radon(circle=True)`` checks it)."""
    rows, columns = np.ogrid[:side, :side]
    return (rows - side // 2) ** 2 + (columns - side // 2) ** 2 > (side // 2) ** 2


def downsample(piece: SlicePiece, factor: float, blur: float = 0.0, noise: float = 0.0) -> dict[str, np.ndarray]:
    """Anti-aliased downsampling by ``factor`` and bicubic upsampling back to the slice's grid.

    skimage ``rescale(anti_aliasing=True)`` (a Gaussian prefilter of sigma ``(factor - 1) / 2`` pixels, then
    bilinear sampling) down, ``resize(order=3)`` (bicubic, clipped to the low-resolution range) back up; both map
    pixel centres to pixel centres, so a structure keeps its place. ``blur`` (mm, Gaussian sigma) is applied
    first; ``noise`` (physical units, Gaussian) is added at the low resolution, like acquisition noise.
    """
    from scipy.ndimage import gaussian_filter
    from skimage.transform import rescale, resize

    image = np.asarray(piece.image, dtype=np.float64)
    if blur > 0:
        image = gaussian_filter(image, sigma=(blur / piece.spacing[0], blur / piece.spacing[1]), mode="nearest")
    low = rescale(image, 1.0 / factor, order=1, anti_aliasing=True, preserve_range=True, mode="edge")
    if noise > 0:
        low = low + piece.rng.normal(0.0, noise, low.shape)
    high = resize(low, image.shape, order=3, anti_aliasing=False, preserve_range=True, mode="edge")
    return {INPUT: high.astype(np.float32)}


def inpaint(piece: SlicePiece) -> dict[str, np.ndarray]:
    """A hole of random boxes and brush strokes over about 5-25% of the foreground (``hole_mask``); the input is
    the image with the hole set to ``piece.background``, the ``"mask"`` domain the hole (1 inside, 0 outside)."""
    hole = hole_mask(piece.foreground, piece.rng)
    return {INPUT: np.where(hole, piece.background, piece.image).astype(np.float32), MASK: hole.astype(np.float32)}


def hole_mask(foreground: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random hole: boxes and free-form brush strokes (as in DeepFill v2's training masks) centred on foreground
    pixels, added until they cover a fraction of the foreground drawn from ``INPAINT_COVERAGE``; a shape that
    would pass ``INPAINT_MAX_COVERAGE`` is drawn again. An empty foreground counts as all foreground.

    Args:
        foreground: boolean ``[H, W]``.
        rng: the slice's random stream.

    Returns:
        Boolean ``[H, W]``, True in the hole.
    """
    if not foreground.any():
        foreground = np.ones_like(foreground, dtype=bool)
    area = float(foreground.sum())
    scale = math.sqrt(area)  # the foreground's typical side in pixels: shapes are sized relative to it
    points = np.argwhere(foreground)
    wanted = rng.uniform(*INPAINT_COVERAGE)
    hole = np.zeros(foreground.shape, dtype=bool)
    for _ in range(INPAINT_TRIES):
        centre = points[rng.integers(len(points))]
        draw = _box if rng.random() < 0.5 else _stroke
        shape = draw(foreground.shape, centre, scale, rng)
        grown = hole | shape
        coverage = (grown & foreground).sum() / area
        if coverage > INPAINT_MAX_COVERAGE:
            continue
        hole = grown
        if coverage >= wanted:
            break
    return hole


def _box(shape: tuple[int, int], centre: np.ndarray, scale: float, rng: np.random.Generator) -> np.ndarray:
    """A filled rectangle with sides of 10-35% of ``scale``, centred at ``centre``."""
    height, width = (max(2, int(rng.uniform(0.1, 0.35) * scale)) for _ in range(2))
    top, left = int(centre[0]) - height // 2, int(centre[1]) - width // 2
    box = np.zeros(shape, dtype=bool)
    box[max(top, 0) : max(top + height, 0), max(left, 0) : max(left + width, 0)] = True
    return box


def _stroke(shape: tuple[int, int], centre: np.ndarray, scale: float, rng: np.random.Generator) -> np.ndarray:
    """A brush stroke: a random polyline of 2-6 segments (each 10-30% of ``scale`` long) from ``centre``,
    thickened to a width of 3-8% of ``scale``."""
    from scipy.ndimage import binary_dilation
    from skimage.draw import line
    from skimage.morphology import disk

    stroke = np.zeros(shape, dtype=bool)
    row, column = float(centre[0]), float(centre[1])
    angle = rng.uniform(0.0, 2.0 * math.pi)
    for _ in range(int(rng.integers(2, 7))):
        angle += rng.uniform(-1.2, 1.2)
        length = rng.uniform(0.1, 0.3) * scale
        end_row = float(np.clip(row + length * math.sin(angle), 0, shape[0] - 1))
        end_column = float(np.clip(column + length * math.cos(angle), 0, shape[1] - 1))
        rows, columns = line(int(round(row)), int(round(column)), int(round(end_row)), int(round(end_column)))
        stroke[rows, columns] = True
        row, column = end_row, end_column
    radius = max(1, int(round(rng.uniform(0.015, 0.04) * scale)))
    return binary_dilation(stroke, structure=disk(radius))


DEGRADATIONS.register("lowdose")(Degrader(lowdose, _lowdose_arguments, "lowdose:F (0 < F <= 1)", needs_ct=True))
DEGRADATIONS.register("downsample")(
    Degrader(downsample, _downsample_arguments, "downsample:N[,blur=MM][,noise=STD] (N = 2, 3, 4, ...)")
)
DEGRADATIONS.register("inpaint")(Degrader(inpaint, _no_arguments, "inpaint", label_domains=(MASK,)))
DEGRADATIONS.register("mask")(Degrader(None, _no_arguments, "mask"))


# --------------------------------------------------------------------------------------------------------
# whole volumes


def degrade_volume(
    volume: Volume, degradation: Degradation, config: DataConfig, progress: bool = False
) -> tuple[Volume, dict[str, Volume]]:
    """A target volume and the input domains derived from it, on one voxel grid.

    The volume is reoriented to RAS (``to_canonical``) and degraded slice by slice along ``config.axis``; only
    the slices the target keeps (its foreground fraction, as the aligned slice builder decides it) are
    degraded, and with ``config.context`` their neighbours (2.5D inputs stack them); the others are dropped
    later anyway.

    Args:
        volume: the target, in physical units.
        degradation: from ``parse_degradation``; not ``mask``.
        config: data config (axis, min_foreground, modality and intensity settings for the foreground).
        progress: a progress bar over the slices when there are more than a few.

    Returns:
        ``(the canonical target, {"input": Volume, ...label-map domains})``.

    Raises:
        DataError: a CT-only degradation on an MR image.
    """
    degrader = DEGRADATIONS.get(degradation.name)
    if degrader.derive is None:
        raise ConfigError(f"data.degrade={degradation.text} is not derived from the image")
    modality, reason = dataset_modality(volume, config)
    if degrader.needs_ct and modality != "CT":
        raise DataError(f"{degradation.name} needs CT in HU; this image is MR ({reason})", volume.path)
    target = to_canonical(volume)
    mapping = volume_mapping(target.array, modality, config)
    _, kept, _ = kept_slices(target, mapping, config)
    axis = config.axis if target.array.ndim == 3 else 0
    source = target.array if target.array.ndim == 3 else target.array[None]
    if config.context and target.array.ndim == 3:  # 2.5D inputs: a kept slice's neighbours, kept or not, too
        kept = np.unique(neighbour_indices(kept, source.shape[axis], config.context))
    spacing = _slice_spacing(target.spacing, axis)
    outputs = {INPUT: source.copy(), **{name: np.zeros_like(source) for name in degrader.label_domains}}
    views = {name: np.moveaxis(array, axis, 0) for name, array in outputs.items()}
    slices = np.moveaxis(source, axis, 0)
    background = float(target.array.min())
    key = [zlib.crc32(text.encode()) for text in (target.subject, target.path.name, degradation.text)]
    for index in progress_over([int(k) for k in kept], progress, degradation.name, unit="slice"):
        image = slices[index]
        piece = SlicePiece(image, spacing, mapping.to_unit(image) > FOREGROUND_THRESHOLD, background,
                           np.random.default_rng(np.random.SeedSequence([*key, index])))
        for name, array in degrader.derive(piece, **degradation.arguments).items():
            views[name][index] = array
    shaped = {name: array if target.array.ndim == 3 else array[0] for name, array in outputs.items()}
    derived = {INPUT: replace(target, array=shaped.pop(INPUT))}
    derived.update({name: replace(target, array=array, modality=None) for name, array in shaped.items()})
    return target, derived


def _slice_spacing(spacing: tuple[float, ...], axis: int) -> tuple[float, float]:
    """(row, column) mm per pixel of ``np.moveaxis(array, axis, 0)[k]``."""
    if len(spacing) == 2:
        return float(spacing[0]), float(spacing[1])
    first, second = (index for index in range(3) if index != axis)
    return float(spacing[first]), float(spacing[second])
