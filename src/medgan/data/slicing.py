"""Slicing: a volume -> upright 2D slices -> foreground filter -> square ``resolution`` x ``resolution`` tiles.

Orientation. Volumes with an affine are first reoriented to the closest RAS+ axis order with nibabel
(``io_orientation``), so axis 0 is sagittal, 1 coronal and 2 axial for every NIfTI or DICOM input, whatever
its stored orientation. A slice ``s[a, b]`` (``a`` the lower remaining axis) is then shown as
``flip(s.T, both axes)``: rows run from anterior/superior (top) to posterior/inferior, columns from the
patient's right to left. That is the radiological convention: axial slices nose up with the patient's right
on the viewer's left, coronal and sagittal slices head up (sagittal facing left). An axial DICOM series
comes out exactly as its stored frames. Arrays without an affine (NPY) get the identity affine, so the rule
treats their axes as RAS. 2D images are already in display orientation and are not touched.

Foreground. A slice's foreground fraction is the fraction of its pixels above ``FOREGROUND_THRESHOLD`` (-0.9)
in unit space, i.e. above ``low + 5%`` of the intensity window. It is measured on the slice before fitting,
so padding does not count as background.

Fitting (all outputs are square, isotropic pixels, background -1):

* ``"resize"``: keep the whole field of view: scale so the longer physical side spans ``resolution``
  pixels, then pad the shorter side with -1 (the same as padding to a square first and resampling, but
  without blending -1 into the edge pixels).
* ``"crop"``: fill the frame: scale so the shorter physical side spans ``resolution`` pixels, then
  centre-crop the longer side.
* ``"pad"``: keep the native pixel size (resampling only to make anisotropic pixels square), then centre-pad
  with -1 to ``resolution``, centre-cropping any side that is longer.

Minimum size. A slice smaller than ``MIN_SIDE`` pixels on a side is refused (``check_slice_size``): fitting
would only upscale a few pixels into a blur, which trains nothing useful.

Resampling is bilinear with antialiasing (``torch.nn.functional.interpolate(antialias=True)``): its weights
are non-negative, so [-1, 1] stays [-1, 1], and downsampling a 512-pixel CT slice does not alias.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from medgan.data.readers import Volume
from medgan.errors import DataError

FOREGROUND_THRESHOLD = -0.9  # unit-space level above which a pixel counts as foreground
BACKGROUND = -1.0  # unit-space value of padding (air / no signal)
FIT_MODES = ("resize", "crop", "pad")
AXIS_NAMES = {0: "sagittal", 1: "coronal", 2: "axial"}
_CHUNK = 64  # slices resampled per interpolate call, to bound memory on 512 x 512 CT stacks
MIN_SIDE = 8  # smallest slice side medgan takes, in pixels (module docstring)


def to_canonical(volume: Volume) -> Volume:
    """The volume reoriented to the closest RAS+ axis order (a no-op for 2D images and RAS data).

    Args:
        volume: a 2D or 3D volume.

    Returns:
        A volume whose array axes point (as closely as possible) to Right, Anterior, Superior.
    """
    import nibabel.orientations as orientations

    if volume.array.ndim != 3:
        return volume
    ornt = orientations.io_orientation(volume.affine)
    if np.array_equal(ornt, [[0, 1], [1, 1], [2, 1]]):
        return volume
    array = np.ascontiguousarray(orientations.apply_orientation(volume.array, ornt))
    affine = volume.affine @ orientations.inv_ornt_aff(ornt, volume.array.shape)
    spacing = tuple(float(volume.spacing[int(axis)]) for axis in ornt[:, 0].argsort())
    return Volume(array, affine, spacing, volume.modality, volume.path, volume.subject)


def slice_count(shape: tuple[int, ...], axis: int) -> int:
    """Number of 2D slices a 2D image (1) or 3D volume of ``shape`` gives along ``axis``."""
    return 1 if len(shape) == 2 else int(shape[axis])


def upright_slices(array: np.ndarray, axis: int) -> np.ndarray:
    """All slices of a canonical 3D ``array`` along ``axis`` in display orientation, ``[S, H, W]``.

    A 2D array is returned as one slice unchanged.
    """
    return np.ascontiguousarray(upright_view(array, axis))


def upright_view(array: np.ndarray, axis: int) -> np.ndarray:
    """``upright_slices`` as a view of ``array`` (no copy), writable where ``array`` is: slices written into it
    land in the array's own voxel order."""
    if array.ndim == 2:
        return array[None]
    stack = np.moveaxis(array, axis, 0)  # [S, a, b]
    return np.flip(np.swapaxes(stack, 1, 2), axis=(1, 2))  # [S, b, a], flipped


def slice_shape(shape: tuple[int, ...], axis: int) -> tuple[int, int]:
    """``(H, W)`` of the slices ``upright_slices`` gives of an array of ``shape`` (a 2D shape is its own slice)."""
    if len(shape) == 2:
        return int(shape[0]), int(shape[1])
    first, second = (index for index in range(3) if index != axis)
    return int(shape[second]), int(shape[first])


def check_slice_size(shape: tuple[int, ...], path, axis: int | None = None) -> None:
    """Raises DataError, naming ``path``, when slices of ``shape`` (``(H, W)``, or ``[S, H, W]``) are smaller than
    ``MIN_SIDE`` pixels on a side; ``axis`` is the slicing axis of a 3D volume, named in the error."""
    height, width = (int(side) for side in shape[-2:])
    if min(height, width) >= MIN_SIDE:
        return
    what = "image" if axis is None else f"{axis_name(axis)} slices (data.axis={axis})"
    raise DataError(f"{what} of {height} x {width} pixels; medgan needs at least {MIN_SIDE} pixels on a side", path)


def in_plane_spacing(spacing: tuple[float, ...], axis: int) -> tuple[float, float]:
    """(row, column) mm per pixel of the slices ``upright_slices`` gives along ``axis``."""
    if len(spacing) == 2:
        return float(spacing[0]), float(spacing[1])
    first, second = (index for index in range(3) if index != axis)
    return float(spacing[second]), float(spacing[first])


def foreground_fraction(slices: np.ndarray | torch.Tensor, threshold: float = FOREGROUND_THRESHOLD) -> np.ndarray:
    """Fraction of pixels above ``threshold`` in each unit-space slice of ``[S, H, W]`` (or ``[S, 1, H, W]``)."""
    values = slices.detach().cpu().numpy() if isinstance(slices, torch.Tensor) else np.asarray(slices)
    flat = values.reshape(values.shape[0], -1)
    return (flat > threshold).mean(axis=1)


def fitted_size(
    shape: tuple[int, int], spacing: tuple[float, float], resolution: int, mode: str
) -> tuple[tuple[int, int], float]:
    """Resampled ``(H, W)`` before the final pad/crop, and the output mm per pixel, for one slice geometry.

    Args:
        shape: slice ``(H, W)`` in pixels.
        spacing: slice (row, column) mm per pixel.
        resolution: output side in pixels.
        mode: ``"resize"``, ``"crop"`` or ``"pad"`` (see the module docstring).
    """
    if mode not in FIT_MODES:
        raise ValueError(f"unknown fit mode {mode!r}")  # config.validate rejects it first; reaching here is a bug
    height_mm, width_mm = shape[0] * spacing[0], shape[1] * spacing[1]
    if mode == "resize":
        pixel = max(height_mm, width_mm) / resolution
    elif mode == "crop":
        pixel = min(height_mm, width_mm) / resolution
    else:
        pixel = min(spacing)
    size = (max(1, round(height_mm / pixel)), max(1, round(width_mm / pixel)))
    return size, float(pixel)


def fit_slices(
    slices: np.ndarray | torch.Tensor,
    spacing: tuple[float, float],
    resolution: int,
    mode: str = "resize",
    label_map: bool = False,
) -> tuple[torch.Tensor, tuple[float, float]]:
    """Brings unit-space slices ``[S, H, W]`` to ``[S, 1, resolution, resolution]``.

    Args:
        slices: slices in [-1, 1], all of one size, background -1 (or label values for a label map).
        spacing: their (row, column) mm per pixel.
        resolution: output side in pixels.
        mode: ``"resize"``, ``"crop"`` or ``"pad"``.
        label_map: the slices hold label values: resample nearest-neighbour (``"nearest-exact"``, whose pixel
            centres match the bilinear resampling of image slices, so aligned domains stay aligned), so no
            new values appear, and pad with label 0.

    Returns:
        The float32 tiles and their (row, column) mm per pixel.
    """
    if isinstance(slices, np.ndarray):
        slices = np.ascontiguousarray(slices)  # torch cannot wrap the negative strides of flipped views
    tensor = torch.as_tensor(slices, dtype=torch.float32)
    tensor = tensor.reshape(tensor.shape[0], 1, tensor.shape[-2], tensor.shape[-1])
    size, pixel = fitted_size(tuple(tensor.shape[-2:]), spacing, resolution, mode)
    if size != tuple(tensor.shape[-2:]):
        if label_map:
            chunks = [F.interpolate(chunk, size=size, mode="nearest-exact") for chunk in tensor.split(_CHUNK)]
            tensor = torch.cat(chunks)
        else:
            chunks = [
                F.interpolate(chunk, size=size, mode="bilinear", align_corners=False, antialias=True)
                for chunk in tensor.split(_CHUNK)
            ]
            tensor = torch.cat(chunks).clamp_(-1.0, 1.0)
    return centre_to(tensor, resolution, 0.0 if label_map else BACKGROUND), (pixel, pixel)


def centre_to(images: torch.Tensor, resolution: int, value: float = BACKGROUND) -> torch.Tensor:
    """Centre-pads (with ``value``) and/or centre-crops ``[N, C, H, W]`` to ``resolution`` x ``resolution``."""
    height, width = images.shape[-2:]
    pad_top, pad_left = max(0, resolution - height) // 2, max(0, resolution - width) // 2
    padding = (pad_left, max(0, resolution - width) - pad_left, pad_top, max(0, resolution - height) - pad_top)
    if any(padding):
        images = F.pad(images, padding, mode="constant", value=value)
    top, left = (images.shape[-2] - resolution) // 2, (images.shape[-1] - resolution) // 2
    return images[..., top : top + resolution, left : left + resolution].contiguous()


def axis_name(axis: int, ndim: int = 3) -> str:
    """``"axial"``, ``"coronal"`` or ``"sagittal"`` for a 3D axis (in RAS order); ``"image"`` for 2D."""
    return AXIS_NAMES.get(axis, f"axis {axis}") if ndim == 3 else "image"


def neighbour_indices(centres: np.ndarray, count: int, context: int) -> np.ndarray:
    """The slices a 2.5D input stacks for each centre slice (``data.context``): ``[len(centres), 2 * context + 1]``.

    Each row is the centre itself first, then its neighbours nearest first, below before above (``z, z - 1,
    z + 1, z - 2, z + 2, ...``), so channel 0 is always the slice being translated (the U-Net's residual start,
    and every view that shows "the input"). Neighbours past either end of the ``count`` slices replicate the
    nearest existing slice.

    Args:
        centres: indices of the centre slices along the slicing axis.
        count: the number of slices along that axis.
        context: neighbouring slices on each side (0: the centre alone, ``[len(centres), 1]``).
    """
    offsets = [0] + [sign * step for step in range(1, context + 1) for sign in (-1, 1)]
    indices = np.asarray(centres, dtype=np.int64)[:, None] + np.asarray(offsets, dtype=np.int64)[None]
    return np.clip(indices, 0, max(count - 1, 0))


def crop_to_foreground(slices: np.ndarray, threshold: float = FOREGROUND_THRESHOLD, margin: float = 0.05) -> np.ndarray:
    """Crops a stack of unit-space slices [S, H, W] to the union bounding box of their foreground.

    One box for the whole stack keeps the physical scale identical across the slices of a volume, so
    after fitting every slice has the same mm per pixel.

    Args:
        slices: [S, H, W] float32 in [-1, 1].
        threshold: pixels above this count as foreground (the same rule as ``foreground_fraction``).
        margin: border kept around the box, as a fraction of the box's longer side.

    Returns:
        The cropped stack; ``slices`` itself when it has no foreground.
    """
    return crop_to_box(slices, foreground_box(slices > threshold, margin))


def foreground_box(foreground: np.ndarray, margin: float = 0.05) -> tuple[slice, slice] | None:
    """The union bounding box of a foreground mask ``[S, H, W]`` over its slices, with a border.

    The rule of MONAI's ``CropForeground(margin=border, allow_smaller=True)`` with the slices as channels:
    the border is ``margin`` times the box's longer side (rounded), and the box stops at the image edges.
    Aligned domains share one box by passing the union of their masks (``np.concatenate`` along S).

    Args:
        foreground: boolean mask, True where a pixel counts as foreground.
        margin: border kept around the box, as a fraction of the box's longer side.

    Returns:
        ``(rows, columns)`` slices, or None when nothing is foreground.
    """
    if foreground.size == 0 or not foreground.any():
        return None
    rows, columns = np.nonzero(foreground.any(axis=0))
    border = int(round(margin * max(np.ptp(rows) + 1, np.ptp(columns) + 1)))
    height, width = foreground.shape[-2:]
    return (
        slice(max(int(rows.min()) - border, 0), min(int(rows.max()) + 1 + border, height)),
        slice(max(int(columns.min()) - border, 0), min(int(columns.max()) + 1 + border, width)),
    )


def crop_to_box(slices: np.ndarray, box: tuple[slice, slice] | None) -> np.ndarray:
    """``slices`` ``[S, H, W]`` cropped to ``box`` (from ``foreground_box``) as float32; unchanged for None."""
    if box is None:
        return slices
    return np.ascontiguousarray(slices[:, box[0], box[1]], dtype=np.float32)
