"""``medgan.evaluation.evaluate`` end to end: image folders, run directories (trained vs early vs collapsed), errors."""

from __future__ import annotations

import importlib
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from medgan.config import DataConfig, RunConfig, save_yaml
from medgan.errors import ConfigError, DataError
from medgan.evaluation.evaluate import evaluate, format_metrics
from medgan.evaluation.inputs import read_image_folder, to_unit_stack
from medgan.metrics.catalog import METRICS, interval, lookup

from helpers import blur


pytestmark = pytest.mark.usefixtures("one_thread")


suite_module = importlib.import_module("medgan.metrics.suite")


@pytest.fixture(autouse=True)
def quick_settings(monkeypatch, tmp_path):
    """Fewer random pairs and KID subsets keep each evaluation to a few seconds; the cache goes to tmp."""
    monkeypatch.setattr(suite_module, "SIMILARITY_PAIRS", 60)
    monkeypatch.setattr(suite_module, "DIVERSITY_PAIRS", 100)
    monkeypatch.setattr(suite_module, "KID_SUBSETS", 10)
    monkeypatch.setattr(suite_module, "INTERVAL_RESAMPLES", 30)
    monkeypatch.setenv("MEDGAN_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def mni() -> torch.Tensor:
    from medgan.data import load_slices

    return load_slices(DataConfig(), progress=False).images  # 112 axial slices, 64 px


def no_nan_json(path: Path) -> dict:
    def refuse(constant: str):
        raise AssertionError(f"{path} holds {constant}")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)


def test_evaluate_a_folder_of_png_and_npy_images(tmp_path, mni):
    folder = tmp_path / "synthetic"
    folder.mkdir()
    generator = torch.Generator().manual_seed(0)
    fake = (mni[torch.randint(len(mni), (90,), generator=generator)]
            + 0.05 * torch.randn(90, 1, 64, 64, generator=generator)).clamp(-1, 1)
    unit = ((fake[:, 0].numpy() + 1) / 2)
    for index in range(30):
        Image.fromarray(np.round(unit[index] * 255).astype(np.uint8)).save(folder / f"a{index:02d}.png")
        Image.fromarray(np.round(unit[30 + index] * 65535).astype(np.uint16)).save(folder / f"b{index:02d}.png")
    np.save(folder / "stack.npy", fake[60:, 0].numpy())
    metrics = evaluate("mni152", folder, tmp_path / "report", progress=False)

    written = no_nan_json(tmp_path / "report" / "metrics.json")
    assert written == metrics
    assert metrics["inputs"]["synthetic_images"] == 90 and metrics["inputs"]["real_images"] == 112
    assert metrics["inputs"]["mapping"]["kind"] == "percentile"
    for info in METRICS:
        assert lookup(metrics, info.key) is not None, info.key
    assert metrics["distribution"]["fid"] > 0 and 0 <= metrics["distribution"]["precision"] <= 1
    # Intervals beside the numbers (catalog's <key>_interval scheme), the KID subset rule and small-N honesty.
    for key in ("distribution.fid", "distribution.kid_mean", "distribution.recall", "diversity.relative_diversity",
                "memorization.near_copy_fraction", "frd.value", "spectrum.high_frequency_ratio"):
        found = interval(metrics, key)
        assert found["low"] <= lookup(metrics, key) <= found["high"] and found["n_real"] == 112, key
    assert metrics["distribution"]["kid_subset_size"] == 45  # half the smaller set (90 synthetic)
    assert metrics["resampling"]["real_resampled"] == "images" and "1 subject" in metrics["resampling"]["note"]
    assert metrics["small_n"]["flagged"] and metrics["notes"][0].startswith("warning: small sets: 112 real")
    assert metrics["distribution"]["fid_infinity"] is None and "needs N >= 256" in \
        metrics["distribution"]["fid_infinity_note"]
    printed = format_metrics(metrics, "wrote")
    assert printed.startswith("warning: small sets") and "[low, high]: 95% intervals, N real 112" in printed
    assert any(line.startswith("FID ") and "[" in line for line in printed.splitlines())
    report = (tmp_path / "report" / "report.html").read_text(encoding="utf-8")
    assert report.count("data:image/png;base64,") >= 5
    for figure in ("real-grid", "synthetic-grid", "intensity-histogram", "nearest-gallery", "nearest-distribution",
                   "spectrum"):
        assert f'data-figure="{figure}"' in report
    assert 'data-warning="small-n"' in report and '<span class="interval">[' in report
    assert 'data-table="texture"' in report
    assert "<script" not in report and "http://" not in report and "https://" not in report  # self-contained


def test_synthetic_images_are_decoded_from_every_format(tmp_path, mni):
    from medgan.data.intensity import IntensityMapping

    images = mni[:4, 0].numpy()
    mapping = IntensityMapping("percentile", 64.0, 234.0, "a.u.")
    Image.fromarray(np.round((images[0] + 1) / 2 * 255).astype(np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.round((images[1] + 1) / 2 * 65535).astype(np.uint16)).save(tmp_path / "b.png")
    np.save(tmp_path / "c.npy", images[2:3])  # model units
    np.save(tmp_path / "d.npy", mapping.to_physical(images[3:4]))  # physical units
    raw = read_image_folder(tmp_path)
    decoded = to_unit_stack(raw, mapping, 64, tmp_path)
    assert decoded.shape == (4, 1, 64, 64)
    tolerances = (1.1 / 255, 1e-4, 1e-6, 1e-5)
    for index, tolerance in enumerate(tolerances):
        assert np.abs(decoded[index, 0].numpy() - images[index]).max() <= tolerance * 2 + 1e-6, index
    small = to_unit_stack(raw, mapping, 32, tmp_path)  # other resolutions are fitted
    assert small.shape == (4, 1, 32, 32)


def make_run(root: Path, name: str) -> Path:
    run = root / name
    (run / "checkpoints").mkdir(parents=True)
    save_yaml(RunConfig(), run / "config.yaml")  # data: mni152 at 64 px
    losses = [{"step": step, "loss_d": 1.0 / (1 + step / 50), "loss_g": 0.5 + step / 500} for step in range(0, 200, 25)]
    (run / "losses.jsonl").write_text("".join(json.dumps(record) + "\n" for record in losses))
    history = [{"step": step, "fid": 100.0 / (1 + step)} for step in (50, 100)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(record) + "\n" for record in history))
    return run


def fake_sampling(mni: torch.Tensor) -> types.ModuleType:
    """A stand-in for medgan.inference.sampling whose 'generators' are degraded real slices, by run name."""
    from medgan.data.intensity import IntensityMapping

    mapping = IntensityMapping("percentile", 64.0, 234.0, "a.u.")

    def generate(run_dir, n, seed=0, class_name=None):
        generator = torch.Generator().manual_seed(seed)
        index = torch.randint(len(mni) - 1, (n,), generator=generator)
        weight = torch.rand(n, 1, 1, 1, generator=generator)
        noise = torch.randn(n, 1, 64, 64, generator=generator)
        name = Path(run_dir).name
        if name == "trained":  # between neighbouring slices, light noise: plausible and new
            images = (1 - weight) * mni[index] + weight * mni[index + 1] + 0.02 * noise
        elif name == "early":  # blobs and noise, as after a few hundred steps
            images = blur(mni[index], 2.5) * 0.8 + 0.15 * noise
        else:  # collapsed: one image, tiny variations
            images = mni[40:41].expand(n, -1, -1, -1) + 0.01 * noise
        return images.clamp(-1, 1), mapping

    def interpolate(run_dir, steps=8, rows=4, seed=0):
        start, end = mni[30:30 + rows], mni[70:70 + rows]
        weights = torch.linspace(0, 1, steps).view(1, steps, 1, 1, 1)
        return ((1 - weights) * start[:, None] + weights * end[:, None]).reshape(rows * steps, 1, 64, 64)

    module = types.ModuleType("medgan.inference.sampling")
    module.generate, module.interpolate = generate, interpolate
    return module


def test_trained_run_beats_early_and_collapsed_runs(tmp_path, monkeypatch, mni):
    monkeypatch.setitem(sys.modules, "medgan.inference.sampling", fake_sampling(mni))
    results = {}
    for name in ("trained", "early", "collapsed"):
        run = make_run(tmp_path, name)
        real = str(run) if name == "trained" else "mni152"  # a run as --real means its own training data
        results[name] = evaluate(real, run, tmp_path / f"report-{name}", progress=False, max_images=150)
    trained, early, collapsed = results["trained"], results["early"], results["collapsed"]
    for worse in (early, collapsed):
        assert trained["distribution"]["fid"] < 0.5 * worse["distribution"]["fid"]
        assert trained["distribution"]["kid_mean"] < worse["distribution"]["kid_mean"]
        assert trained["distribution"]["coverage"] > worse["distribution"]["coverage"]
    assert trained["distribution"]["precision"] > early["distribution"]["precision"]
    assert collapsed["diversity"]["collapse"] and not trained["diversity"]["collapse"]
    assert trained["inputs"]["synthetic_images"] == 150
    assert trained["inputs"]["real"].endswith("(training data)") and trained["inputs"]["real_images"] == 112
    report = (tmp_path / "report-trained" / "report.html").read_text(encoding="utf-8")
    assert 'data-figure="interpolation"' in report and 'data-figure="training-curves"' in report


def test_evaluate_reports_bad_inputs_clearly(tmp_path):
    with pytest.raises(DataError, match="not found"):
        evaluate("mni152", tmp_path / "missing", tmp_path / "out", progress=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="empty folder"):
        evaluate("mni152", empty, tmp_path / "out", progress=False)
    with pytest.raises(ConfigError, match="unknown feature extractor"):
        evaluate("mni152", empty, tmp_path / "out", features="vgg16", progress=False)
    assert not (tmp_path / "out").exists()
