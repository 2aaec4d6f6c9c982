"""The unpaired (CycleGAN) task and multi-input generators: losses against their formulas, the image pool, training
through the real loop with resume, both translation directions, missing modalities, and the bad inputs."""

import logging

import numpy as np
import pytest
import torch

from helpers import assert_one_error_line
from medgan.cli import main
from medgan.config import DataConfig, from_dict
from medgan.training.tasks import recipe
from medgan.data import IntensityMapping, SliceSet
from medgan.data.modalities import load_unpaired
from medgan.data.pipeline import load_slices
from medgan.data.spec import DataSpec, DomainSpec
from medgan.errors import ConfigError, DataError
from medgan.inference import Translator, load_model
from medgan.inference.translate import optional_domains, stack_inputs
from medgan.losses.pixel import cycle_consistency, identity_mapping
from medgan.training.loop import train
from medgan.training.tasks.unpaired.pool import ImagePool
from medgan.visuals import read_jsonl

HU = IntensityMapping("ct_window", -150.0, 250.0, "HU")
MR = IntensityMapping("percentile", 0.0, 600.0, "a.u.")


def disks(count, size=32, subjects=6, seed=0, bright=0.6):
    generator = torch.Generator().manual_seed(seed)
    grid = torch.stack(torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")).float()
    centres = torch.rand(count, 2, 1, 1, generator=generator) * size * 0.5 + size * 0.25
    return torch.where(((grid[None] - centres) ** 2).sum(1, keepdim=True) < 40, bright, -0.4)


def unpaired_data(count_a=20, count_b=24, modalities=1):
    a = disks(count_a, seed=1, bright=0.8)
    aligned = {f"input{i + 2}": (-a) for i in range(modalities - 1)}
    domain_a = SliceSet(a, MR, (0.7, 0.7), [f"a{i % 5}" for i in range(count_a)], [f"a{i}#0" for i in range(count_a)],
                        aligned=aligned, mappings={name: MR for name in aligned})
    domain_b = SliceSet(disks(count_b, seed=2), HU, (0.7, 0.7), [f"b{i % 6}" for i in range(count_b)],
                        [f"b{i}#0" for i in range(count_b)], other=domain_a)
    return domain_b


def cyclegan_config(**values):
    base = {"task": "unpaired", "data": {"resolution": 32, "domain_a": ["unused"]},
            "model": {"generator_channels": 8, "discriminator_channels": 8, "depth": 2},
            "train": {"steps": 6, "batch_size": 4, "log_every": 2, "sample_every": 3, "checkpoint_every": 3,
                      "eval_every": 0, "ema_start": 1}, "unpaired": {"pool_size": 3}}
    for section, items in values.items():
        if isinstance(items, dict):
            base.setdefault(section, {}).update(items)
        else:
            base[section] = items
    return from_dict(base, base=recipe("cyclegan"))


# ---------------------------------------------------------------------------------------------------------------
# losses and pool


def test_cycle_and_identity_losses_match_their_formulas():
    generator = torch.Generator().manual_seed(3)
    a, rec_a, b, rec_b = (torch.rand(2, 1, 8, 8, generator=generator) * 2 - 1 for _ in range(4))
    expected = (rec_a - a).abs().sum() / a.numel() + (rec_b - b).abs().sum() / b.numel()
    assert torch.isclose(cycle_consistency(rec_a, a, rec_b, b), expected)
    assert float(cycle_consistency(a, a, b, b)) == 0.0
    same_b, same_a = b + 0.25, a - 0.5
    assert torch.isclose(identity_mapping(same_b, b, same_a, a), torch.tensor(0.75))


def test_image_pool_fills_then_swaps_half_and_restores():
    pool, rng = ImagePool(4), torch.Generator().manual_seed(0)
    first = torch.arange(4.0).view(4, 1, 1, 1)
    assert torch.equal(pool.query(first, rng), first)  # filling: every fake is returned as it is
    queries = [torch.full((1, 1, 1, 1), 10.0 + i) for i in range(200)]
    swapped = [not torch.equal(pool.query(query, rng), query) for query in queries]
    assert 0.35 < np.mean(swapped) < 0.65  # about half of the answers are past fakes
    assert len(pool.images) == 4
    copy = ImagePool(4)
    copy.load_state_dict(pool.state_dict())
    assert all(torch.equal(x, y) for x, y in zip(copy.images, pool.images))
    assert torch.equal(ImagePool(0).query(first, rng), first)


# ---------------------------------------------------------------------------------------------------------------
# availability channels


def test_missing_modality_is_a_zero_image_with_availability_zero():
    spec = DataSpec(32, (1.0, 1.0), (DomainSpec("image", 1, HU), DomainSpec("input", 1, MR),
                                     DomainSpec("input2", 1, MR), DomainSpec("mask", 1, IntensityMapping(
                                         "identity", -1.0, 1.0, "label"))))
    assert optional_domains(spec, ("input", "input2", "mask")) == ("input", "input2")
    assert optional_domains(spec, ("input", "mask")) == ()  # one image modality: no availability channel
    t1 = torch.full((2, 1, 4, 4), 0.5)
    mask = torch.ones(2, 1, 4, 4)
    stacked = stack_inputs({"input": t1, "mask": mask}, spec, ("input", "input2", "mask"), ("input", "input2"))
    assert stacked.shape == (2, 5, 4, 4)
    assert torch.equal(stacked[:, 0], t1[:, 0]) and float(stacked[:, 1].abs().max()) == 0.0
    assert float(stacked[:, 3].min()) == 1.0 and float(stacked[:, 4].max()) == 0.0  # input present, input2 not
    dropped = stack_inputs({"input": t1, "input2": t1, "mask": mask}, spec, ("input", "input2", "mask"),
                           ("input", "input2"), available=torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    assert float(dropped[0, 1].abs().max()) == 0.0 and float(dropped[1, 0].abs().max()) == 0.0
    with pytest.raises(DataError, match="needs the input domain 'mask'"):
        stack_inputs({"input": t1}, spec, ("input", "input2", "mask"), ("input", "input2"))
    with pytest.raises(DataError, match="every input modality"):
        stack_inputs({"input": t1, "input2": t1, "mask": mask}, spec, ("input", "input2", "mask"),
                     ("input", "input2"), available=torch.zeros(2, 2))


def test_paired_multi_input_trains_and_translates_with_a_missing_modality(tmp_path):
    target = disks(24)
    t1, t2 = (target * 0.8).clamp(-1, 1), (-target).clamp(-1, 1)
    data = SliceSet(target, HU, (0.7, 0.7), [f"p{i % 6}" for i in range(24)], [f"f{i}#0" for i in range(24)],
                    aligned={"input": t1, "input2": t2}, mappings={"input": MR, "input2": MR})
    config = from_dict({"data": {"resolution": 32}, "model": {"generator_channels": 8, "discriminator_channels": 8,
                                                              "depth": 2}, "paired": {"modality_dropout": 0.5},
                        "train": {"steps": 4, "batch_size": 4, "checkpoint_every": 2, "sample_every": 2,
                                  "eval_every": 0}}, base=recipe("pix2pix"))
    train(config, tmp_path / "run", progress=False, data=data, scorer=None)
    model = load_model(tmp_path / "run")
    assert model.input_domains == ("input", "input2") and model.optional == ("input", "input2")
    assert model.in_channels == 4  # two modalities and their availability channels
    both = model.translate(model.stack({"input": t1[:2], "input2": t2[:2]}))
    only_t1 = model.translate(model.stack({"input": t1[:2]}))
    assert both.shape == only_t1.shape == (2, 1, 32, 32) and torch.isfinite(only_t1).all()
    assert not torch.equal(both, only_t1)  # the missing T2 changes the input the network sees


# ---------------------------------------------------------------------------------------------------------------
# the task through the real loop


def test_unpaired_task_trains_resumes_and_translates_both_ways(tmp_path):
    data = unpaired_data()
    result = train(cyclegan_config(), tmp_path / "run", progress=False, data=data, scorer=None)
    records = read_jsonl(tmp_path / "run" / "losses.jsonl")
    assert result.steps == 6
    assert all({"loss_g", "loss_cycle", "loss_identity", "loss_d_a", "loss_d_b"} <= set(r) for r in records)
    a2b, b2a = load_model(tmp_path / "run"), load_model(tmp_path / "run", direction="b2a")
    assert isinstance(a2b, Translator) and a2b.direction == "a2b" and a2b.directions == ("a2b", "b2a")
    assert (a2b.input_domains, a2b.target) == (("input",), "image") and a2b.spec.mapping == HU
    assert (b2a.input_domains, b2a.target) == (("image",), "input") and b2a.spec.domain("input").mapping == MR
    assert a2b.translate(torch.zeros(2, 1, 48, 40)).shape == (2, 1, 48, 40)
    # Each direction's weights are stored once (a copy of a2b's at the top level tripled a bundle's size).
    from medgan.inference.bundle import split_inference
    from medgan.run import RunDir

    tensors, _ = split_inference(RunDir(tmp_path / "run").load_inference("latest").inference, tmp_path)
    assert {name.split(":")[0] for name in tensors} == {"directions/a2b/generator", "directions/b2a/generator"}
    # Resume continues from the checkpoint (pools, A's sampler and RNG restored) to the new budget.
    resumed = train(None, tmp_path / "run", resume=True, progress=False, data=data, budget={"steps": 8})
    assert resumed.steps == 8
    assert (tmp_path / "run" / "samples" / "final.png").is_file()


def test_unpaired_with_two_a_modalities_needs_identity_off_and_serves_missing_ones(tmp_path):
    data = unpaired_data(modalities=2)
    with pytest.raises(ConfigError, match="unpaired.identity"):
        train(cyclegan_config(), tmp_path / "bad", progress=False, data=data, scorer=None)
    train(cyclegan_config(unpaired={"identity": 0.0}), tmp_path / "run", progress=False, data=data, scorer=None)
    a2b, b2a = load_model(tmp_path / "run"), load_model(tmp_path / "run", direction="b2a")
    assert a2b.optional == ("input", "input2") and b2a.targets == ("input", "input2")
    assert b2a.translate(torch.zeros(1, 1, 32, 32)).shape == (1, 2, 32, 32)  # F gives every A modality back
    assert a2b.translate(a2b.stack({"input2": torch.zeros(1, 1, 32, 32)})).shape == (1, 1, 32, 32)


def test_unpaired_cli_translates_with_direction_and_refuses_a_direction_it_lacks(tmp_path, write_nifti, capsys):
    rng = np.random.default_rng(0)
    for domain, scale in (("mr", 400.0), ("ct", 1.0)):
        (tmp_path / domain).mkdir()
        for index in range(3):
            volume = np.zeros((32, 32, 6), np.float32)
            volume[6:26, 8:24] = scale * (1 + rng.random((20, 16, 6)))
            if domain == "ct":
                volume = volume * 100 - 1000 + 1000 * (volume > 0)
            write_nifti(tmp_path / domain / f"s{index}.nii.gz", volume)
    run = tmp_path / "run"
    code = main(["train", "--domain-a", str(tmp_path / "mr"), "--domain-b", str(tmp_path / "ct"), "--out", str(run),
                 "--steps", "2", "--resolution", "32", "--batch-size", "4", "--quiet",
                 "--set", "model.generator_channels=4", "--set", "model.discriminator_channels=4",
                 "--set", "model.depth=2", "--set", "train.eval_every=0"])
    assert code == 0
    assert load_model(run).config.task == "unpaired"
    for direction, source in (("a2b", "mr"), ("b2a", "ct")):
        out = tmp_path / f"out-{direction}"
        assert main(["translate", "--run", str(run), "--input", str(tmp_path / source / "s0.nii.gz"),
                     "--out", str(out), "--direction", direction, "--quiet"]) == 0
        assert len(list(out.glob("*.nii.gz"))) == 1
    capsys.readouterr()
    paired = tmp_path / "paired"
    assert main(["train", "--task", "paired", "--domain-a", str(tmp_path / "mr"), "--data", str(tmp_path / "mr"),
                 "--out", str(paired), "--steps", "1", "--resolution", "32", "--batch-size", "4", "--quiet",
                 "--set", "model.generator_channels=4", "--set", "model.discriminator_channels=4",
                 "--set", "model.depth=2", "--set", "train.eval_every=0"]) == 0
    capsys.readouterr()
    code = main(["translate", "--run", str(paired), "--input", str(tmp_path / "mr" / "s0.nii.gz"),
                 "--out", str(tmp_path / "x"), "--direction", "b2a"])
    assert_one_error_line(code, capsys, "--direction is for runs that translate both ways")
    assert not (tmp_path / "x").exists()


# ---------------------------------------------------------------------------------------------------------------
# data and bad inputs


def test_shared_subjects_are_split_between_domains_and_same_folder_warns(tmp_path, write_nifti, caplog):
    for index in range(4):
        volume = np.zeros((32, 32, 6), np.float32)
        volume[6:26, 8:24] = 100.0 + index
        write_nifti(tmp_path / f"s{index}.nii.gz", volume)
    config = DataConfig(source=str(tmp_path), domain_a=(str(tmp_path),), resolution=32)
    with caplog.at_level(logging.WARNING):
        domain_a, domain_b, note = load_unpaired(config, load_slices, progress=False)
    assert "same data" in caplog.text
    assert not set(domain_a.subjects) & set(domain_b.subjects) and "4 subject(s)" in note
    kept = load_unpaired(DataConfig(source=str(tmp_path), domain_a=(str(tmp_path),), resolution=32, disjoint=False),
                         load_slices, progress=False)
    assert set(kept[0].subjects) == set(kept[1].subjects) and "hidden pairs" in kept[2]


def test_bad_unpaired_inputs_give_one_line_errors(tmp_path, tiny_brain, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    base = ["train", "--out", str(tmp_path / "run"), "--steps", "1", "--resolution", "32", "--quiet"]
    code = main([*base, "--domain-a", str(empty), "--domain-b", str(tiny_brain)])
    assert_one_error_line(code, capsys, str(empty))
    code = main([*base, "--task", "unpaired", "--data", str(tiny_brain)])
    assert_one_error_line(code, capsys, "needs domain A")
    code = main([*base, "--domain-a", str(tiny_brain), "--domain-b", str(tiny_brain), "--data", str(empty)])
    assert_one_error_line(code, capsys, "--domain-b")
    code = main([*base, "--domain-a", "mni152", str(tiny_brain), "--domain-b", str(tiny_brain)])
    assert_one_error_line(code, capsys, "embedded sources or all files")
    assert not (tmp_path / "run").exists()


def test_identity_start_stays_finite_on_saturated_bf16_inputs():
    """CycleGAN feeds one G's bf16 output to the other: 0.999 in bf16 is 1.0, whose atanh is infinite."""
    from medgan.networks.translation import UNetTranslator

    generator = UNetTranslator(1, 1, channels=4, depth=2)
    saturated = torch.full((2, 1, 16, 16), 0.9995, dtype=torch.bfloat16, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = generator(saturated)
    output.float().sum().backward()
    assert torch.isfinite(output.float()).all() and torch.isfinite(saturated.grad.float()).all()
    assert all(torch.isfinite(p.grad).all() for p in generator.parameters() if p.grad is not None)
