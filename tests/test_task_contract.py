"""The task contract: a new GAN family is one module. ``toy_task.py`` (one module, registered by importing it)
trains, resumes, translates and evaluates through the real CLI; a toy identity-translation task defined here
trains through the real loop with its own inference kind; the contract is checked at registration; time budgets
give tasks an explicit horizon; the evaluation reference spans subjects."""

import time

import pytest
import torch
from torch import nn

from medgan.checkpoint import load_module_state
from medgan.config import from_dict
from medgan.training.tasks import recipe
from medgan.data import IntensityMapping, SliceSet
from medgan.data.spec import spec_of
from medgan.inference import INFERENCE, load_model
from medgan.run import RunDir
from medgan.training.batches import reference_indices
from medgan.training.loop import Budget, train
from medgan.training.tasks import TASKS, Batch, ScoreRule, TaskBase, TaskOption, register_task
from medgan.visuals import read_jsonl

TOY = "toy-identity"


class ToyIdentity(TaskBase):
    """G(input) -> target with a one-layer convolution and an L1 loss: the smallest image-to-image task."""

    default_recipe = "medgan"
    inference_kind = TOY

    def __init__(self, config, data, device, rng):
        self.spec = spec_of(data)
        self.score_rule = ScoreRule("l1", lower_is_better=True)
        self.groups_by_class = False
        self.nearest_domains = frozenset()
        self.attributes = None
        self.data = data
        self.rng = rng
        self.network = nn.Conv2d(1, 1, 3, padding=1)
        self.optimizer = torch.optim.SGD(self.network.parameters(), lr=0.1)
        self.horizons = []

    def set_horizon(self, steps):
        self.horizons.append(steps)

    def train_step(self, batch: Batch, step):
        loss = (self.network(batch.aligned["input"]) - batch.images).abs().mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return {"loss_l1": loss.item()}

    @torch.no_grad()
    def grid(self):
        inputs = self.data.aligned["input"][:4]
        return torch.cat([inputs, self.network(inputs).clamp(-1, 1), self.data.images[:4]]), 4

    @torch.no_grad()
    def score(self, scorer):
        output = self.network(self.data.aligned["input"])
        return {"l1": float((output - self.data.images).abs().mean()), **scorer(self.data.images, output)}

    def prepare_inference(self):
        pass

    def inference_state(self):
        return {"kind": TOY, "weights": self.network.state_dict()}

    def modules(self):
        return {"network": self.network}

    def state_dict(self):
        return {"network": self.network.state_dict(), "optimizer": self.optimizer.state_dict(),
                "rng": self.rng.get_state()}

    def load_state_dict(self, state, path):
        load_module_state(self.network, state["network"], path, "network")
        self.optimizer.load_state_dict(state["optimizer"])
        self.rng.set_state(state["rng"])


class ToyTranslator:
    def __init__(self, network, spec):
        self.network, self.spec = network, spec

    def __call__(self, images):
        with torch.no_grad():
            return self.network(images)


if TOY not in TASKS:
    register_task(TOY)(ToyIdentity)


@INFERENCE.register(TOY) if TOY not in INFERENCE else (lambda f: f)
def load_toy(state, direction=None):
    network = nn.Conv2d(1, 1, 3, padding=1)
    load_module_state(network, state.inference["weights"], state.path, "network")
    return ToyTranslator(network, state.spec)


def paired_data(count=16, size=32, subjects=4):
    generator = torch.Generator().manual_seed(0)
    target = torch.rand(count, 1, size, size, generator=generator) * 2 - 1
    noisy = (target + 0.3 * torch.randn(target.shape, generator=generator)).clamp(-1, 1)
    return SliceSet(target, IntensityMapping("ct_window", -150.0, 250.0, "HU"), (0.8, 0.8),
                    [f"p{i % subjects}" for i in range(count)], [f"f{i}#0" for i in range(count)],
                    aligned={"input": noisy}, mappings={"input": IntensityMapping("ct_window", -150.0, 250.0, "HU")})


def toy_config(**train):
    return from_dict({"task": TOY, "data": {"resolution": 32, "flip": True, "rotate_degrees": 0, "scale": 0},
                      "train": {"batch_size": 4, "log_every": 2, "sample_every": 4, "checkpoint_every": 4,
                                "eval_every": 4, **train}}, base=recipe("medgan"))


def mean_gap(real, fake):
    return {"mean_gap": float((real.mean() - fake.mean()).abs())}


def test_a_toy_translation_task_trains_through_the_real_loop(tmp_path):
    data = paired_data()
    result = train(toy_config(steps=8), tmp_path / "run", progress=False, data=data, scorer=mean_gap)
    run = RunDir(tmp_path / "run")
    assert result.steps == 8 and result.score_key == "l1" and result.best_score is not None
    losses = read_jsonl(run.losses_file)
    assert [r["step"] for r in losses] == [2, 4, 6, 8] and losses[-1]["loss_l1"] < losses[0]["loss_l1"]
    assert [set(r) >= {"l1", "mean_gap"} for r in read_jsonl(run.metrics_file)] == [True, True]
    assert (run.samples / "final.png").is_file() and run.best.is_file()
    model = load_model(run.path)  # through the inference registry, from the checkpoint alone
    assert isinstance(model, ToyTranslator) and model.spec.domain("input").mapping.unit == "HU"
    assert model(data.aligned["input"][:2]).shape == (2, 1, 32, 32)
    train(None, tmp_path / "run", resume=True, progress=False, budget={"steps": 10}, scorer=mean_gap, data=data)
    assert [r["step"] for r in read_jsonl(run.losses_file)][-1] == 10


def test_aligned_batches_get_the_same_flip():
    from medgan.training.batches import BatchSampler

    data = paired_data()
    data.aligned["input"] = data.images.clone()
    sampler = BatchSampler(data, 16, toy_config(steps=1).data, torch.Generator().manual_seed(1))
    flipped = 0
    for _ in range(4):
        batch = sampler.next()
        assert torch.equal(batch.images, batch.aligned["input"])
        flipped += int(not torch.equal(batch.images, data.images[sampler.order[sampler.position - 16:sampler.position]]))
    assert flipped > 0  # augmentation did flip, and identically on both


def test_a_time_budget_gives_the_task_a_horizon_so_the_schedule_decays(tmp_path):
    """Under --minutes the LR schedule used to see a horizon of 10**9 steps and never decayed."""
    config = from_dict({"data": {"resolution": 32, "min_foreground": 0.05},
                        "model": {"generator_channels": 4, "discriminator_channels": 4, "latent_dim": 8},
                        "optim": {"schedule": "linear"},
                        "train": {"steps": 0, "minutes": 0.05, "batch_size": 4, "log_every": 5, "eval_every": 0,
                                  "sample_every": 10**6, "checkpoint_every": 10**6}}, base=recipe("medgan"))
    data = paired_data(count=16)
    data.aligned = {}
    data.mappings = {}
    started = time.monotonic()
    result = train(config, tmp_path / "run", progress=False, data=data)
    assert time.monotonic() - started < 60 and result.steps > 20
    factors = [r["lr_factor"] for r in read_jsonl(tmp_path / "run" / "losses.jsonl")]
    assert factors[0] > 0.8 and factors[-1] < 0.35, factors


def test_budget_horizon():
    budget = Budget(steps=500, minutes=0, start_step=100)
    assert budget.horizon(120) == 500 and not budget.finished(499) and budget.finished(500)
    timed = Budget(steps=0, minutes=10, start_step=0)
    timed.started -= 60  # one minute gone, 100 steps done: about 1,000 steps in ten minutes
    timed.deadline -= 60
    assert timed.horizon(100) == pytest.approx(1000, rel=0.02)


def test_the_evaluation_reference_spans_subjects():
    subjects = ["a"] * 200 + ["b"] * 50 + ["c"] * 50
    chosen = reference_indices(subjects, 60, seed=99)
    picked = [subjects[i] for i in chosen.tolist()]
    assert len(chosen) == 60 and len(set(chosen.tolist())) == 60
    assert picked.count("a") == picked.count("b") == picked.count("c") == 20
    assert torch.equal(chosen, reference_indices(subjects, 60, seed=99))
    assert not torch.equal(chosen, reference_indices(subjects, 60, seed=7))
    assert len(reference_indices(["x"] * 5, 60, seed=0)) == 5


# ---------------------------------------------------------------------------------------------------------------
# a new GAN family from one module, through the real CLI


def test_a_new_family_from_one_module_trains_resumes_translates_and_evaluates_through_the_cli(tmp_path, capsys):
    """README's "Adding a GAN family": importing tests/toy_task.py registers the task; nothing else changes."""
    import numpy as np
    from PIL import Image

    import toy_task
    from medgan.cli import main

    run, common = tmp_path / "run", ["--quiet"]
    assert main(["train", "--model", "toy", "--data", "mni152", "--degrade", "downsample:2", "--kernel", "7",
                 "--pixel", "5",
                 "--resolution", "32", "--steps", "4", "--out", str(run), "--set", "train.checkpoint_every=2",
                 *common]) == 0
    saved = RunDir(run).read_config()
    assert saved.task == toy_task.NAME  # --model names the family's recipe, which selects its task
    assert saved.options == {"pixel": 5.0} and saved.model.generator_channels == 7 and saved.model.name == "toy-conv"
    assert "toy-restore:" in (run / "config.yaml").read_text()
    assert main(["train", "--out", str(run), "--resume", "--steps", "6", *common]) == 0
    assert [r["step"] for r in read_jsonl(run / "losses.jsonl")][-1] == 6
    model = load_model(run)  # the existing image-to-image kind serves the new family
    assert model.generator.convolution.kernel_size == (7, 7)
    image = tmp_path / "slice.png"
    Image.fromarray((np.random.default_rng(0).random((40, 36)) * 255).astype(np.uint8)).save(image)
    assert main(["translate", "--run", str(run), "--input", str(image), "--out", str(tmp_path / "translated"),
                 *common]) == 0
    assert len(list((tmp_path / "translated").glob("*.png"))) == 1
    assert main(["evaluate", "--fake", str(run), "--real", "mni152", "--out", str(tmp_path / "eval"),
                 "--max-images", "4", *common]) == 0
    assert "toy GAN" in capsys.readouterr().out and (tmp_path / "eval" / "metrics.json").is_file()
    # The family's keys are checked by the family, and its options belong to it alone.
    assert main(["train", "--task", toy_task.NAME, "--degrade", "downsample:2", "--kernel", "6",
                 "--out", str(tmp_path / "bad"), *common]) == 2
    assert "model.generator_channels" in capsys.readouterr().err
    assert main(["train", "--patch", "32", "--task", toy_task.NAME, "--out", str(tmp_path / "bad"), *common]) == 2
    assert "--patch is an option of task paired, not of task 'toy-restore'" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_the_contract_is_checked_at_registration():
    class Incomplete(TaskBase):
        def train_step(self, batch, step):
            return {}

    with pytest.raises(TypeError, match="lacks grid, score, prepare_inference, inference_state, modules"):
        register_task("incomplete")(Incomplete)

    class Clashing(ToyIdentity):
        cli_options = (TaskOption("--degrade", "data.input", "another meaning"),)

    with pytest.raises(TypeError, match="declares --degrade unlike another task"):
        register_task("clashing")(Clashing)
    assert "incomplete" not in TASKS and "clashing" not in TASKS
