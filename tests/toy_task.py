"""A new GAN family in one module, as README's "Adding a GAN family" shows it: a least-squares GAN that
restores degraded images with one residual convolution as G and a two-layer patch D.

Importing this module is all it takes: it registers the task ``toy-restore`` (its config section ``toy-restore:``
with ``pixel``, its options ``--pixel`` and ``--kernel`` (G's width key), the ``--degrade`` option it shares with
``paired``, its recipe ``toy``), and its generator in ``medgan.networks.translation.TRANSLATORS``, so that checkpoints hold the
existing ``image-to-image`` inference kind and ``medgan translate`` serves them. ``medgan evaluate`` on a run
measures it on held-out targets beside the classic baselines. No other file of medgan changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medgan.config import DataConfig, LossConfig, ModelConfig, OptimConfig, RunConfig, TrainConfig, check
from medgan.data.spec import spec_of
from medgan.errors import ConfigError
from medgan.inference.translate import KIND, build_translator, translator_state
from medgan.losses import get_adversarial
from medgan.networks.translation import TRANSLATORS
from medgan.training.tasks import (RECIPES, Batch, Capabilities, EvaluationRequest, Recipe, ScoreRule, TaskBase,
                                   TaskOption, register_task)

NAME = "toy-restore"


@dataclass(frozen=True)
class ToyOptions:
    """The section ``toy-restore:`` of a run's config."""

    pixel: float = 10.0  # weight of the L1 term beside the adversarial one


@TRANSLATORS.register("toy-conv") if "toy-conv" not in TRANSLATORS else (lambda cls: cls)
class ToyConv(nn.Module):
    """G: x + conv(x), squashed to [-1, 1]; built by ``build_translator`` like any translator (``channels`` is the
    kernel side)."""

    def __init__(self, in_channels: int, out_channels: int, channels: int = 3, depth: int = 0,
                 residual: bool = True) -> None:
        super().__init__()
        self.convolution = nn.Conv2d(in_channels, out_channels, channels, padding=channels // 2)
        nn.init.zeros_(self.convolution.weight)
        nn.init.zeros_(self.convolution.bias)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(torch.atanh(inputs[:, :1].clamp(-0.999, 0.999)) + self.convolution(inputs))


def _toy_recipe() -> RunConfig:
    """The toy family's recipe: LSGAN, Adam 1e-3, G kernel 5."""
    return RunConfig(task=NAME, model=ModelConfig(name="toy-conv", generator_channels=5, discriminator_channels=8),
                     loss=LossConfig(adversarial="lsgan"), optim=OptimConfig(lr_generator=1e-3, lr_discriminator=1e-3),
                     train=TrainConfig(batch_size=8, ema=0.0, eval_every=0),
                     data=DataConfig(flip=False, rotate_degrees=0.0, scale=0.0), options={"pixel": 10.0})


class ToyRestoreTask(TaskBase):
    """G(x) -> y by LSGAN + L1 on pairs made by ``--degrade``."""

    Options = ToyOptions
    default_recipe = "toy"
    inference_kind = KIND
    capabilities = Capabilities()
    cli_options = (TaskOption("--kernel", "model.generator_channels", "side of G's convolution", type=int, metavar="K"),
                   TaskOption("--pixel", "pixel", "weight of the L1 term", type=float, metavar="W"),
                   TaskOption("--degrade", "data.degrade", "derive inputs from the targets: lowdose:FRACTION, "
                              "downsample:FACTOR, inpaint or mask"))  # it selects paired, as before the toy

    @classmethod
    def check_options(cls, options: ToyOptions, config: RunConfig) -> None:
        check(options.pixel >= 0, f"{NAME}.pixel", "must be >= 0")
        check(config.model.generator_channels in (5, 7, 9), "model.generator_channels", "is the toy's kernel side: "
              "5, 7 or 9")

    @classmethod
    def evaluate(cls, run_dir: str | Path, request: EvaluationRequest) -> str:
        from medgan.evaluation.paired import evaluate_paired_run, format_paired_table

        request.refuse(("--direction", "--inputs", "--compare", "--train"), "does not apply here", run_dir)
        return format_paired_table(evaluate_paired_run(run_dir, request.real, request.out, request.max_images,
                                                       request.progress, label="toy GAN"))

    def __init__(self, config: RunConfig, data: Any, device: torch.device, rng: torch.Generator) -> None:
        if not data.aligned:
            raise ConfigError(f"task {NAME!r} needs --degrade", config.data.source)
        self.config, self.device, self.rng, self.data = config, device, rng, data
        self.options: ToyOptions = self.section(config)
        self.spec = spec_of(data, attributes=False)
        self.inputs = tuple(data.aligned)
        self.score_rule = ScoreRule("l1")
        self.generator = build_translator(config, self.spec, self.inputs, "image").to(device)
        self.discriminator = nn.Sequential(nn.Conv2d(1, 8, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(8, 1, 4, 2, 1))
        self.optimizer_g = torch.optim.Adam(self.generator.parameters(), lr=config.optim.lr_generator)
        self.optimizer_d = torch.optim.Adam(self.discriminator.parameters(), lr=config.optim.lr_discriminator)
        self.loss = get_adversarial(config.loss.adversarial)

    def train_step(self, batch: Batch, step: int) -> dict[str, float]:
        inputs, target = batch.aligned[self.inputs[0]], batch.images
        fake = self.generator(inputs)
        loss_d = self.loss.discriminator(self.discriminator(target).flatten(1).mean(1),
                                         self.discriminator(fake.detach()).flatten(1).mean(1))
        self.optimizer_d.zero_grad()
        loss_d.backward()
        self.optimizer_d.step()
        l1 = (fake - target).abs().mean()
        loss_g = self.loss.generator(self.discriminator(fake).flatten(1).mean(1)) + self.options.pixel * l1
        self.optimizer_g.zero_grad()
        loss_g.backward()
        self.optimizer_g.step()
        return {"loss_d": loss_d.item(), "loss_g": loss_g.item(), "loss_l1": l1.item()}

    @torch.no_grad()
    def grid(self) -> tuple[torch.Tensor, int]:
        inputs, target = self.data.aligned[self.inputs[0]][:4], self.data.images[:4]
        return torch.cat([inputs, self.generator(inputs), target]), 4

    @torch.no_grad()
    def score(self, scorer: Any) -> dict[str, float]:
        return {"l1": float((self.generator(self.data.aligned[self.inputs[0]]) - self.data.images).abs().mean())}

    def prepare_inference(self) -> None:
        """Nothing to recompute: no running statistics."""

    def inference_state(self) -> dict[str, Any]:
        return translator_state(self.generator, self.inputs, "image")

    def modules(self) -> dict[str, nn.Module]:
        return {"generator": self.generator, "discriminator": self.discriminator}

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.state_dict(), "discriminator": self.discriminator.state_dict(),
                "optimizer_g": self.optimizer_g.state_dict(), "optimizer_d": self.optimizer_d.state_dict(),
                "rng": self.rng.get_state()}

    def load_state_dict(self, state: dict[str, Any], path: str) -> None:
        self.generator.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.optimizer_g.load_state_dict(state["optimizer_g"])
        self.optimizer_d.load_state_dict(state["optimizer_d"])
        self.rng.set_state(state["rng"])


if NAME not in RECIPES:  # a module imported twice (pytest's rootdir and package imports) registers once
    RECIPES.register("toy")(Recipe((NAME,), _toy_recipe, "the toy family's recipe"))
    register_task(NAME)(ToyRestoreTask)
