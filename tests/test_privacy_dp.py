"""Differentially private training (medgan.training.privacy): accountant, noise solving, per-patient sampling and
clipping, a DP run through the real loop (checkpoint contract, budget stop, exact resume), refused configs."""

import json

import pytest
import torch
from helpers import assert_one_error_line
from opacus.accountants import RDPAccountant

from medgan.checkpoint import load_checkpoint
from medgan.cli import main
from medgan.config import from_dict
from medgan.training.tasks import recipe, resolve_config
from medgan.data import IntensityMapping, SliceSet
from medgan.errors import ConfigError
from medgan.networks import build_discriminator
from medgan.training import privacy as dp
from medgan.training.loop import train
from medgan.training.tasks import TASKS

CONTRACT = {"epsilon", "delta", "noise_multiplier", "max_grad_norm", "unit", "sample_rate", "steps", "accountant",
            "mechanism"}
SUBJECTS, SLICES = 8, 3  # 8 patients with 3 slices each


def tiny_data() -> SliceSet:
    """24 random 32 x 32 images of 8 subjects (3 slices each), 2 classes."""
    count = SUBJECTS * SLICES
    images = torch.rand(count, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    subjects = [f"patient{i // SLICES}" for i in range(count)]
    labels = torch.tensor([(i // SLICES) % 2 for i in range(count)])
    return SliceSet(images, IntensityMapping("identity", -1.0, 1.0), (1.0, 1.0), subjects,
                    [f"f{i}#0" for i in range(count)], labels, ("a", "b"))


def tiny_config(privacy: dict, steps: int = 4, **sections):
    values = {"task": "conditional", "data": {"resolution": 32},
              "model": {"generator_channels": 4, "discriminator_channels": 4, "latent_dim": 8, "minibatch_std": False,
                        "auxiliary_classifier": True},
              "augment": {"policy": ["translation"]},
              "train": {"steps": steps, "batch_size": 4, "log_every": 2, "sample_every": 100, "checkpoint_every": 2,
                        "eval_every": 1, "ema_start": 1},
              "privacy": privacy}
    for section, entries in sections.items():
        values.setdefault(section, {}).update(entries)
    return from_dict(values, base=recipe("medgan"))


def test_accountant_epsilon_equals_opacus_rdp_accountant():
    sigma, rate, steps, delta = 1.1, 0.05, 300, 1e-5
    reference = RDPAccountant()
    for _ in range(steps):
        reference.step(noise_multiplier=sigma, sample_rate=rate)
    expected = reference.get_epsilon(delta)
    assert dp.epsilon_spent([(sigma, rate, steps)], delta) == pytest.approx(expected, rel=1e-12)
    assert dp.epsilon_spent([(sigma, rate, 100), (sigma, rate, 200)], delta) == pytest.approx(expected, rel=1e-9)
    assert dp.epsilon_spent([], delta) == 0.0
    assert 1.0 < expected < 10.0  # a known regime: sigma 1.1, q 0.05, 300 steps is single-digit epsilon


def test_noise_solving_reaches_the_target_for_the_planned_steps():
    target, delta, rate, steps = 3.0, 1e-5, 0.2, 200
    sigma = dp.solve_noise(target, delta, rate, steps)
    spent = dp.epsilon_spent([(sigma, rate, steps)], delta)
    assert target - 0.05 <= spent <= target
    assert dp.epsilon_spent([(sigma, rate, steps * 2)], delta) > target  # twice the steps would overspend
    assert dp.solve_noise(target, delta, rate, steps * 4) > sigma  # more steps need more noise


def test_per_unit_clipping_bounds_each_units_gradient_through_spectral_norm():
    from medgan.config import ModelConfig

    torch.manual_seed(0)
    model = build_discriminator(ModelConfig(discriminator_channels=4, minibatch_std=False), 32, 1, 2, 0)
    model.eval()
    images, labels = torch.randn(5, 1, 32, 32), torch.tensor([0, 1, 0, 1, 1])

    def loss(call, image, label):
        logit = call(image, label)
        return torch.nn.functional.softplus(-logit).mean(), logit

    gradients, _ = dp.per_sample_gradients(model, loss, (images, labels))
    # The vmapped gradient of sample 3 is the gradient of a backward pass on sample 3 alone (spectral norm included).
    model.zero_grad()
    torch.nn.functional.softplus(-model(images[3:4], labels[3:4])).mean().backward()
    for name, parameter in model.named_parameters():
        torch.testing.assert_close(gradients[name][3], parameter.grad, rtol=1e-4, atol=1e-6)
    bound = 0.01  # below the raw norms, so every unit is clipped
    clipped, norms = dp.clip_per_unit(gradients, bound)
    assert (norms > bound).all()
    after = torch.stack([g.flatten(1).norm(dim=1) for g in clipped.values()], dim=1).norm(dim=1)
    assert (after <= bound * (1 + 1e-5)).all() and (after > 0.99 * bound).all()
    unchanged, _ = dp.clip_per_unit(gradients, float(norms.max()) * 2)  # a loose bound leaves them alone
    for name in gradients:
        torch.testing.assert_close(unchanged[name], gradients[name])


def test_poisson_sampler_takes_at_most_one_slice_per_patient():
    data = tiny_data()
    config = tiny_config({"noise": 1.0}, data={"flip": False, "rotate_degrees": 0.0, "scale": 0.0})
    sampler = dp.PoissonUnitSampler(data, config, torch.Generator().manual_seed(3))
    assert len(sampler.units) == SUBJECTS and sampler.sample_rate == pytest.approx(4 / SUBJECTS)
    sizes = []
    for _ in range(200):
        batch = sampler.next()
        sizes.append(batch.images.shape[0])
        rows = [int(torch.nonzero((data.images == image).flatten(1).all(1))[0, 0]) for image in batch.images]
        patients = [data.subjects[row] for row in rows]
        assert len(set(patients)) == len(patients)  # one slice per sampled patient
        assert batch.labels.tolist() == data.labels[rows].tolist()
    assert min(sizes) <= 1 < max(sizes)  # Poisson: batch sizes vary
    assert abs(sum(sizes) / len(sizes) - 4) < 0.5  # expected units per batch
    slices = dp.PoissonUnitSampler(data, tiny_config({"noise": 1.0, "unit": "slice"}), torch.Generator())
    assert len(slices.units) == SUBJECTS * SLICES and slices.sample_rate == pytest.approx(4 / 24)


def test_dp_run_writes_epsilon_into_the_checkpoint_and_stops_when_the_budget_is_spent(tmp_path):
    run = tmp_path / "run"
    result = train(tiny_config({"epsilon": 8.0}), run, progress=False, data=tiny_data())
    state = load_checkpoint(result.checkpoint)
    record = state["privacy"]
    assert CONTRACT <= set(record)
    assert 7.9 <= record["epsilon"] <= 8.0 and record["steps"] == result.steps == 4
    assert record["unit"] == "subject" and record["accountant"] == "rdp" and "Poisson" in record["mechanism"]
    assert record["sample_rate"] == pytest.approx(4 / SUBJECTS) and record["delta"] == 1e-5
    assert record["epsilon"] == pytest.approx(
        dp.epsilon_spent([(record["noise_multiplier"], record["sample_rate"], 4)], record["delta"]))
    losses = [json.loads(line) for line in (run / "losses.jsonl").read_text().splitlines()]
    epsilons = [row["dp_epsilon"] for row in losses]
    assert epsilons == sorted(epsilons) and epsilons[-1] == pytest.approx(record["epsilon"])
    assert not (run / "metrics.jsonl").exists()  # no scoring on real images in a DP run (best.pt is the final one)
    log = (run / "train.log").read_text()
    assert "privacy: target epsilon 8" in log and "Poisson-sampled subjects" in log
    # More steps on resume: the accountant continues from 4 steps and training stops at the target.
    resumed = train(None, run, resume=True, progress=False, data=tiny_data(), budget={"steps": 12})
    after = load_checkpoint(resumed.checkpoint)["privacy"]
    assert resumed.steps < 12 and after["steps"] == resumed.steps and after["epsilon"] <= 8.0
    assert "privacy budget spent" in (run / "train.log").read_text()
    assert (run / "checkpoints" / "best.pt").read_bytes() == (run / "checkpoints" / "latest.pt").read_bytes()


def test_resume_continues_the_accountant_and_the_noise_exactly(tmp_path):
    straight = train(tiny_config({"noise": 1.0}), tmp_path / "a", progress=False, data=tiny_data())
    train(tiny_config({"noise": 1.0}, steps=2), tmp_path / "b", progress=False, data=tiny_data())
    resumed = train(None, tmp_path / "b", resume=True, progress=False, data=tiny_data(), budget={"steps": 4})
    a, b = load_checkpoint(straight.checkpoint), load_checkpoint(resumed.checkpoint)
    same = {key: value for key, value in a["privacy"].items() if key != "planned_steps"}
    assert same == {key: b["privacy"][key] for key in same} and b["privacy"]["steps"] == 4
    assert b["privacy"]["epsilon"] > 0 and b["privacy"]["target_epsilon"] is None
    for name, tensor in a["task"]["discriminator"].items():
        torch.testing.assert_close(b["task"]["discriminator"][name], tensor, rtol=0, atol=0)


@pytest.mark.parametrize("sections, fragment", [
    ({"model": {"minibatch_std": True}}, "model.minibatch_std must be off"),
    ({"loss": {"r1_gamma": 1.0}}, "loss.r1_gamma must be 0"),
    ({"loss": {"gradient_penalty": 10.0}}, "loss.gradient_penalty must be 0"),
    ({"augment": {"adaptive": True}}, "augment.adaptive must be off"),
    ({"optim": {"d_steps": 2}}, "optim.d_steps must be 1"),
])
def test_incompatible_configs_are_refused_naming_the_option(sections, fragment):
    with pytest.raises(ConfigError, match=fragment.replace(".", r"\.")):
        check_config(tiny_config({"epsilon": 5.0}, **sections))
    check_config(tiny_config({}, **sections))  # the same config without DP is fine


def check_config(config):
    TASKS.get(config.task).check_config(config)


def test_batchnorm_discriminator_and_bad_delta_are_refused():
    config = tiny_config({"noise": 1.0}, model={"spectral_norm": False, "name": "dcgan"})
    with pytest.raises(ConfigError, match="BatchNorm"):
        TASKS.get("conditional")(config, tiny_data(), torch.device("cpu"), torch.Generator())
    with pytest.raises(ConfigError, match=r"below 1 / number of subjects \(1/8\)"):
        TASKS.get("conditional")(tiny_config({"noise": 1.0, "delta": 0.2}), tiny_data(), torch.device("cpu"),
                                 torch.Generator())
    with pytest.raises(ConfigError, match="DP training covers the tasks conditional, unconditional, not 'paired'"):
        resolve_config({"data": {"degrade": "lowdose:0.25"}, "privacy": {"epsilon": 1.0}}, "pix2pix")


@pytest.mark.parametrize("option, fragment", [
    (["--dp-epsilon", "0"], "--dp-epsilon must be a positive number"),
    (["--dp-epsilon", "-3"], "--dp-epsilon must be a positive number"),
    (["--dp-noise", "0"], "--dp-noise must be a positive number"),
    (["--dp-noise", "1", "--dp-delta", "1"], "privacy.delta"),  # without --dp-noise: "--dp-delta needs ..."
    (["--dp-noise", "1", "--dp-delta", "1.5"], "privacy.delta"),
    (["--dp-epsilon", "5", "--set", "model.minibatch_std=true"], "model.minibatch_std must be off"),  # the user's
])
def test_cli_bad_privacy_values_are_one_line_errors(tmp_path, capsys, option, fragment):
    code = main(["train", "--data", "ct-lesions", "--task", "conditional", "--out", str(tmp_path / "run"), *option,
                 "--quiet"])
    assert_one_error_line(code, capsys, fragment)
    assert not (tmp_path / "run").exists()


def test_cli_options_map_to_the_privacy_keys():
    from medgan.cli import build_parser, resolve_train_config

    args = build_parser().parse_args(["train", "--data", "ct-lesions", "--task", "conditional", "--out", "unused",
                                      "--dp-epsilon", "3", "--dp-delta", "1e-6", "--dp-max-grad-norm", "0.5",
                                      "--set", "model.minibatch_std=false"])
    privacy = resolve_train_config(args).privacy
    assert (privacy.epsilon, privacy.noise, privacy.delta, privacy.max_grad_norm) == (3.0, 0.0, 1e-6, 0.5)
    args = build_parser().parse_args(["train", "--data", "ct-lesions", "--out", "unused", "--dp-noise", "1.5",
                                      "--set", "model.minibatch_std=false", "--set", "privacy.unit=slice"])
    privacy = resolve_train_config(args).privacy
    assert (privacy.epsilon, privacy.noise, privacy.unit) == (0.0, 1.5, "slice")
