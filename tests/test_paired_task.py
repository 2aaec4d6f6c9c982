"""The paired (pix2pix) task: U-Net G and PatchGAN D through the real loop, pure-L1 mode, patches, aligned
inputs, inference on whole slices of any size, resume."""

import pytest
import torch

from medgan.config import from_dict
from medgan.training.tasks import recipe
from medgan.data import IntensityMapping, SliceSet
from medgan.errors import ConfigError
from medgan.inference import Translator, load_model
from medgan.networks.translation import PatchDiscriminator, UNetTranslator
from medgan.training.loop import train
from medgan.visuals import read_jsonl

HU = IntensityMapping("ct_window", -150.0, 250.0, "HU")


def noisy_pairs(count=24, size=32, subjects=6):
    generator = torch.Generator().manual_seed(0)
    grid = torch.stack(torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")).float()
    centres = torch.rand(count, 2, 1, 1, generator=generator) * size * 0.5 + size * 0.25
    target = torch.where(((grid[None] - centres) ** 2).sum(1, keepdim=True) < 40, 0.6, -0.4)
    noisy = (target + 0.3 * torch.randn(target.shape, generator=generator)).clamp(-1, 1)
    return SliceSet(target, HU, (0.7, 0.7), [f"p{i % subjects}" for i in range(count)],
                    [f"f{i}#0" for i in range(count)], aligned={"input": noisy}, mappings={"input": HU})


def paired_config(**values):
    base = {"data": {"resolution": 32}, "paired": {"patch": 32},
            "model": {"generator_channels": 8, "discriminator_channels": 8, "depth": 2},
            "train": {"steps": 6, "batch_size": 4, "log_every": 2, "sample_every": 3, "checkpoint_every": 3,
                      "eval_every": 3, "ema_start": 1}}
    for section, items in values.items():
        base.setdefault(section, {}).update(items)
    return from_dict(base, base=recipe("pix2pix"))


def test_networks_shapes_and_identity_start():
    generator = UNetTranslator(2, 1, channels=8, depth=3)
    inputs = torch.rand(2, 2, 45, 70) * 2 - 1
    assert torch.allclose(generator(inputs), inputs[:, :1].clamp(-0.999, 0.999), atol=1e-5)  # zero head
    discriminator = PatchDiscriminator(3, channels=8)
    logits = discriminator(inputs, generator(inputs))
    assert logits.shape[:2] == (2, 1) and logits.shape[2] > 1  # one logit per patch


def test_paired_task_trains_and_translates_whole_slices(tmp_path):
    data = noisy_pairs()
    result = train(paired_config(), tmp_path / "run", progress=False, data=data, scorer=None)
    records = read_jsonl(tmp_path / "run" / "losses.jsonl")
    assert result.steps == 6 and all({"loss_d", "loss_g", "loss_l1"} <= set(r) for r in records)
    model = load_model(tmp_path / "run")
    assert isinstance(model, Translator) and model.input_domains == ("input",)
    assert model.spec.domain("input").mapping == HU and model.spec.mapping == HU
    big = torch.rand(3, 1, 96, 80) * 2 - 1  # larger than the tiles, not a multiple of 2**depth
    assert model.translate(big).shape == (3, 1, 96, 80)
    assert (tmp_path / "run" / "samples" / "final.png").is_file()
    with pytest.raises(Exception, match="1-channel inputs"):
        model.translate(torch.zeros(1, 2, 32, 32))
    train(None, tmp_path / "run", resume=True, progress=False, data=data, budget={"steps": 8})
    assert read_jsonl(tmp_path / "run" / "losses.jsonl")[-1]["step"] == 8


def test_pure_l1_mode_trains_no_discriminator_and_scores(tmp_path):
    from medgan.metrics import training_score

    data = noisy_pairs()
    config = paired_config(paired={"adversarial_weight": 0.0}, train={"steps": 30, "log_every": 10})
    result = train(config, tmp_path / "run", progress=False, data=data, scorer=training_score)
    records = read_jsonl(tmp_path / "run" / "losses.jsonl")
    assert all("loss_d" not in r for r in records) and records[-1]["loss_l1"] < records[0]["loss_l1"]
    scores = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert result.score_key == "ssim" and {"ssim", "psnr", "l1"} <= set(scores[-1])


def test_patches_crop_input_and_target_at_the_same_place(tmp_path):
    from medgan.training.tasks.paired import PairedTask

    data = noisy_pairs(size=64)
    data.aligned["input"] = data.images.clone()
    task = PairedTask(paired_config(data={"resolution": 64}, paired={"patch": 32}), data, torch.device("cpu"),
                      torch.Generator().manual_seed(3))
    inputs, target = task._patches(data.images[:4], data.images[:4].clone())
    assert inputs.shape == (4, 1, 32, 32) and torch.equal(inputs, target)


def test_paired_task_needs_inputs(tmp_path):
    data = noisy_pairs()
    data.aligned, data.mappings = {}, {}
    with pytest.raises(ConfigError, match="needs input images"):
        train(paired_config(), tmp_path / "run", progress=False, data=data)
    assert not (tmp_path / "run").exists()
