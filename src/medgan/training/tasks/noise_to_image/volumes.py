"""What a noise-to-image task does differently with volumes (``data.dims: 3``): its config rules, the pictures of
its sample grids, and the 2D views its in-training score compares.

Cubes are ``[N, C, D, H, W]`` with D superior, H anterior, W right (``medgan.data.cubes``).
"""

from __future__ import annotations

import torch

from medgan.config import RunConfig, check

GRID_VOLUMES = 8  # volumes in a sample grid: one row each, its axial, coronal and sagittal mid-planes
SCORE_OFFSETS = (-0.25, -0.125, 0.0, 0.125, 0.25)  # slice positions per plane, as fractions of the side from the middle


def check_volume_config(config: RunConfig, spectral: float, name: str) -> None:
    """Refuses, one key at a time, what 3D training does not do (``spectral``: the task's spectral weight)."""
    if config.data.dims != 3:
        return
    check(config.model.name == "dcgan", "model.name", "must be dcgan with data.dims 3 (the 3D networks are the "
          "DCGAN topology with 3D layers)")
    check(spectral == 0.0, f"{name}.spectral", "is a 2D term (radial power spectrum of slices); set it to 0 with "
          "data.dims 3")
    check(config.data.rotate_degrees == 0.0, "data.rotate_degrees", "must be 0 with data.dims 3: classic 3D "
          "augmentation is the left-right flip (data.flip); DiffAugment (augment.policy) works in 3D")
    check(config.data.scale == 0.0, "data.scale", "must be 0 with data.dims 3: classic 3D augmentation is the "
          "left-right flip (data.flip)")


def mid_planes(volumes: torch.Tensor) -> torch.Tensor:
    """``[N, C, S, S, S]`` -> ``[3N, C, S, S]``: per volume its axial, coronal and sagittal mid-plane, in display
    orientation (anterior up in axial, superior up in coronal and sagittal)."""
    middle = volumes.shape[2] // 2
    axial = volumes[:, :, middle].flip(-2)  # [N, C, H, W]: anterior at the top
    coronal = volumes[:, :, :, middle].flip(-2)  # [N, C, D, W]: superior at the top
    sagittal = volumes[:, :, :, :, middle].flip(-2)  # [N, C, D, H]: superior at the top
    return torch.stack([axial, coronal, sagittal], dim=1).flatten(0, 1)


def plane_views(volumes: torch.Tensor) -> torch.Tensor:
    """``[N, C, S, S, S]`` -> ``[15N, C, S, S]``: five slices through the middle half of each of the three planes,
    the 2D views the in-training FID compares (a cheap proxy of MAISI's three-plane FID)."""
    side = volumes.shape[2]
    positions = [min(side - 1, max(0, round(side / 2 + offset * side))) for offset in SCORE_OFFSETS]
    views = [volumes[:, :, p] for p in positions] + [volumes[:, :, :, p] for p in positions]
    views += [volumes[:, :, :, :, p] for p in positions]
    return torch.cat(views)
