"""Classic baselines of paired evaluation, each a function on physical-unit slices ``[N, H, W]``.

Registered in ``BASELINES``; ``APPLICABLE`` says which apply to a run's ``data.degrade`` kind:

* ``input``: the degraded input itself ("bicubic" in tables for ``downsample``, whose input is the bicubic
  upsampling);
* ``gaussian``: ``scipy.ndimage.gaussian_filter`` with the sigma from ``GAUSSIAN_SIGMAS`` that gives the best
  mean SSIM against the target on the context's tuning slices (``BaselineContext.tuning``);
* ``nlm``: scikit-image's ``denoise_nl_means`` recipe from its documentation (patch 5, distance 6, h = 0.8 sigma,
  fast mode), sigma by ``estimate_sigma``'s wavelet rule over the pixels the window did not clip
  (``estimate_noise``);
* ``biharmonic``: scikit-image's ``inpaint_biharmonic`` on the hole of the mask domain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from scipy import ndimage

from medgan.errors import DataError
from medgan.metrics.paired import paired_errors
from medgan.registry import Registry

APPLICABLE = {"lowdose": ("input", "gaussian", "nlm"), "downsample": ("input",), "inpaint": ("input", "biharmonic"),
              "mask": (), None: ()}
GAUSSIAN_SIGMAS = (0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0)  # pixels
NLM_PATCH, NLM_DISTANCE, NLM_H = 5, 6, 0.8  # scikit-image's denoise_nl_means example


@dataclass
class BaselineContext:
    """What a baseline may use besides its inputs.

    Attributes:
        data_range: the target mapping's range (physical units).
        low: its lower end.
        holes: ``[N, H, W]`` hole masks of inpainting runs, else None.
        tuning: ``(inputs, targets, masks)`` of the slices on which a baseline may choose a parameter.
        chosen: what each baseline chose (e.g. ``{"gaussian": {"sigma_px": 1.0}}``), for the report.
    """

    data_range: float
    low: float
    holes: np.ndarray | None
    tuning: tuple[np.ndarray, np.ndarray, np.ndarray]
    chosen: dict[str, dict[str, Any]] = field(default_factory=dict)


Baseline = Callable[[np.ndarray, BaselineContext], np.ndarray]
BASELINES: Registry[Baseline] = Registry("paired baseline")


@BASELINES.register("input")
def input_baseline(inputs: np.ndarray, context: BaselineContext) -> np.ndarray:
    """The degraded input itself (for ``downsample``: its bicubic upsampling)."""
    return inputs


def _gaussian(images: np.ndarray, sigma: float) -> np.ndarray:
    return ndimage.gaussian_filter(images, (0.0, sigma, sigma), mode="nearest")


@BASELINES.register("gaussian")
def gaussian_baseline(inputs: np.ndarray, context: BaselineContext) -> np.ndarray:
    """A Gaussian filter whose sigma maximises mean SSIM against the target on the tuning slices."""
    tuning_inputs, targets, masks = context.tuning
    scores = [float(np.nanmean(paired_errors(_gaussian(tuning_inputs, sigma), targets, masks, context.data_range,
                                             context.low)["ssim"])) for sigma in GAUSSIAN_SIGMAS]
    sigma = GAUSSIAN_SIGMAS[int(np.nanargmax(scores))] if np.isfinite(scores).any() else 1.0
    context.chosen["gaussian"] = {"sigma_px": sigma, "tuning_slices": len(targets)}
    return _gaussian(inputs, sigma)


def estimate_noise(image: np.ndarray, low: float, high: float) -> float:
    """scikit-image's ``estimate_sigma`` (median |finest diagonal db2 wavelet coefficient| / 0.6745), taken only
    over the pixels the intensity window did not clip.

    Written out because ``estimate_sigma`` has no mask: on windowed CT tiles, where air is clipped to the
    window floor (60% of a phantom tile), the half-clipped noise there made it report 25 HU for 40 HU of
    noise, and NLM with h = 0.8 sigma then removed a fifth of the noise instead of most of it.
    """
    import pywt
    from scipy.stats import norm
    from skimage.restoration import estimate_sigma

    margin = 1e-6 * (high - low)
    unclipped = ndimage.binary_erosion((image > low + margin) & (image < high - margin), iterations=2)
    if unclipped.mean() > 0.95:
        return float(estimate_sigma(image))
    _, (_, _, diagonal) = pywt.dwt2(image, "db2")
    # Coefficient k of the db2 transform (4 taps, symmetric padding) is centred near pixel 2k - 1.
    rows = np.clip(2 * np.arange(diagonal.shape[0]) - 1, 0, image.shape[0] - 1)
    columns = np.clip(2 * np.arange(diagonal.shape[1]) - 1, 0, image.shape[1] - 1)
    coefficients = diagonal[unclipped[np.ix_(rows, columns)]]
    coefficients = coefficients[coefficients != 0]  # as estimate_sigma: exactly flat regions carry no noise
    if coefficients.size < 16:
        return float(estimate_sigma(image))
    return float(np.median(np.abs(coefficients)) / norm.ppf(0.75))


@BASELINES.register("nlm")
def nlm_baseline(inputs: np.ndarray, context: BaselineContext) -> np.ndarray:
    """Non-local means, scikit-image's documented recipe (module docstring), one slice at a time."""
    from skimage.restoration import denoise_nl_means

    outputs = np.empty_like(inputs)
    sigmas = []
    for index, image in enumerate(inputs):
        sigma = estimate_noise(image, context.low, context.low + context.data_range)
        sigmas.append(sigma)
        outputs[index] = denoise_nl_means(image, patch_size=NLM_PATCH, patch_distance=NLM_DISTANCE,
                                          h=NLM_H * sigma, fast_mode=True, preserve_range=True)
    context.chosen["nlm"] = {"median_sigma": float(np.median(sigmas)) if sigmas else None}
    return outputs


@BASELINES.register("biharmonic")
def biharmonic_baseline(inputs: np.ndarray, context: BaselineContext) -> np.ndarray:
    """Biharmonic inpainting of each slice's hole (scikit-image); slices without a hole stay as they are."""
    from skimage.restoration import inpaint_biharmonic

    if context.holes is None:
        raise DataError("the biharmonic baseline needs the hole masks of the 'mask' domain")
    outputs = inputs.copy()
    for index, (image, hole) in enumerate(zip(inputs, context.holes)):
        if hole.any():
            outputs[index] = inpaint_biharmonic(image, hole)
    return outputs


def method_label(name: str, degrade: str | None) -> str:
    """The table name of a method: ``input`` is "bicubic" for downsampling runs."""
    if name == "input":
        return "bicubic" if degrade_kind(degrade) == "downsample" else "input"
    return {"gaussian": "Gaussian", "nlm": "NLM", "biharmonic": "biharmonic", "gan": "GAN"}.get(name, name)


def degrade_kind(degrade: str | None) -> str | None:
    """``"lowdose:0.25"`` -> ``"lowdose"``; None stays None."""
    return None if not degrade else degrade.split(":", 1)[0].strip().lower()
