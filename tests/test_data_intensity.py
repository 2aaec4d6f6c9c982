"""Intensity mappings against hand-computed values: CT windows, MRI percentile / z-score, round trips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medgan.data.intensity import (
    CT_WINDOWS,
    IntensityMapping,
    combine_mappings,
    ct_window,
    ct_window_from,
    detect_modality,
    mri_mapping,
)
from medgan.errors import ConfigError, DataError


def test_presets_match_the_clinical_windows():
    assert CT_WINDOWS == {
        "brain": (40, 80),
        "abdomen": (50, 400),
        "liver": (30, 150),
        "liver-portal": (90, 200),  # contrast-enhanced liver
        "bone": (500, 2000),
        "lung": (-600, 1500),
        "body-wide": (0, 2000),  # -1000 to 1000 HU: air and cortical bone both kept (synthetic CT)
    }


def test_abdomen_window_maps_hand_computed_values():
    mapping = ct_window(50, 400)  # [-150, 250] HU
    assert (mapping.low, mapping.high, mapping.unit, mapping.kind) == (-150, 250, "HU", "ct_window")
    hounsfield = np.array([-1000, -150, 50, 150, 250, 3000], dtype=np.float32)
    np.testing.assert_allclose(mapping.to_unit(hounsfield), [-1, -1, 0, 0.5, 1, 1])
    assert mapping.to_unit(hounsfield).dtype == np.float32


def test_round_trip_inside_the_window_numpy_and_torch():
    mapping = ct_window(-600, 1500)
    hounsfield = np.linspace(-1350, 150, 31)
    np.testing.assert_allclose(mapping.to_physical(mapping.to_unit(hounsfield)), hounsfield, atol=1e-9)
    unit = torch.linspace(-1, 1, 9)
    back = mapping.to_unit(mapping.to_physical(unit))
    assert isinstance(back, torch.Tensor) and torch.allclose(back, unit, atol=1e-6)
    assert mapping.to_physical(torch.tensor([0.0])).item() == pytest.approx(-600)


def test_config_level_width_override_the_preset():
    assert ct_window_from("liver") == ct_window(30, 150)
    assert ct_window_from("liver", level=100, width=40) == IntensityMapping("ct_window", 80, 120, "HU")
    with pytest.raises(ConfigError, match="abdomen"):
        ct_window_from("kidney")


def test_dict_round_trip_and_bad_dicts():
    mapping = mri_mapping(np.arange(1, 101, dtype=np.float32))
    assert IntensityMapping.from_dict(mapping.to_dict()) == mapping
    assert set(mapping.to_dict()) == {"kind", "low", "high", "unit"}
    with pytest.raises(DataError, match="needs kind"):
        IntensityMapping.from_dict({"kind": "ct_window"})
    with pytest.raises(DataError, match="low"):
        IntensityMapping("percentile", 5.0, 5.0)


def test_percentile_uses_foreground_only():
    # 900 zero background voxels and foreground 1..100: the 0.5/99.5 percentiles of 1..100 only.
    volume = np.concatenate([np.zeros(900), np.arange(1, 101)]).astype(np.float32)
    mapping = mri_mapping(volume, "percentile", (0.5, 99.5))
    assert mapping.low == pytest.approx(1 + 0.005 * 99) and mapping.high == pytest.approx(1 + 0.995 * 99)
    assert mapping.to_unit(np.float32(0.0)) == -1.0  # background ends at -1
    assert mri_mapping(volume, "percentile", (10, 90)).low == pytest.approx(1 + 0.1 * 99)


def test_zscore_clips_at_three_standard_deviations():
    foreground = np.array([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0])  # mean 5, std 2
    mapping = mri_mapping(np.concatenate([[0.0], foreground]), "zscore")
    assert (mapping.low, mapping.high, mapping.kind) == (pytest.approx(-1.0), pytest.approx(11.0), "zscore")
    np.testing.assert_allclose(mapping.to_unit(np.array([5.0, 7.0, 11.0, 20.0])), [0, 1 / 3, 1, 1])


def test_combined_mapping_is_the_median_of_volumes():
    mappings = [IntensityMapping("percentile", low, high) for low, high in [(0, 10), (2, 30), (4, 20)]]
    assert combine_mappings(mappings) == IntensityMapping("percentile", 2, 20)


def test_modality_detection_order():
    hounsfield = np.array([-1000.0, 40.0])
    assert detect_modality(None, hounsfield)[0] == "CT"
    assert detect_modality(None, np.array([0.0, 900.0]))[0] == "MR"
    assert detect_modality("MR", hounsfield)[0] == "MR"  # the DICOM tag beats the heuristic
    assert detect_modality("CT", hounsfield, "mri") == ("MR", "set by data.modality")
