"""Class-conditional training through the CLI: labels CSV in, per-class sampling out."""

import numpy as np
import pytest
import torch
from PIL import Image

from medgan.cli import main
from medgan.errors import ConfigError
from medgan.inference.sampling import generate, load_generator

from helpers import TINY


def write_labelled_pngs(folder):
    """16-bit PNGs of two shapes and a labels CSV naming each file's class: small bright discs and large dim
    squares, different enough in size and intensity that a short run can learn the classes apart."""
    folder.mkdir()
    rows = ["file,label"]
    grid = np.mgrid[0:32, 0:32]
    for index in range(12):
        shape = "disc" if index % 2 == 0 else "square"
        centre = 16 + (index % 3) - 1
        if shape == "disc":
            mask = (grid[0] - centre) ** 2 + (grid[1] - 16) ** 2 < 36
        else:
            mask = (abs(grid[0] - centre) < 10) & (abs(grid[1] - 16) < 10)
        pixels = np.where(mask, 40000 if shape == "disc" else 16000, 1000).astype(np.uint16)
        Image.fromarray(pixels).save(folder / f"img{index:02d}.png")
        rows.append(f"img{index:02d}.png,{shape}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return folder


def test_conditional_train_and_sample_by_class(tmp_path):
    data = write_labelled_pngs(tmp_path / "shapes")
    run = tmp_path / "run"
    code = main(["train", "--data", str(data), "--labels", str(data / "labels.csv"), "--task", "conditional",
                 "--out", str(run), "--steps", "3", "--set", "data.normalize=zscore", *TINY])
    assert code == 0
    loaded = load_generator(run)
    assert loaded.class_names == ("disc", "square") and loaded.spec.num_classes == 2
    discs, _ = generate(run, 4, seed=0, class_name="disc", loaded=loaded)
    squares, _ = generate(run, 4, seed=0, class_name="square", loaded=loaded)
    assert discs.shape == (4, 1, 32, 32) and not torch.allclose(discs, squares)  # same noise, class decides
    out = tmp_path / "samples"
    assert main(["sample", "--run", str(run), "--n", "2", "--class", "square", "--out", str(out)]) == 0
    assert len(list(out.glob("*.png"))) == 2
    with pytest.raises(ConfigError, match="unknown class 'triangle'"):
        generate(run, 1, class_name="triangle", loaded=loaded)


def test_conditional_task_needs_labels(tmp_path, capsys):
    data = write_labelled_pngs(tmp_path / "shapes")
    code = main(["train", "--data", str(data), "--task", "conditional", "--out", str(tmp_path / "r"), "--steps", "1",
                 *TINY])
    assert code == 2 and "needs labelled data" in capsys.readouterr().err


def test_generated_classes_are_recognised_by_a_classifier_trained_on_real_images(tmp_path):
    """A short conditional run on two clearly different shapes: a judge trained on real shapes only must
    label the samples generated for each class as that class well above chance (0.5)."""
    from medgan.config import from_dict
    from medgan.training.tasks import recipe
    from medgan.data import load_slices
    from medgan.evaluation.utility import UtilityConfig, class_fidelity, synthetic_set
    from medgan.training.loop import train

    data = write_labelled_pngs(tmp_path / "shapes")
    config = from_dict({"task": "conditional",
                        # z-score keeps both classes visible (a percentile clip would map the dim class to -1)
                        "data": {"source": str(data), "labels": str(data / "labels.csv"), "resolution": 32,
                                 "normalize": "zscore"},
                        "model": {"generator_channels": 8, "discriminator_channels": 8, "latent_dim": 16},
                        # The mode-seeking term trades class sharpness for diversity; this test is about the
                        # conditioning itself, on a toy set that a short run can learn.
                        "conditional": {"mode_seeking": 0.0},
                        "train": {"steps": 600, "batch_size": 16, "log_every": 50, "sample_every": 1000,
                                  "checkpoint_every": 1000, "eval_every": 0, "ema_start": 20, "threads": 1}},
                       base=recipe("medgan"))
    train(config, tmp_path / "run", progress=False)
    real = load_slices(config.data, progress=False)
    synthetic = synthetic_set(str(tmp_path / "run"), per_class=24, seed=0)
    judged = class_fidelity(real, synthetic, UtilityConfig(epochs=5, min_steps=60, threads=1))
    assert judged["class_names"] == ["disc", "square"]
    assert judged["balanced_accuracy"] >= 0.8, judged


def test_mode_seeking_ratio_measures_noise_sensitivity_within_a_class():
    from medgan.losses.diversity import mode_seeking_ratio

    noise = torch.randn(8, 4)
    labels = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1])  # pairs (i, i + 4) share a class
    collapsed = torch.zeros(8, 1, 2, 2)
    assert mode_seeking_ratio(collapsed, noise, labels).item() == 0.0
    varied = noise[:, :, None, None].mean(1, keepdim=True).expand(8, 1, 2, 2)
    expected = ((varied[:4] - varied[4:]).abs().flatten(1).mean(1) / (noise[:4] - noise[4:]).abs().mean(1)).mean()
    assert mode_seeking_ratio(varied, noise, labels).item() == pytest.approx(expected.item())
    assert mode_seeking_ratio(varied, noise, torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])) is None  # no same-class pair


def test_auxiliary_classifier_trains_d_on_real_classes_and_g_on_requested_ones(tmp_path):
    from medgan.visuals import read_jsonl

    data = write_labelled_pngs(tmp_path / "shapes")
    run = tmp_path / "run"
    code = main(["train", "--data", str(data), "--labels", str(data / "labels.csv"), "--task", "conditional",
                 "--out", str(run), "--steps", "4", "--set", "data.normalize=zscore",
                 "--set", "model.auxiliary_classifier=true", "--set", "conditional.auxiliary=0.5", *TINY])
    assert code == 0
    records = read_jsonl(run / "losses.jsonl")
    assert len(records) == 4 and all(r["ac_real"] > 0 and r["ac_fake"] > 0 for r in records)  # cross-entropies
    state = torch.load(run / "checkpoints" / "latest.pt", weights_only=True)
    assert "classifier.weight" in state["task"]["discriminator"]
    assert load_generator(run).config.model.auxiliary_classifier


def test_conditional_batchnorm_scales_each_class_and_trains_into_a_sampler(tmp_path, capsys):
    from medgan.networks.common import ConditionalBatchNorm2d

    norm = ConditionalBatchNorm2d(3, num_classes=2)
    with torch.no_grad():
        norm.scale.weight[1] = 2.0
        norm.shift.weight[1] = 0.5
    x = torch.randn(8, 3, 4, 4)
    labels = torch.tensor([0, 1] * 4)
    out = norm(x, labels)
    plain = torch.nn.functional.batch_norm(x, None, None, training=True)
    assert torch.allclose(out[labels == 0], plain[labels == 0], atol=1e-5)  # starts as plain BatchNorm
    assert torch.allclose(out[labels == 1], 2.0 * plain[labels == 1] + 0.5, atol=1e-5)

    data = write_labelled_pngs(tmp_path / "shapes")
    run = tmp_path / "run"
    code = main(["train", "--data", str(data), "--labels", str(data / "labels.csv"), "--task", "conditional",
                 "--out", str(run), "--steps", "3", "--set", "data.normalize=zscore",
                 "--set", "model.conditional_norm=true", *TINY])
    assert code == 0
    state = torch.load(run / "checkpoints" / "latest.pt", weights_only=True)["task"]["generator"]
    assert any(key.endswith("scale.weight") for key in state)
    loaded = load_generator(run)
    discs, _ = generate(run, 4, seed=0, class_name="disc", loaded=loaded)
    assert discs.shape == (4, 1, 32, 32) and torch.isfinite(discs).all()
    code = main(["train", "--data", str(data), "--out", str(tmp_path / "bad"), "--steps", "1",
                 "--set", "model.conditional_norm=true", "--model", "resnet", *TINY])
    assert code == 2 and "model.conditional_norm" in capsys.readouterr().err


def test_auxiliary_classifier_gradients_reach_the_class_head_and_the_generator():
    from medgan.config import from_dict
    from medgan.training.tasks import recipe
    from medgan.data import IntensityMapping, SliceSet
    from medgan.training.tasks import TASKS, Batch

    batch = Batch(images=torch.rand(8, 1, 32, 32) * 2 - 1, labels=torch.tensor([0, 1] * 4))
    data = SliceSet(batch.images, IntensityMapping("identity", -1.0, 1.0), (1.0, 1.0), [f"s{i}" for i in range(8)],
                    [f"f{i}#0" for i in range(8)], batch.labels, ("a", "b"))

    def task_with(weight):
        config = from_dict({"task": "conditional", "data": {"resolution": 32},
                            "model": {"generator_channels": 4, "discriminator_channels": 4, "latent_dim": 8,
                                      "auxiliary_classifier": True},
                            "conditional": {"auxiliary": weight, "mode_seeking": 0.0}, "augment": {"policy": []}},
                           base=recipe("medgan"))
        torch.manual_seed(0)
        return TASKS.get("conditional")(config, data, torch.device("cpu"), torch.Generator().manual_seed(0))

    with_head, without = task_with(1.0), task_with(0.0)
    logs = with_head.discriminator_step(batch)
    assert with_head.discriminator.classifier.weight.grad.abs().sum() > 0 and "ac_real" in logs
    without.discriminator_step(batch)
    assert without.discriminator.classifier.weight.grad is None  # weight 0: the head is not trained
    with_head, without = task_with(1.0), task_with(0.0)  # fresh: identical G, D, noise and batch
    assert "ac_fake" in with_head.generator_step(batch)
    without.generator_step(batch)
    # Only the class term differs between the two generators' updates.
    changed = [not torch.equal(a, b) for a, b in zip(with_head.generator.parameters(), without.generator.parameters())]
    assert any(changed)


def test_auxiliary_classifier_needs_the_conditional_task(tmp_path, capsys):
    data = write_labelled_pngs(tmp_path / "shapes")
    code = main(["train", "--data", str(data), "--out", str(tmp_path / "run"), "--steps", "1",
                 "--set", "model.auxiliary_classifier=true", *TINY])
    assert code == 2 and "model.auxiliary_classifier" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # refused before the run directory was created


def write_sized_discs(folder, count=16):
    """Discs whose radius is a continuous attribute of the labels CSV (one class, 'disc')."""
    folder.mkdir()
    rows = ["file,label,radius"]
    grid = np.mgrid[0:32, 0:32]
    for index in range(count):
        radius = 3.0 + 9.0 * index / (count - 1)
        mask = (grid[0] - 16) ** 2 + (grid[1] - 16) ** 2 < radius**2
        Image.fromarray(np.where(mask, 40000, 1000).astype(np.uint16)).save(folder / f"disc{index:02d}.png")
        rows.append(f"disc{index:02d}.png,disc,{radius:.3f}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return folder


def test_continuous_attributes_flow_from_the_csv_into_training_and_sampling(tmp_path, capsys):
    import json

    from medgan.config import DataConfig
    from medgan.data import load_slices

    data = write_sized_discs(tmp_path / "discs")
    loaded_data = load_slices(DataConfig(source=str(data), labels=str(data / "labels.csv"), resolution=32,
                                         normalize="zscore"), progress=False)
    assert loaded_data.attribute_names == ("radius",) and loaded_data.attributes.shape == (16, 1)
    order = [int(source.split("disc")[1][:2]) for source in loaded_data.sources]
    assert torch.allclose(loaded_data.attributes[:, 0], torch.tensor([3.0 + 9.0 * i / 15 for i in order]), atol=1e-3)

    run = tmp_path / "run"
    code = main(["train", "--data", str(data), "--labels", str(data / "labels.csv"), "--task", "conditional",
                 "--out", str(run), "--steps", "3", "--set", "data.normalize=zscore", *TINY])
    assert code == 0
    meta = json.loads((run / "data.json").read_text())
    assert meta["attribute_names"] == ["radius"] and meta["attribute_mean"][0] == pytest.approx(7.5, abs=1e-4)
    loaded = load_generator(run)
    assert loaded.spec.num_attributes == 1
    small, _ = generate(run, 4, seed=0, loaded=loaded, attributes={"radius": 3.0})
    large, _ = generate(run, 4, seed=0, loaded=loaded, attributes={"radius": 12.0})
    mean, _ = generate(run, 4, seed=0, loaded=loaded)
    assert not torch.allclose(small, large)  # same noise: the attribute decides
    assert torch.allclose(mean, generate(run, 4, seed=0, loaded=loaded, attributes={"radius": 7.5})[0], atol=1e-5)
    with pytest.raises(ConfigError, match="unknown attribute 'age'"):
        generate(run, 1, loaded=loaded, attributes={"age": 3.0})
    out = tmp_path / "samples"
    assert main(["sample", "--run", str(run), "--n", "2", "--attribute", "radius=10", "--out", str(out)]) == 0
    assert len(list(out.glob("*.png"))) == 2
    capsys.readouterr()
    assert main(["sample", "--run", str(run), "--n", "2", "--attribute", "radius", "--out", str(tmp_path / "x")]) == 2
    assert "--attribute expects NAME=NUMBER" in capsys.readouterr().err


def test_labels_csv_rows_must_name_existing_files_and_numeric_attributes(tmp_path):
    from medgan.config import DataConfig
    from medgan.data import load_slices
    from medgan.errors import DataError

    data = write_sized_discs(tmp_path / "discs", count=4)
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("file,label\ndisc00.png,disc\nghost.png,disc\n")
    with pytest.raises(DataError, match="row 3: file 'ghost.png' does not exist") as caught:
        load_slices(DataConfig(source=str(data), labels=str(unknown), resolution=32))
    assert caught.value.path == str(unknown)
    missing = tmp_path / "missing.csv"
    missing.write_text("file,label\ndisc00.png,disc\n")
    with pytest.raises(DataError, match="no row for disc01.png"):
        load_slices(DataConfig(source=str(data), labels=str(missing), resolution=32))
    text = tmp_path / "text.csv"
    text.write_text("file,label,radius\n" + "".join(f"disc{i:02d}.png,disc,big\n" for i in range(4)))
    with pytest.raises(DataError, match="row 2: attribute 'radius' value 'big' is not a number"):
        load_slices(DataConfig(source=str(data), labels=str(text), resolution=32))


def test_utility_command_runs_end_to_end_on_a_tiny_conditional_run(tmp_path, capsys):
    import json

    data = write_labelled_pngs(tmp_path / "shapes")
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--labels", str(data / "labels.csv"), "--task", "conditional",
                 "--out", str(run), "--steps", "2", "--set", "data.normalize=zscore", *TINY]) == 0
    out = tmp_path / "utility"
    capsys.readouterr()
    assert main(["utility", "--synthetic", str(run), "--out", str(out), "--seeds", "2", "--epochs", "1",
                 "--threads", "1", "--quiet"]) == 0
    printed = capsys.readouterr().out
    result = json.loads((out / "metrics.json").read_text())["utility"]
    assert set(result["arms"]) == {"real", "real+synthetic", "synthetic"}
    for arm in result["arms"].values():
        summary = arm["balanced_accuracy"]
        assert 0.0 <= summary["ci_low"] <= summary["mean"] <= summary["ci_high"] <= 1.0
    assert result["class_names"] == ["disc", "square"] and result["n_test"] > 0
    assert result["test_seen_by_generator"]  # split off the run's own training data: say so
    assert "pass --test with patients the GAN never saw" in printed
    assert (out / "utility.html").read_text().count("<table>") == 3
    # judge.pt: the real arm's first classifier as TorchScript, usable as medgan counterfactual's --judge
    import torch

    from medgan.evaluation.counterfactual import load_judge
    from medgan.inference.sampling import load_generator

    assert result["judge"]["seed"] == 0 and result["judge"]["file"] == "judge.pt"
    assert result["judge"]["balanced_accuracy"] == result["arms"]["real"]["balanced_accuracy"]["values"][0]
    judge = load_judge(out / "judge.pt", load_generator(run))
    images = torch.rand(3, 1, 32, 32) * 2 - 1
    logits = judge(images)
    assert logits.shape == (3, 2) and torch.equal(logits, judge(images))  # eval mode: no dropout
    assert "judge.pt" in printed
    # --test with its own labels CSV (here the training images themselves, only to check the plumbing)
    tested = tmp_path / "tested"
    assert main(["utility", "--synthetic", str(run), "--out", str(tested), "--seeds", "1", "--epochs", "1",
                 "--threads", "1", "--quiet", "--test", str(data), "--test-labels", str(data / "labels.csv")]) == 0
    capsys.readouterr()
    separate = json.loads((tested / "metrics.json").read_text())["utility"]
    rows = (data / "labels.csv").read_text().strip().splitlines()[1:]
    assert separate["n_test"] == len(rows) and not separate["test_seen_by_generator"]
    assert main(["utility", "--synthetic", str(run), "--out", str(tmp_path / "nothing"), "--quiet",
                 "--test-labels", str(data / "labels.csv")]) == 2
    assert "which is not given" in capsys.readouterr().err
    # A 2-step generator's samples are noise: the real-trained judge accepts none of one class, so --select
    # stops with one line and writes nothing (the selection's success path: test_evaluation_utility).
    selected = tmp_path / "selected"
    assert main(["utility", "--synthetic", str(run), "--out", str(selected), "--seeds", "2", "--epochs", "1",
                 "--threads", "1", "--quiet", "--select", "3", "--per-class", "4"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "passed the real-trained judge" in error[0] and error[0].startswith("error: ")
    assert not (selected / "metrics.json").exists()
