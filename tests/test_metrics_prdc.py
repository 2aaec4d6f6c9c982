"""Precision/recall/density/coverage against a direct scipy implementation of the published definitions."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from medgan.errors import DataError
from medgan.metrics.prdc import prdc


pytestmark = pytest.mark.usefixtures("one_thread")


# The package re-exports the function under the module's name, so fetch the module itself.
prdc_module = importlib.import_module("medgan.metrics.prdc")


def reference_prdc(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, float]:
    real_real, fake_fake, real_fake = cdist(real, real), cdist(fake, fake), cdist(real, fake)
    real_radii = np.sort(real_real, axis=1)[:, k]  # column 0 is the point itself
    fake_radii = np.sort(fake_fake, axis=1)[:, k]
    inside = real_fake <= real_radii[:, None]  # [real, fake]: fake j inside real ball i
    return {
        "precision": inside.any(axis=0).mean(),
        "recall": (real_fake <= fake_radii[None, :]).any(axis=1).mean(),
        "density": inside.sum() / (k * len(fake)),
        "coverage": (real_fake.min(axis=1) <= real_radii).mean(),
    }


@pytest.mark.parametrize("shift", [0.0, 0.7, 3.0])
def test_prdc_matches_reference(shift, monkeypatch):
    monkeypatch.setattr(prdc_module, "CHUNK", 37)  # exercise the chunked path
    rng = np.random.default_rng(0)
    real = rng.standard_normal((150, 6)) + 5.0
    fake = rng.standard_normal((120, 6)) * 1.3 + 5.0 + shift
    ours, expected = prdc(real, fake, k=5), reference_prdc(real, fake, k=5)
    for name in expected:
        # float32 distances: a borderline point may flip, one point at most
        assert ours[name] == pytest.approx(expected[name], abs=1.0 / 100), name


def test_prdc_extremes():
    rng = np.random.default_rng(1)
    real = rng.standard_normal((100, 4))
    same = prdc(real, real.copy())
    assert same["precision"] == 1.0 and same["recall"] == 1.0 and same["coverage"] == 1.0
    assert same["density"] == pytest.approx(1.0 + 1.0 / 5, abs=0.01)  # each point lies in its own ball too
    far = prdc(real, real + 100.0)
    assert far == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_collapsed_fake_has_precision_but_no_recall():
    rng = np.random.default_rng(2)
    real = rng.standard_normal((200, 8))
    collapsed = np.repeat(real[:1], 200, axis=0)
    result = prdc(real, collapsed)
    assert result["precision"] == 1.0
    assert result["recall"] < 0.05 and result["coverage"] < 0.05


def test_prdc_needs_more_than_k_images():
    with pytest.raises(DataError, match="more than 5"):
        prdc(np.ones((5, 3)), np.ones((50, 3)))
