"""The training loop: a tiny run end to end, resume reproduces the next losses, the NaN guard, schedules."""

import json

import pytest
import torch

from medgan.config import from_dict
from medgan.training.tasks import recipe
from medgan.errors import ConfigError, TrainingError
from medgan.inference.sampling import generate, interpolate
from medgan.training.loop import train
from medgan.training.schedule import lr_factor
from medgan.visuals import read_jsonl

from helpers import write_tiny_brain


def tiny_config(source, **train_values):
    values = {
        "data": {"source": str(source), "resolution": 32, "min_foreground": 0.05},
        "model": {"generator_channels": 4, "discriminator_channels": 4, "latent_dim": 8},
        "train": {"batch_size": 8, "log_every": 1, "sample_every": 2, "checkpoint_every": 2, "ema_start": 1,
                  "steps": 4, **train_values},
    }
    return from_dict(values, base=recipe("medgan"))


def toy_scorer(real, fake):
    """A stand-in for the injected scorer: the gap between mean intensities (lower is better)."""
    return {"fid": float((real.mean() - fake.mean()).abs())}


@pytest.fixture(scope="module")
def brain(tmp_path_factory):
    return write_tiny_brain(tmp_path_factory.mktemp("data") / "brain.nii.gz")


def test_tiny_run_writes_a_complete_run_directory(tmp_path, brain):
    result = train(tiny_config(brain, eval_every=2), tmp_path / "run", progress=False, scorer=toy_scorer)
    run = tmp_path / "run"
    assert result.steps == 4
    for name in ("config.yaml", "data.json", "losses.jsonl", "train.log", "loss_curve.png",
                 "checkpoints/latest.pt", "checkpoints/best.pt", "samples/final.png", "samples/step_0000002.png"):
        assert (run / name).is_file(), name
    records = read_jsonl(run / "losses.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert all(r["images_per_s"] > 0 for r in records)
    assert [r["step"] for r in read_jsonl(run / "metrics.jsonl")] == [2, 4]
    assert result.score_key == "fid" and result.best_score is not None
    images, mapping = generate(run, 5, seed=3)
    assert images.shape == (5, 1, 32, 32) and images.abs().max() <= 1
    again, _ = generate(run, 5, seed=3)
    assert torch.equal(images, again)  # same seed, same samples
    assert mapping.kind == "percentile"
    assert interpolate(run, steps=4, rows=2).shape == (8, 1, 32, 32)


@pytest.mark.parametrize("recipe_name", ["medgan", "dcgan"])
def test_resume_reproduces_the_next_steps(tmp_path, brain, recipe_name):
    config = tiny_config(brain)
    if recipe_name == "dcgan":
        config = from_dict({"data": {"source": str(brain), "resolution": 32, "min_foreground": 0.05},
                            "model": {"generator_channels": 4, "discriminator_channels": 4, "latent_dim": 8},
                            "train": {"batch_size": 8, "log_every": 1, "checkpoint_every": 2, "steps": 4}},
                           base=recipe("dcgan"))
    train(config, tmp_path / "full", progress=False)
    full = read_jsonl(tmp_path / "full" / "losses.jsonl")
    # Same run stopped after 2 steps, then resumed to 4.
    stopped = from_dict({"train": {"steps": 2}}, base=config)
    train(stopped, tmp_path / "split", progress=False)
    train(None, tmp_path / "split", resume=True, progress=False, budget={"steps": 4})
    split = read_jsonl(tmp_path / "split" / "losses.jsonl")
    assert [r["step"] for r in split] == [1, 2, 3, 4]
    for before, after in zip(full[2:], split[2:]):
        assert after["loss_d"] == pytest.approx(before["loss_d"], rel=1e-5, abs=1e-6)
        assert after["loss_g"] == pytest.approx(before["loss_g"], rel=1e-5, abs=1e-6)


def test_a_new_run_refuses_a_directory_with_a_checkpoint(tmp_path, brain):
    train(tiny_config(brain, steps=1), tmp_path / "run", progress=False)
    with pytest.raises(ConfigError, match="--resume"):
        train(tiny_config(brain, steps=1), tmp_path / "run", progress=False)


def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, brain, monkeypatch):
    from medgan.training.tasks.noise_to_image import NoiseToImageTask

    original = NoiseToImageTask.generator_step
    calls = {"n": 0}

    def poisoned(self, batch):
        calls["n"] += 1
        logs = original(self, batch)
        if calls["n"] == 3:
            logs["loss_g"] = float("nan")
        return logs

    monkeypatch.setattr(NoiseToImageTask, "generator_step", poisoned)
    with pytest.raises(TrainingError, match="loss_g became nan at step 3"):
        train(tiny_config(brain, steps=6), tmp_path / "run", progress=False)
    good = torch.load(tmp_path / "run" / "checkpoints" / "latest.pt", weights_only=True)
    assert good["loop"]["step"] == 2  # written before the failure, never overwritten with the bad state
    assert "became nan" in (tmp_path / "run" / "train.log").read_text()


def test_lr_schedules():
    assert lr_factor(0, 100, "constant", 0) == 1.0
    assert lr_factor(50, 100, "linear", 0) == pytest.approx(0.5)
    assert lr_factor(100, 100, "cosine", 0) == pytest.approx(0.0)
    assert lr_factor(4, 100, "constant", 10) == pytest.approx(0.5)


def test_regularizers_and_tricks_run(tmp_path, brain):
    config = from_dict({"loss": {"r1_gamma": 1.0, "r1_interval": 2, "instance_noise": 0.1},
                        "optim": {"grad_clip": 1.0, "d_steps": 2, "schedule": "linear"},
                        "augment": {"adaptive": True}}, base=tiny_config(brain, steps=3))
    train(config, tmp_path / "r1", progress=False)
    records = read_jsonl(tmp_path / "r1" / "losses.jsonl")
    assert any("r1" in r for r in records) and all("ada_p" in r for r in records)
    wgan = from_dict({"loss": {"adversarial": "wasserstein", "gradient_penalty": 10.0}},
                     base=tiny_config(brain, steps=2))
    train(wgan, tmp_path / "gp", progress=False)
    assert all("gp" in r for r in read_jsonl(tmp_path / "gp" / "losses.jsonl"))
    saved = json.loads((tmp_path / "gp" / "data.json").read_text())
    assert saved["resolution"] == 32 and saved["domains"][0]["mapping"]["kind"] == "percentile"


def test_mode_seeking_also_trains_unconditional_generators(tmp_path, brain):
    """The default recipe's MSGAN term applies to noise-to-image tasks with or without classes; 0 turns it off,
    and the recipes that stand for other people's scripts (dcgan, standard) leave it off."""
    from medgan.losses.diversity import mode_seeking_ratio

    train(tiny_config(brain, steps=2), tmp_path / "on", progress=False)
    assert all(r["mode_seeking_ratio"] > 0 for r in read_jsonl(tmp_path / "on" / "losses.jsonl"))
    train(from_dict({"unconditional": {"mode_seeking": 0.0}}, base=tiny_config(brain, steps=2)), tmp_path / "off",
          progress=False)
    assert not any("mode_seeking_ratio" in r for r in read_jsonl(tmp_path / "off" / "losses.jsonl"))
    assert recipe("dcgan").options["mode_seeking"] == 0 and recipe("standard").options["mode_seeking"] == 0
    noise = torch.randn(6, 3)
    images = noise[:, :1, None, None].expand(6, 1, 2, 2)  # unconditional: every pair (i, i + 3) counts
    expected = ((images[:3] - images[3:]).abs().flatten(1).mean(1) / (noise[:3] - noise[3:]).abs().mean(1)).mean()
    assert mode_seeking_ratio(images, noise, None).item() == pytest.approx(expected.item())


def test_pooled_mode_seeking_does_not_count_speckle_as_diversity(tmp_path, brain):
    """``mode_seeking_pool``: samples that differ only by pixel-scale speckle (zero-mean in each 4 x 4 block) are
    distinct at full resolution and the same image once pooled, so the term no longer pays G for grain."""
    import torch.nn.functional as F

    from medgan.losses.diversity import mode_seeking_ratio

    base = torch.linspace(-1, 1, 16).expand(1, 1, 16, 16)
    checker = (torch.arange(16)[:, None] + torch.arange(16)[None, :]) % 2 * 2.0 - 1.0  # +-1, zero mean per block
    images = torch.cat([base, base + 0.2 * checker[None, None]])
    noise = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    assert mode_seeking_ratio(images, noise, None).item() == pytest.approx(0.2)
    assert mode_seeking_ratio(F.avg_pool2d(images, 4), noise, None).item() == pytest.approx(0.0, abs=1e-6)
    run = train(from_dict({"unconditional": {"mode_seeking_pool": 4}}, base=tiny_config(brain, steps=2)),
                tmp_path / "pooled", progress=False)
    assert run.steps == 2 and all(r["mode_seeking_ratio"] > 0 for r in read_jsonl(tmp_path / "pooled" / "losses.jsonl"))
