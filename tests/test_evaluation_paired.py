"""Paired evaluation: classic baselines improve on the input where they should, held-out subjects only, report
with table and panel (both files or neither), phantom lesion CNR, the CLI branch, and a real paired run end to
end."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy import ndimage

import medgan.inference
from medgan.config import DataConfig, RunConfig, from_dict
from medgan.training.tasks import recipe
from medgan.data import IntensityMapping, SliceSet, load_slices, split_by_subject
from medgan.data.spec import spec_of
from medgan.errors import ConfigError, DataError
from medgan.evaluation import paired
from medgan.evaluation.paired import evaluate_paired, held_out_config
from medgan.evaluation.paired_baselines import BASELINES, GAUSSIAN_SIGMAS, BaselineContext
from medgan.evaluation.paired_regions import phantom_labels
from medgan.metrics.paired import noise_std, paired_errors

pytestmark = pytest.mark.usefixtures("one_thread")
NOISE_HU = 40.0


@pytest.fixture(scope="module")
def phantom() -> SliceSet:
    """Routine-dose phantom targets at 64 px with white-noise "low-dose" inputs (simulated data)."""
    data = load_slices(DataConfig(source="ct-phantom", resolution=64))
    mapping = data.mapping
    rng = np.random.default_rng(0)
    noisy = mapping.to_physical(data.images.numpy()) + rng.normal(0, NOISE_HU, data.images.shape)
    data.aligned = {"input": torch.from_numpy(mapping.to_unit(noisy).astype(np.float32))}
    data.mappings = {"input": mapping}
    return data


@pytest.fixture(scope="module")
def split(phantom):
    train, test = split_by_subject(phantom.subjects, 0.25, seed=0)
    return phantom.subset(train), phantom.subset(test[:12])


class FakeTranslator:
    """The documented Translator interface; ``outputs`` says what it returns for the held-out inputs."""

    def __init__(self, data: SliceSet, degrade: str, outputs: torch.Tensor) -> None:
        self.spec = spec_of(data, attributes=False)
        self.config = replace(recipe("pix2pix"), data=DataConfig(source="ct-phantom", resolution=64, degrade=degrade))
        self.input_domains = tuple(data.aligned)
        self.checkpoint = "fake.pt"
        self.expected = torch.cat([data.aligned[name] for name in self.input_domains], 1)
        self.outputs = outputs

    def translate(self, inputs: torch.Tensor) -> torch.Tensor:
        """The output of each input's slice: every input must be a held-out input, stacked in the run's order."""
        rows = [next(i for i, known in enumerate(self.expected) if torch.equal(known, given)) for given in inputs]
        return self.outputs[rows]


def physical(data: SliceSet, tensor: torch.Tensor) -> np.ndarray:
    return np.asarray(data.mapping.to_physical(tensor[:, 0].double().numpy()))


def context(data: SliceSet, masks: np.ndarray, holes=None) -> BaselineContext:
    inputs, target = physical(data, data.aligned["input"]), physical(data, data.images)
    return BaselineContext(400.0, -150.0, holes, (inputs[:4], target[:4], masks[:4]))


def test_nlm_and_gaussian_reduce_noise_on_noisy_phantom_slices(split):
    _, test = split
    labels, why = phantom_labels(test, DataConfig(source="ct-phantom", resolution=64))
    assert why == "" and labels.shape == (12, 64, 64)
    liver = np.stack([ndimage.binary_erosion(mask) for mask in labels == 3])
    inputs, target = physical(test, test.aligned["input"]), physical(test, test.images)
    body = target > -130
    values = {"input": inputs}
    ctx = context(test, body)
    for name in ("gaussian", "nlm"):
        values[name] = BASELINES.get(name)(inputs, ctx)
    noise = {name: np.nanmean(noise_std(images, liver)) for name, images in values.items()}
    target_noise = np.nanmean(noise_std(target, liver))
    assert noise["input"] > 30 and noise["nlm"] < 0.6 * noise["input"] and noise["gaussian"] < 0.6 * noise["input"]
    assert abs(noise["nlm"] - target_noise) < abs(noise["input"] - target_noise)
    mae = {name: np.nanmean(paired_errors(images, target, body, 400.0, -150.0)["mae"]) for name, images in values.items()}
    assert mae["nlm"] < 0.8 * mae["input"] and mae["gaussian"] < 0.8 * mae["input"]
    assert 0.5 <= ctx.chosen["gaussian"]["sigma_px"] <= 3.0


def test_biharmonic_fills_a_hole_better_than_leaving_it(phantom):
    target = physical(phantom, phantom.images[:3])
    holes = np.zeros(target.shape, dtype=bool)
    holes[:, 26:36, 20:30] = True
    holed = np.where(holes, -150.0, target)
    filled = BASELINES.get("biharmonic")(holed, BaselineContext(400.0, -150.0, holes, (holed, target, holes)))
    before = paired_errors(holed, target, holes, 400.0, -150.0)["mae"]
    after = paired_errors(filled, target, holes, 400.0, -150.0)["mae"]
    assert np.all(after < 0.5 * before)
    assert np.array_equal(filled[~holes], target[~holes])  # known pixels untouched


def test_evaluate_paired_with_an_oracle_model_writes_the_table_panel_and_subjects(split, tmp_path, monkeypatch):
    train, test = split
    model = FakeTranslator(test, "lowdose:0.25", test.images.clone())  # returns the target itself
    monkeypatch.setattr(medgan.inference, "load_model", lambda run_dir: model)
    metrics = evaluate_paired(tmp_path / "run", None, tmp_path / "out", data=test)
    methods = metrics["methods"]
    assert list(methods) == ["input", "gaussian", "nlm", "gan"]
    gan = methods["gan"]
    assert gan["mae"]["mean"] == pytest.approx(0.0, abs=1e-3) and gan["ssim"]["mean"] == pytest.approx(1.0, abs=1e-4)
    assert gan["nps"]["distance"] == pytest.approx(0.0, abs=1e-9) and gan["cnr_ratio"]["mean"] == pytest.approx(1.0)
    assert methods["nlm"]["mae"]["mean"] < methods["input"]["mae"]["mean"]
    assert methods["nlm"]["noise_std"]["mean"] < methods["input"]["noise_std"]["mean"]
    assert methods["gaussian"]["sigma_px"] in GAUSSIAN_SIGMAS
    assert metrics["best_classic"] in ("gaussian", "nlm") and metrics["units"] == "HU"
    held = metrics["held_out"]
    assert held["subjects"] == sorted(set(test.subjects)) and held["n_subjects"] == 6 and held["slices"] == 12
    assert not set(held["subjects"]) & set(train.subjects)
    assert methods["input"]["mae"]["subjects"] == 6 and methods["input"]["mae"]["unit"] == "subject"
    assert methods["input"]["mae"]["ci_low"] <= methods["input"]["mae"]["mean"] <= methods["input"]["mae"]["ci_high"]
    assert len(metrics["per_slice"]["gan"]["mae"]) == 12
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["methods"]["gan"]["label"] == "GAN"  # pix2pix
    report = (tmp_path / "out" / "report.html").read_text()
    assert 'data-figure="paired-panel"' in report and 'data-figure="nps"' in report
    assert all(f'data-method="{label}' in report for label in ("input", "Gaussian", "NLM", "GAN", "target"))
    assert all(subject in report for subject in held["subjects"])
    assert "input | NLM | GAN | target" in report or "input | Gaussian | GAN | target" in report


def test_inpainting_and_downsampling_pick_their_baselines(phantom, tmp_path, monkeypatch):
    data = phantom.subset(range(8))
    holes = torch.zeros_like(data.images, dtype=torch.bool)
    holes[..., 26:36, 20:30] = True
    data.aligned = {"input": torch.where(holes, -1.0, data.images), "mask": holes.float() * 2 - 1}
    data.mappings = {"input": data.mapping}
    model = FakeTranslator(data, "inpaint", data.aligned["input"])  # an identity model
    monkeypatch.setattr(medgan.inference, "load_model", lambda run_dir: model)
    metrics = evaluate_paired(tmp_path / "run", None, tmp_path / "inpaint", data=data)
    assert list(metrics["methods"]) == ["input", "biharmonic", "gan"] and "hole" in metrics["region"]
    assert metrics["methods"]["biharmonic"]["mae"]["mean"] < 0.5 * metrics["methods"]["input"]["mae"]["mean"]
    assert metrics["methods"]["gan"]["mae"]["mean"] == pytest.approx(metrics["methods"]["input"]["mae"]["mean"])
    mr = IntensityMapping("percentile", 0.0, 800.0)  # MR-like units: no CT noise measures, percentile body rule
    data = replace(data, mapping=mr, aligned={"input": data.images.clone()}, mappings={"input": mr})
    model = FakeTranslator(data, "downsample:2", data.images.clone())
    metrics = evaluate_paired(tmp_path / "run", None, tmp_path / "down", data=data)
    assert list(metrics["methods"]) == ["input", "gan"] and metrics["methods"]["input"]["label"] == "bicubic"
    assert "5th percentile" in metrics["region"] and "noise_std" not in metrics["methods"]["gan"]
    assert metrics["units"] == "a.u." and metrics["methods"]["gan"]["ssim"]["mean"] == pytest.approx(1.0, abs=1e-4)


def test_failures_leave_no_files_and_bad_data_is_one_line(split, tmp_path, monkeypatch):
    _, test = split
    model = FakeTranslator(test, "lowdose:0.25", test.images.clone())
    monkeypatch.setattr(medgan.inference, "load_model", lambda run_dir: model)
    unpaired = replace(test, aligned={}, mappings={})
    with pytest.raises(DataError, match="no 'input' images"):
        evaluate_paired(tmp_path / "run", None, tmp_path / "out", data=unpaired)

    def broken(*args):
        raise RuntimeError("render failed")

    monkeypatch.setattr(paired, "render_paired_report", broken)
    with pytest.raises(RuntimeError):
        evaluate_paired(tmp_path / "run", None, tmp_path / "out", data=test, max_slices=4)
    assert not (tmp_path / "out").exists()


def test_held_out_config_rules(tmp_path):
    data = DataConfig(source="ct-phantom", degrade="lowdose:0.25")
    assert held_out_config(data, None).split == "test" and held_out_config(data, "ct-phantom").split == "test"
    other = held_out_config(data, str(tmp_path))
    assert other.source == str(tmp_path) and other.degrade == "lowdose:0.25" and other.split == "all"
    csv = held_out_config(DataConfig(source=str(tmp_path), input="inputs"), "held.csv")
    assert csv.pairs == "held.csv" and csv.input is None
    with pytest.raises(ConfigError, match="CSV"):
        held_out_config(DataConfig(source=str(tmp_path), input="inputs"), str(tmp_path / "other"))


def test_a_trained_paired_run_end_to_end_and_through_the_cli(split, tmp_path, capsys):
    from medgan.cli import main
    from medgan.training.loop import train

    train_set, test = split
    config: RunConfig = from_dict({
        "data": {"source": "ct-phantom", "resolution": 64, "degrade": "lowdose:0.25"}, "paired": {"patch": 32},
        "model": {"generator_channels": 8, "discriminator_channels": 8, "depth": 2},
        "train": {"steps": 4, "batch_size": 4, "log_every": 2, "sample_every": 4, "checkpoint_every": 4,
                  "eval_every": 0, "ema_start": 1}}, base=recipe("pix2pix"))
    train(config, tmp_path / "run", progress=False, data=train_set, scorer=None)
    # The held-out side goes through the real data pipeline: the run's own source means its test split, whose
    # phantom patients (2000 on) are disjoint from the training patients (0-31), each slice scanned twice.
    assert main(["evaluate", "--real", "ct-phantom", "--fake", str(tmp_path / "run"), "--out",
                 str(tmp_path / "out"), "--max-images", "8", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert main(["evaluate", "--real", "ct-phantom", "--fake", str(tmp_path / "run"), "--out", str(tmp_path / "x"),
                 "--no-real-images", "--quiet"]) == 2  # refused, not ignored
    assert "--no-real-images does not apply to a paired run" in capsys.readouterr().err
    assert "NLM" in printed and "GAN" in printed and "held-out: 8 slices of " in printed
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["run"]["task"] == "paired" and metrics["held_out"]["slices"] == 8
    assert all(subject.startswith("phantom-020") for subject in metrics["held_out"]["subjects"])
    assert set(metrics["held_out"]["subjects"]).isdisjoint(train_set.subjects)
    assert "test" in metrics["held_out"]["description"] and "cnr_ratio" in metrics["methods"]["gan"]
    assert np.isfinite(metrics["methods"]["gan"]["ssim"]["mean"]) and (tmp_path / "out" / "report.html").is_file()
