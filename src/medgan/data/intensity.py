"""Intensity: physical units (HU, MR intensity) <-> the [-1, 1] range the networks see.

Every mapping is linear with clipping: the physical value ``low`` goes to -1, ``high`` to +1, values outside
are clipped. Only how ``low``/``high`` are chosen differs:

* CT window: ``low = level - width / 2``, ``high = level + width / 2`` (HU). The plain linear window, without
  the half-unit offsets of the DICOM VOI LUT formula, so that it inverts exactly.
* MRI percentile: ``low``/``high`` are the ``percentiles`` (default 0.5 and 99.5) of the foreground voxels.
* MRI z-score: ``z = (x - mean) / std`` on the foreground, clipped to ``[-ZSCORE_CLIP, ZSCORE_CLIP]`` and
  mapped linearly to [-1, 1]; i.e. ``low = mean - 3 std`` and ``high = mean + 3 std``.

Foreground voxels (MRI statistics) are those above the image minimum: the non-zero voxels of a skull-stripped
or zero-background image, and the same idea for images whose background is not exactly zero.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence, TypeVar

import numpy as np

from medgan.errors import ConfigError, DataError

ArrayLike = TypeVar("ArrayLike")  # np.ndarray or torch.Tensor; the operations below return the same type

CT_WINDOWS: dict[str, tuple[float, float]] = {
    "brain": (40.0, 80.0),
    "abdomen": (50.0, 400.0),
    "liver": (30.0, 150.0),
    "liver-portal": (90.0, 200.0),  # contrast-enhanced (portal venous) liver at 100-110 HU stays mid-grey
    "bone": (500.0, 2000.0),
    "lung": (-600.0, 1500.0),
    "body-wide": (0.0, 2000.0),  # -1000 (air) to 1000 HU (cortical bone): synthetic CT from MR keeps both
}
ZSCORE_CLIP = 3.0  # z-scores beyond +/- this many standard deviations are clipped, then mapped to [-1, 1]
MAPPING_KINDS = ("ct_window", "percentile", "zscore", "identity")


@dataclass(frozen=True)
class IntensityMapping:
    """A linear, clipped map between physical values and [-1, 1].

    Attributes:
        kind: how ``low``/``high`` were chosen: ``"ct_window"``, ``"percentile"``, ``"zscore"`` or ``"identity"``.
        low: physical value mapped to -1.
        high: physical value mapped to +1.
        unit: physical unit, ``"HU"`` for CT, ``"a.u."`` (arbitrary units) for MR.
    """

    kind: str
    low: float
    high: float
    unit: str = "a.u."

    def __post_init__(self) -> None:
        if not (np.isfinite(self.low) and np.isfinite(self.high) and self.high > self.low):
            raise DataError(f"invalid intensity mapping: low {self.low!r} must be below high {self.high!r}")

    def to_unit(self, x: ArrayLike) -> ArrayLike:
        """Physical values -> [-1, 1], clipped. Works on NumPy arrays (dtype kept for floats) and torch tensors."""
        scaled = (x - self.low) * (2.0 / (self.high - self.low)) - 1.0
        return scaled.clamp(-1.0, 1.0) if hasattr(scaled, "clamp") else np.clip(scaled, -1.0, 1.0)

    def to_physical(self, u: ArrayLike) -> ArrayLike:
        """[-1, 1] -> physical values (the exact inverse of ``to_unit`` inside the window; no clipping)."""
        return (u + 1.0) * ((self.high - self.low) / 2.0) + self.low

    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON/YAML-safe dict."""
        values = asdict(self)
        return {key: float(value) if isinstance(value, (float, np.floating)) else value for key, value in values.items()}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "IntensityMapping":
        """The mapping saved by ``to_dict``; a malformed dict raises DataError."""
        try:
            kind, low, high = str(values["kind"]), float(values["low"]), float(values["high"])
        except (KeyError, TypeError, ValueError):
            raise DataError(f"intensity mapping needs kind, low and high; got {dict(values)!r}") from None
        if kind not in MAPPING_KINDS:
            raise DataError(f"unknown intensity mapping kind {kind!r}; expected one of {', '.join(MAPPING_KINDS)}")
        return cls(kind, low, high, str(values.get("unit", "a.u.")))

    def describe(self) -> str:
        """One line for logs and ``medgan info``, e.g. ``"ct_window [-150, 250] HU -> [-1, 1]"``."""
        return f"{self.kind} [{self.low:.4g}, {self.high:.4g}] {self.unit} -> [-1, 1]"


def ct_window(level: float, width: float) -> IntensityMapping:
    """The CT window ``level`` +/- ``width`` / 2 (HU) as a mapping to [-1, 1].

    Args:
        level: window centre in HU.
        width: window width in HU (positive).

    Returns:
        A ``"ct_window"`` mapping in HU.
    """
    if not width > 0:
        raise ConfigError(f"CT window width must be positive, got {width!r}")
    return IntensityMapping("ct_window", float(level) - float(width) / 2.0, float(level) + float(width) / 2.0, "HU")


def ct_window_from(window: str, level: float | None = None, width: float | None = None) -> IntensityMapping:
    """The CT window of a config: explicit ``level``/``width`` when both are given, else the named preset.

    Args:
        window: preset name, one of ``CT_WINDOWS``.
        level: window centre in HU, overriding the preset's.
        width: window width in HU, overriding the preset's.
    """
    if window not in CT_WINDOWS and (level is None or width is None):
        raise ConfigError(f"config key 'data.window' is {window!r}; choose one of: {', '.join(CT_WINDOWS)}")
    preset_level, preset_width = CT_WINDOWS.get(window, (0.0, 1.0))
    return ct_window(preset_level if level is None else level, preset_width if width is None else width)


def foreground_voxels(array: np.ndarray) -> np.ndarray:
    """The finite voxels above the image minimum (all finite voxels if that leaves none), flattened."""
    values = np.asarray(array, dtype=np.float32).ravel()
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise DataError("no finite voxels to compute intensity statistics from")
    foreground = values[values > values.min()]
    return foreground if foreground.size else values


def mri_mapping(
    array: np.ndarray, method: str = "percentile", percentiles: Sequence[float] = (0.5, 99.5)
) -> IntensityMapping:
    """An MRI normalization fitted to the foreground voxels of ``array``.

    Args:
        array: image or volume (or pooled voxels of several images) in MR intensity units.
        method: ``"percentile"`` (clip to the foreground percentiles, scale to [-1, 1]) or ``"zscore"``
            (z on the foreground, clipped to +/- ``ZSCORE_CLIP``, mapped to [-1, 1]).
        percentiles: ``(low, high)`` percentiles for ``"percentile"``.

    Returns:
        The fitted mapping, unit ``"a.u."``.
    """
    foreground = foreground_voxels(array)
    if method == "percentile":
        low, high = (float(v) for v in np.percentile(foreground, list(percentiles)))
    elif method == "zscore":
        mean, std = float(foreground.mean()), float(foreground.std())
        low, high = mean - ZSCORE_CLIP * std, mean + ZSCORE_CLIP * std
    else:
        raise ConfigError(f"config key 'data.normalize' is {method!r}; choose percentile or zscore")
    if not high > low:
        # A nearly binary foreground (e.g. a mask-like picture): fall back to the full range of the image.
        finite = np.asarray(array)[np.isfinite(array)]
        low, high = float(finite.min()), float(finite.max())
    if not high > low:
        raise DataError("constant image: no intensity range to normalize")
    return IntensityMapping(method, low, high, "a.u.")


def identity_mapping() -> IntensityMapping:
    """The mapping for data already in [-1, 1] (no physical unit)."""
    return IntensityMapping("identity", -1.0, 1.0, "")


def combine_mappings(mappings: Sequence[IntensityMapping]) -> IntensityMapping:
    """One representative mapping for several per-volume MRI mappings: the median ``low`` and ``high``.

    MR intensities are arbitrary per scan, so each volume is normalized with its own mapping; the dataset
    stores this median so that synthetic images can be written back on a typical intensity scale.
    """
    if not mappings:
        raise DataError("no intensity mappings to combine")
    if len(mappings) == 1:
        return mappings[0]
    low = float(np.median([m.low for m in mappings]))
    high = float(np.median([m.high for m in mappings]))
    if not high > low:
        high = low + 1.0
    return IntensityMapping(mappings[0].kind, low, high, mappings[0].unit)


def detect_modality(tag: str | None, array: np.ndarray, requested: str = "auto") -> tuple[str, str]:
    """Decides whether an image is CT or MR.

    Args:
        tag: the DICOM Modality (``"CT"``, ``"MR"``) or None when the file has none.
        array: the image in physical units, for the heuristic.
        requested: ``config.modality``: ``"ct"`` or ``"mri"`` override, ``"auto"`` decides.

    Returns:
        ``("CT" or "MR", reason)``, the reason in words for ``medgan info``.
    """
    if requested == "ct":
        return "CT", "set by data.modality"
    if requested == "mri":
        return "MR", "set by data.modality"
    if tag in ("CT", "MR"):
        return tag, "DICOM Modality tag"
    minimum = float(np.nanmin(array))
    if minimum < -500.0:
        return "CT", f"guessed: values below -500 (min {minimum:.0f}, air in HU)"
    return "MR", "guessed: no values below -500; set data.modality=ct if this is CT"
