"""Pixel losses of image-to-image tasks: pure functions on images in [-1, 1].

CycleGAN's terms (Zhu et al. 2017, eq. 2 and section 5.2), for generators G: A -> B and F: B -> A:

* cycle consistency  L_cyc = E|F(G(a)) - a|_1 + E|G(F(b)) - b|_1
* identity           L_idt = E|G(b) - b|_1 + E|F(a) - a|_1 (keeps intensities where nothing needs changing)
"""

from __future__ import annotations

from torch import Tensor


def l1(output: Tensor, target: Tensor) -> Tensor:
    """Mean absolute error ``mean |output - target|`` (pix2pix's reconstruction term)."""
    return (output.float() - target.float()).abs().mean()


def cycle_consistency(reconstructed_a: Tensor, a: Tensor, reconstructed_b: Tensor, b: Tensor) -> Tensor:
    """``mean|F(G(a)) - a| + mean|G(F(b)) - b|``: both round trips must give the input back."""
    return l1(reconstructed_a, a) + l1(reconstructed_b, b)


def identity_mapping(same_b: Tensor, b: Tensor, same_a: Tensor, a: Tensor) -> Tensor:
    """``mean|G(b) - b| + mean|F(a) - a|``: a generator fed its own target domain should change nothing."""
    return l1(same_b, b) + l1(same_a, a)
