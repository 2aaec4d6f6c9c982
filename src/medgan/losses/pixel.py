"""Pixel losses of image-to-image tasks: pure functions on images in [-1, 1]."""

from __future__ import annotations

from torch import Tensor


def l1(output: Tensor, target: Tensor) -> Tensor:
    """Mean absolute error ``mean |output - target|`` (pix2pix's reconstruction term)."""
    return (output.float() - target.float()).abs().mean()
