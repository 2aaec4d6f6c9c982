"""Segmentation utility of mask-to-image runs: Dice against a hand-computed value, label sets, seeded layouts, the
three arms on held-out subjects only, a perfect stand-in generator, the CLI (both files or neither) and one-line
errors for runs that do not render label maps."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

import medgan.inference
from medgan.config import DataConfig, from_dict
from medgan.training.tasks import recipe
from medgan.data import SliceSet, load_slices
from medgan.data.pairs import one_hot
from medgan.data.phantom.tissue import LABEL
from medgan.errors import DataError
from medgan.evaluation import segmentation, segmentation_app
from medgan.evaluation.segmentation import (LABEL_SETS, SegmentationConfig, labels_from_one_hot, subject_dice,
                                            train_segmenter)
from medgan.evaluation.segmentation_app import layout_maps, run_segmentation_utility

pytestmark = pytest.mark.usefixtures("one_thread")
MNI = DataConfig(source="mni152", resolution=32, degrade="mask")
FAST = SegmentationConfig(seeds=1, epochs=6, channels=(8, 16), lr=5e-3, threads=1)


@pytest.fixture(scope="module")
def mni() -> dict[str, SliceSet]:
    """MNI152 T1 slices with their grey/white-matter label maps, 32 px: the training side and the held-out slab."""
    return {split: load_slices(replace(MNI, split=split), progress=False) for split in ("train", "test")}


class StandIn:
    """The documented ``Translator`` interface; returns the real image of every known label map (a perfect
    generator), or ``constant`` everywhere."""

    def __init__(self, data: SliceSet, degrade: str | None = "mask", constant: float | None = None) -> None:
        self.config = replace(recipe("pix2pix"), data=replace(MNI, degrade=degrade))
        self.input_domains = ("input",)
        self.in_channels = data.aligned["input"].shape[1]
        self.checkpoint = "stand-in.pt"
        self.known, self.images, self.constant = data.aligned["input"], data.images, constant

    def translate(self, inputs: torch.Tensor) -> torch.Tensor:
        if self.constant is not None:
            return torch.full((len(inputs), 1, *inputs.shape[2:]), self.constant)
        rows = [next(i for i, known in enumerate(self.known) if torch.equal(known, given)) for given in inputs]
        return self.images[rows]


@pytest.fixture
def stand_in(mni, monkeypatch):
    """Installs a stand-in model and serves the cached MNI sets by split; returns the predicted-on images."""
    seen: list[torch.Tensor] = []
    predict = segmentation.predict_labels

    def recording(model, images):
        seen.append(images)
        return predict(model, images)

    monkeypatch.setattr(segmentation_app, "load_held_out", lambda config, progress: mni[config.split])
    monkeypatch.setattr(segmentation, "predict_labels", recording)

    def install(model) -> list[torch.Tensor]:
        monkeypatch.setattr(medgan.inference, "load_model", lambda run_dir: model)
        return seen

    return install


def test_dice_matches_a_hand_computed_value_on_a_toy_mask():
    truth = torch.zeros(3, 4, 4, dtype=torch.int64)
    predicted = torch.zeros_like(truth)
    truth[0, :2, :2] = 1  # subject a: 4 reference pixels of class 1 on its first slice ...
    predicted[0, :2, :3] = 1  # ... 6 predicted, 4 of them on the reference: Dice 2 * 4 / (4 + 6) = 0.8
    truth[1, 0, 0], predicted[1, 3, 3] = 1, 1  # ... and 1 more on its second slice, missed, 1 false positive
    truth[2, 1:3, 1:3], predicted[2, 1:3, 1:2] = 2, 2  # subject b: class 2 only, 2 of 4 found: 2 * 2 / 6
    dice = subject_dice(predicted, truth, ["a", "a", "b"], classes=2)
    # Subject a over both slices: overlap 4, reference 5, predicted 7 -> 8 / 12; class 2 absent -> NaN.
    assert dice[0, 0] == pytest.approx(8 / 12) and np.isnan(dice[0, 1])
    assert np.isnan(dice[1, 0]) and dice[1, 1] == pytest.approx(4 / 6)


def test_label_sets_group_the_run_labels_into_documented_classes():
    phantom = LABEL_SETS["phantom-abdomen"]
    assert phantom.class_names == ("liver", "kidney", "spleen", "lesion")
    organs = torch.tensor([[LABEL["liver"], LABEL["liver-vessel"], LABEL["kidney"], LABEL["spleen"], LABEL["lesion"],
                            LABEL["fat"], LABEL["aorta"], 0]])
    assert phantom.group(organs).tolist() == [[1, 1, 2, 3, 4, 0, 0, 0]]
    maps = torch.randint(0, 20, (3, 1, 8, 8))
    assert torch.equal(labels_from_one_hot(one_hot(maps.float(), 19)), maps[:, 0])
    assert LABEL_SETS["mni152-tissue"].group(torch.tensor([0, 1, 2])).tolist() == [0, 1, 2]


def test_layouts_are_seeded_new_and_keep_the_labels_without_touching_global_rngs(mni):
    maps = labels_from_one_hot(mni["train"].aligned["input"][:6])
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()[1].copy()
    first, again = layout_maps(maps, FAST, 3), layout_maps(maps, FAST, 3)
    assert torch.equal(first, again) and not torch.equal(first, layout_maps(maps, FAST, 4))
    assert set(first.unique().tolist()) <= set(maps.unique().tolist()) and first.shape == maps.shape
    assert 0.02 < (first != maps).float().mean() < 0.5  # new layouts, still brains
    assert torch.equal(torch.get_rng_state(), torch_state) and np.array_equal(np.random.get_state()[1], numpy_state)


def test_arms_train_and_dice_is_measured_on_held_out_slices_only(mni, stand_in, tmp_path):
    seen = stand_in(StandIn(mni["train"], constant=-1.0))  # a useless generator: blank images
    config = replace(FAST, layouts=True)
    result = run_segmentation_utility("run", tmp_path / "out", seeds=2, epochs=6, config=config, progress=False)
    assert len(seen) == 6 and all(torch.equal(images, mni["test"].images) for images in seen)
    assert result["held_out"]["slices"] == len(mni["test"]) == result["n_test"]
    assert not set(mni["test"].sources) & set(mni["train"].sources)
    assert result["class_names"] == ["grey matter", "white matter"] and result["n_synthetic"] == len(mni["train"])
    real, synthetic = result["arms"]["real"]["mean_dice"], result["arms"]["synthetic"]["mean_dice"]
    assert real["n"] == 2 and real["mean"] > 0.5 and real["ci_low"] <= real["mean"] <= real["ci_high"]
    assert synthetic["mean"] < real["mean"] - 0.3  # blank synthetic images teach nothing
    difference = result["differences"]["synthetic - real"]["mean_dice"]
    assert difference["values"] == pytest.approx(np.subtract(synthetic["values"], real["values"]).tolist())
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["label_set"]["name"] == "mni152-tissue"
    assert "| (b) - (a), paired |" in (tmp_path / "out" / "segmentation.md").read_text()


def test_a_perfect_generator_makes_synthetic_only_match_real(mni, stand_in, tmp_path):
    stand_in(StandIn(mni["train"]))
    config = replace(FAST, layouts=False)  # the real label maps, so the stand-in knows every one
    result = run_segmentation_utility("run", tmp_path / "out", seeds=1, epochs=6, config=config, progress=False)
    real, synthetic = (result["arms"][arm]["per_class"] for arm in ("real", "synthetic"))
    for name in ("grey matter", "white matter"):
        assert synthetic[name]["mean"] == pytest.approx(real[name]["mean"], abs=0.02)
    assert result["arms"]["real"]["mean_dice"]["mean"] > 0.5


def test_held_out_slices_that_are_training_slices_are_refused(mni, stand_in, monkeypatch, tmp_path):
    stand_in(StandIn(mni["train"]))
    monkeypatch.setattr(segmentation_app, "load_held_out", lambda config, progress: mni["train"])
    with pytest.raises(DataError, match="also training slices"):
        run_segmentation_utility("run", tmp_path / "out", seeds=1, epochs=1, config=FAST, progress=False)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_training_is_seeded():
    images = torch.rand(4, 1, 16, 16) * 2 - 1
    labels = (images[:, 0] > 0).long()
    data = segmentation.SegmentationPairs(images, labels)
    first, second = (train_segmenter(data, 1, FAST, 7, 3) for _ in range(2))
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))


def test_the_cli_writes_both_files_for_a_trained_mask_to_image_run(mni, tmp_path, capsys):
    from medgan.cli import main
    from medgan.training.loop import train

    config = from_dict({"data": {"source": "mni152", "resolution": 32, "degrade": "mask"},
                        "model": {"generator_channels": 8, "discriminator_channels": 8, "depth": 2},
                        "train": {"steps": 2, "batch_size": 4, "log_every": 1, "sample_every": 2,
                                  "checkpoint_every": 2, "eval_every": 0, "ema_start": 1}}, base=recipe("pix2pix"))
    train(config, tmp_path / "run", progress=False, data=mni["train"], scorer=None)
    out = tmp_path / "out"
    assert main(["segutility", "--run", str(tmp_path / "run"), "--out", str(out), "--seeds", "1", "--epochs", "1",
                 "--threads", "1", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "(b) real + synthetic" in printed and "grey matter" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["held_out"]["description"] == "mni152 (split test)" and not metrics["test_seen_by_generator"]
    assert (out / "segmentation.md").read_text().startswith("Segmentation utility: Dice on ")
    assert main(["segutility", "--run", str(tmp_path / "run"), "--out", str(tmp_path / "x"), "--seeds", "0"]) == 2
    assert "segmentation.seeds" in capsys.readouterr().err and not (tmp_path / "x" / "metrics.json").exists()


def test_a_failure_before_writing_leaves_neither_file(mni, stand_in, monkeypatch, tmp_path):
    stand_in(StandIn(mni["train"], constant=0.0))

    def broken(result):
        raise RuntimeError("table failed")

    monkeypatch.setattr(segmentation_app, "format_segmentation", broken)
    with pytest.raises(RuntimeError, match="table failed"):
        run_segmentation_utility("run", tmp_path / "out", seeds=1, epochs=1, config=FAST, progress=False)
    assert not (tmp_path / "out" / "metrics.json").exists() and not (tmp_path / "out" / "segmentation.md").exists()


@pytest.mark.parametrize("model, message", [
    ("lowdose", "not a mask-to-image run (data.degrade is 'lowdose:0.25')"),
    ("noise", "not a mask-to-image run (task unconditional)"),
])
def test_runs_that_do_not_render_label_maps_are_one_line_errors(mni, monkeypatch, tmp_path, capsys, model, message):
    from medgan.cli import main

    class Noise:  # a noise-to-image model: no translate
        config = recipe("medgan")

    loaded = StandIn(mni["train"], degrade="lowdose:0.25") if model == "lowdose" else Noise()
    monkeypatch.setattr(medgan.inference, "load_model", lambda run_dir: loaded)
    assert main(["segutility", "--run", str(tmp_path), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and message in error and error.count("\n") == 1
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_a_folder_that_is_no_run_is_a_one_line_error(tmp_path, capsys):
    from medgan.cli import main

    assert main(["segutility", "--run", str(tmp_path / "none"), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and error.count("\n") == 1
