"""Intervals and small-N honesty (``medgan.metrics.intervals``, ``bootstrap``, ``fid_infinity``) and
``medgan evaluate --compare`` (``medgan.evaluation.compare``): tiny feature sets, few resamples."""

from __future__ import annotations

import importlib
import json
import sys

import numpy as np
import pytest
import torch

from medgan.errors import ConfigError
from medgan.metrics import intervals
from medgan.metrics.bootstrap import resample_indices
from medgan.metrics.diversity import PairValues, diversity_of_pairs
from medgan.metrics.fid import fid, fid_of_rows
from medgan.metrics.fid_infinity import fid_infinity, fid_infinity_plan, small_n_warning
from medgan.metrics.kid import KernelBlocks, polynomial_mmd, subset_size_for
from medgan.metrics.prdc import prdc, prdc_of_distances

from helpers import cli

pytestmark = pytest.mark.usefixtures("one_thread")


def gaussian(count: int, dim: int, seed: int, shift: float = 0.0, scale: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(shift, scale, size=(count, dim))


def how(resamples: int = 100, subjects=None, count: int = 0) -> intervals.Resampling:
    return intervals.real_resampling(subjects, count, resamples=resamples, seed=0)


# ---------------------------------------------------------------------------------------------------------------
# building blocks: resampling schemes and the fast exact routes resamples take


def test_half_samples_never_repeat_and_draw_half_the_subjects():
    rng = np.random.default_rng(0)
    half = resample_indices(101, rng, scheme="half")
    assert len(half) == 50 and len(np.unique(half)) == 50
    subjects = np.repeat(np.arange(10), 3)
    drawn = resample_indices(30, rng, subjects, scheme="half")
    assert len(drawn) == 15 and len(np.unique(subjects[drawn])) == 5
    with_replacement = resample_indices(30, rng, subjects)
    assert all(np.sum(subjects[with_replacement] == s) % 3 == 0 for s in range(10))  # whole subjects


def test_fast_routes_equal_the_plain_metrics():
    real, fake = gaussian(80, 40, 0), gaussian(120, 40, 1, 0.2, 1.1)
    assert fid_of_rows(real, fake) == pytest.approx(fid(real, fake), rel=1e-9)  # D x D route
    wide_real, wide_fake = gaussian(60, 200, 2), gaussian(70, 200, 3, 0.1)  # Gram route (n < D)
    rows = fid_of_rows(wide_real, wide_fake)
    from medgan.metrics.fid import feature_statistics, frechet_distance
    # singular covariances: the D x D route loses ~1e-8 in the square roots of near-zero eigenvalues
    assert rows == pytest.approx(frechet_distance(*feature_statistics(wide_real), *feature_statistics(wide_fake)),
                                 rel=1e-7)
    kernel = KernelBlocks(torch.as_tensor(real), torch.as_tensor(fake), np.arange(80) // 4, np.arange(120) // 6)
    chosen_real, chosen_fake = np.zeros(20), np.zeros(20)
    chosen_real[:10], chosen_fake[5:15] = 1, 1
    assert kernel.mmd(chosen_real, chosen_fake) == pytest.approx(
        polynomial_mmd(torch.as_tensor(real[:40]), torch.as_tensor(fake[30:90])), rel=1e-6)
    tables = [intervals.distance_table(a, b) for a, b in ((real, real), (fake, fake), (real, fake))]
    assert prdc_of_distances(*tables) == pytest.approx(prdc(real, fake), abs=1e-6)  # prdc divides in float32


def test_kid_subset_size_rule():
    assert subset_size_for(112, 500) == 56  # the demo: subsets differ (not the whole real set every time)
    assert subset_size_for(1500, 1500) == 750
    assert subset_size_for(5000, 3000) == 1000  # torch-fidelity's size from 2000 images per set on
    assert subset_size_for(3, 50) == 2


# ---------------------------------------------------------------------------------------------------------------
# intervals


def test_intervals_contain_the_value_and_shrink_with_n():
    widths = {}
    for count in (100, 400):
        real, fake = gaussian(count, 8, count), gaussian(count, 8, count + 1, 0.3)
        setting = how()
        found = {"fid": intervals.fid_interval(real, fake, setting)}
        values = {"fid": fid(real, fake), **prdc(real, fake)}
        found.update(intervals.prdc_intervals(real, fake, setting, values))
        for name, entry in found.items():
            assert entry["low"] <= values[name] <= entry["high"], (count, name, entry)
            assert entry["n_real"] == count and entry["resampled"] == "images" and entry["confidence"] == 0.95
        assert found["precision"]["scheme"] == "half" and found["fid"]["scheme"] == "bootstrap"
        widths[count] = {name: entry["high"] - entry["low"] for name, entry in found.items()}
    assert widths[400]["fid"] < 0.7 * widths[100]["fid"]
    assert widths[400]["recall"] < widths[100]["recall"]


def test_subject_resampling_is_wider_when_slices_of_a_subject_are_near_duplicates():
    generator = np.random.default_rng(0)
    centres = generator.normal(size=(12, 4))
    real = np.repeat(centres, 10, axis=0) + 0.05 * generator.normal(size=(120, 4))  # 12 subjects x 10 slices
    fake = generator.normal(size=(300, 4))
    subjects = [f"subject-{index // 10}" for index in range(120)]
    by_subject, by_image = how(subjects=subjects, count=120), how()
    assert by_subject.resampled == "subjects" and by_image.resampled == "images"
    width = {name: entry["high"] - entry["low"] for name, entry in (
        ("subjects", intervals.fid_interval(real, fake, by_subject)), ("images", intervals.fid_interval(real, fake,
                                                                                                       by_image)))}
    assert width["subjects"] > 1.5 * width["images"]
    lone = how(subjects=["mni"] * 120, count=120)  # one subject: images, and a note that says why
    assert lone.real_groups is None and "1 subject" in lone.note


def test_diversity_and_memorization_intervals():
    generator = np.random.default_rng(1)
    first = generator.integers(0, 40, 200)
    pairs = PairValues(first, (first + 1 + generator.integers(0, 39, 200)) % 40, generator.uniform(0.2, 0.99, 200), 40)
    found = intervals.diversity_intervals(pairs, pairs, how(50))
    summary = diversity_of_pairs(pairs, pairs)
    assert found["diversity.relative_diversity"]["low"] <= summary["relative_diversity"] == pytest.approx(1.0)
    assert found["diversity.synthetic_ms_ssim.mean"]["low"] < summary["synthetic_ms_ssim"]["mean"] \
        < found["diversity.synthetic_ms_ssim.mean"]["high"]

    from medgan.metrics.memorization import MemorizationAudit, NearestNeighbours

    def neighbours(ssim):
        return NearestNeighbours(np.zeros(len(ssim), int), np.asarray(ssim), np.zeros(len(ssim), int),
                                 np.linspace(1, 2, len(ssim)))

    audit = MemorizationAudit(neighbours([0.99] * 30 + [0.5] * 70), neighbours([0.5] * 40), "held-out", 0.95,
                              np.arange(40))
    found = intervals.memorization_intervals(audit, how(50))
    copies = found["memorization.near_copy_fraction"]
    assert copies["low"] < 0.3 < copies["high"] and copies["high"] - copies["low"] < 0.35
    assert found["memorization.baseline_near_copy_fraction"]["high"] == 0.0


# ---------------------------------------------------------------------------------------------------------------
# small N: FID-infinity and the warning


def test_fid_infinity_recovers_the_large_n_fid_of_two_gaussians():
    dim, scales = 32, np.linspace(0.8, 1.5, 32)
    generator = np.random.default_rng(0)
    real = generator.normal(size=(20000, dim))  # real statistics fixed, as Chong & Forsyth
    fake = generator.normal(size=(1000, dim)) * scales + 0.1
    large = fid(real, generator.normal(size=(200000, dim)) * scales + 0.1)
    result = fid_infinity(real, fake, seed=0)
    assert result["sizes"][0] == 200 and result["sizes"][-1] == 1000 and result["slope"] > 0
    assert abs(result["value"] - large) < 0.15 < fid(real, fake) - large  # closer than FID at N = 1000
    assert fid_infinity(real, fake[:100]) is None  # N < 4 D
    sizes, why = fid_infinity_plan(112, 500, 64)  # the brain demo: sizes from 2 D = 128 to 500
    assert sizes[0] == 128 and sizes[-1] == 500 and len(sizes) == 8 and why is None
    sizes, why = fid_infinity_plan(112, 200, 64)
    assert sizes == [] and "needs N >= 256" in why
    assert "real set has 50 images" in fid_infinity_plan(50, 500, 64)[1]


def test_small_n_warning_thresholds():
    message = small_n_warning(112, 500, 64)
    assert "112 real" in message and "same N" in message and "KID" in message
    assert small_n_warning(5000, 900, 64) is not None  # under 1,000 synthetic images
    assert "feature dimension" in small_n_warning(2000, 2000, 2048)
    assert small_n_warning(1000, 1200, 64) is None


# ---------------------------------------------------------------------------------------------------------------
# medgan evaluate --compare


@pytest.fixture
def mni() -> torch.Tensor:
    from medgan.config import DataConfig
    from medgan.data import load_slices

    return load_slices(DataConfig(), progress=False).images


def test_compare_separates_a_trained_run_from_an_early_one(tmp_path, monkeypatch, mni):
    from test_evaluation_evaluate import fake_sampling, make_run

    compare = importlib.import_module("medgan.evaluation.compare")
    monkeypatch.setitem(sys.modules, "medgan.inference.sampling", fake_sampling(mni))
    monkeypatch.setattr(compare, "DIVERSITY_PAIRS", 100)
    monkeypatch.setenv("MEDGAN_CACHE_DIR", str(tmp_path / "cache"))
    trained, early = make_run(tmp_path, "trained"), make_run(tmp_path, "early")
    metrics = compare.compare_runs(trained, early, "mni152", tmp_path / "cmp", max_images=150, progress=False,
                                   resamples=60)
    rows = {row["key"]: row for row in metrics["comparison"]}
    assert set(rows) == {"fid", "kid", "precision", "recall", "density", "coverage", "pairwise_ms_ssim", "frd",
                         "spectrum_top_band"}
    fid_row = rows["fid"]
    assert fid_row["verdict"] == "A better" and fid_row["low"] <= fid_row["difference"] <= fid_row["high"] < 0
    assert fid_row["a"] < fid_row["b"] and fid_row["n_real"] == 112 and fid_row["n_fake"] == 150
    assert all(row["verdict"] in ("A better", "B better", "not separated at 95%") for row in rows.values())
    assert metrics["small_n"]["flagged"]
    written = json.loads((tmp_path / "cmp" / "metrics.json").read_text())
    assert written["comparison"][0]["key"] == "fid"
    page = (tmp_path / "cmp" / "report.html").read_text(encoding="utf-8")
    assert 'data-table="comparison"' in page and "warning-box" in page and 'data-figure="samples-b"' in page
    lines = compare.format_comparison(metrics, "wrote").splitlines()
    assert any(line.startswith("FID") and "A better" in line for line in lines)


def test_compare_refuses_fake_with_compare_and_a_path_that_is_not_a_run(tmp_path):
    from test_evaluation_evaluate import make_run

    folder = tmp_path / "images"
    folder.mkdir()
    run = make_run(tmp_path, "run")
    cases = (
        (["--compare", run, run, "--fake", folder], "--compare and --fake are alternatives"),
        (["--compare", folder, run], "not a run"),
        (["--compare", run], "two runs"),
        ([], "give --fake"),
        (["--compare", run, run, "--train", folder], "--train is for --fake"),
    )
    for arguments, fragment in cases:
        result = cli("evaluate", "--real", "mni152", "--out", tmp_path / "out", *arguments)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        assert fragment in lines[0], lines[0]
    assert not (tmp_path / "out").exists()
    import medgan

    with pytest.raises(ConfigError, match="not a run"):
        medgan.compare(folder, run, real="mni152", progress=False)
