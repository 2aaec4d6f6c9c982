"""Paired image-to-image translation (pix2pix): low-dose -> routine-dose CT, low -> high resolution, holes ->
filled, label maps -> images.

Phases per step, in pix2pix's order:
  G forward: y_hat = G(x) on (random patches of) the stacked input domains x;
  D main:    minimize the adversarial D loss on D(x, y) vs D(x, y_hat.detach()) (PatchGAN: a logit per patch);
  G main:    minimize adversarial_weight * L_G(D(x, y_hat)) + pixel * |y_hat - y|_1; then update the EMA.
With ``paired.adversarial_weight: 0`` D is not trained at all: the pure-L1 baseline users compare against.

2.5D (``data.context`` K): each image input domain arrives as ``2K + 1`` channels, the slice and its neighbours
(``medgan.data.pairs``); G and D take them as they take several modalities, and the inference state records K so
that ``medgan translate`` stacks the neighbours of each slice of a volume alike.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medgan.card import CARD_NAME
from medgan.config import RunConfig
from medgan.data import SliceSet
from medgan.data.pairs import check_context
from medgan.data.spec import spec_of
from medgan.errors import ConfigError
from medgan.inference.translate import KIND, build_translator, optional_domains, stack_inputs, translator_state
from medgan.losses import get_adversarial
from medgan.losses.pixel import l1
from medgan.metrics.image import psnr, ssim
from medgan.networks.translation import PatchDiscriminator
from medgan.training.augment import DiffAugment
from medgan.training.batches import Batch, reference_indices
from medgan.training.ema import EMA
from medgan.training.precision import autocast_context, use_bf16
from medgan.training.schedule import lr_factor, set_learning_rates
from medgan.training.tasks.base import Capabilities, EvaluationRequest, ScoreRule, Scorer, TaskBase
from medgan.training.tasks.gan_state import GanState
from medgan.training.tasks.image_to_image import (check_context_channels, check_translation_names,
                                                   evaluate_modalities, modality_dropout)
from medgan.training.tasks.paired.config import CLI_OPTIONS, NAME, PairedOptions, check_paired_options
from medgan.training.tasks.registry import register_task
from medgan.utils import exists

GRID_ROWS = 8  # fixed tiles shown in each sample grid (input | output | target | difference)
GRID_SEED = 1234
EVAL_TILES = 64  # fixed tiles scored during training
EVAL_SEED = 99
TARGET = "image"  # the target domain's name in the data spec


@register_task(NAME)
class PairedTask(GanState, TaskBase):
    """G(x) -> y with a conditional PatchGAN and an L1 term; see the module docstring.

    Args:
        config: the resolved run config (``model.name`` names the translator, e.g. "unet").
        data: paired training data: ``images`` are the targets, ``aligned`` the input domains.
        device: where the networks live.
        rng: the task's generator for patches and augmentation (checkpointed).
    """

    default_recipe = "pix2pix"
    inference_kind = KIND
    Options = PairedOptions
    capabilities = Capabilities(context=True)
    cli_options = CLI_OPTIONS

    @classmethod
    def check_options(cls, options: PairedOptions, config: RunConfig) -> None:
        check_paired_options(options, config)

    @classmethod
    def check_config(cls, config: RunConfig) -> None:
        """Its section and the registered names it uses, checked before anything is created."""
        super().check_config(config)
        check_translation_names(config)
        check_context(config.data)

    @classmethod
    def describe(cls, config: RunConfig) -> str:
        """"pix2pix (paired)", or the pure-L1 baseline when no D is trained."""
        return "pix2pix (paired)" if cls.section(config).adversarial_weight > 0 else "U-Net (paired, L1 only)"

    @classmethod
    def evaluate(cls, run_dir: str | Path, request: EvaluationRequest) -> str:
        """Input modalities (``data.domain_a``): against held-out true pairs of the target modality; derived or
        matched inputs: against held-out targets beside the classic baselines (``medgan.evaluation.paired``)."""
        from medgan.evaluation.paired import evaluate_paired_run, format_paired_table
        from medgan.run import RunDir

        config = RunDir.existing(run_dir).read_config()
        request.refuse(("--direction",), "is for runs that translate both ways", run_dir)
        if config.data.domain_a:
            return evaluate_modalities(run_dir, request, config.data.source, tuple(config.data.domain_a))
        request.refuse(("--inputs", "--compare"), "is for modality-translation runs (unpaired, or paired with "
                       "--domain-a)", run_dir)
        request.refuse(("--train", "--no-real-images", "--features", "--members", "--non-members"),
                       "does not apply to a paired run: it is compared with its held-out targets", run_dir)
        label = "GAN" if cls.section(config).adversarial_weight > 0 else "U-Net (L1 only)"  # no D: no GAN
        metrics = evaluate_paired_run(run_dir, request.real, request.out, request.max_images, request.progress,
                                      label=label)
        out = Path(request.out)
        return "\n".join([format_paired_table(metrics),
                          f"wrote {out / 'metrics.json'}, {out / 'report.html'} and {CARD_NAME}"])

    @classmethod
    def showcase(cls, run_dir: str | Path, progress: bool = True) -> list[str]:
        """The held-out evaluation (``evaluate`` on the run's own test split) and how to translate more."""
        table = cls.evaluate(run_dir, EvaluationRequest(out=Path(run_dir) / "evaluation", progress=progress))
        return [table, f"held-out evaluation: {Path(run_dir) / 'evaluation' / 'report.html'}; translate your own "
                       f"images with: medgan translate --run {run_dir} --input IMAGES --out DIR"]

    def __init__(self, config: RunConfig, data: SliceSet, device: torch.device, rng: torch.Generator) -> None:
        if not data.aligned:
            raise ConfigError("task 'paired' needs input images: --input DIR (matched by file name), "
                              "--pairs CSV, or --degrade lowdose:F|downsample:F|inpaint|mask", config.data.source)
        self.config = config
        self.options: PairedOptions = self.section(config)
        self.device = device
        self.rng = rng
        self.data = data
        self.spec = replace(spec_of(data, attributes=False), class_names=())
        self.input_domains = tuple(data.aligned)
        check_context_channels(self.spec, tuple(data.mappings), config.data.context, config.data.source)
        self.nearest_domains = frozenset(name for name in data.aligned if name not in data.mappings)
        self.groups_by_class = False
        self.attributes = None
        self.score_rule: ScoreRule | None = ScoreRule("ssim", lower_is_better=False)
        self.bf16 = use_bf16(config.train.precision, device)
        self.optional = optional_domains(self.spec, self.input_domains)
        in_channels = sum(self.spec.domain(name).channels for name in self.input_domains) + len(self.optional)
        self.generator = build_translator(config, self.spec, self.input_domains, TARGET).to(device)
        self.discriminator = PatchDiscriminator(in_channels + self.spec.channels,
                                                config.model.discriminator_channels).to(device)
        self.ema = EMA(self.generator, config.train.ema, config.train.ema_start) if config.train.ema > 0 else None
        optim = config.optim
        self.optimizer_g = torch.optim.Adam(self.generator.parameters(), lr=optim.lr_generator, betas=optim.betas)
        self.optimizer_d = torch.optim.Adam(self.discriminator.parameters(), lr=optim.lr_discriminator,
                                            betas=optim.betas)
        self.loss = get_adversarial(config.loss.adversarial)
        self.augment = DiffAugment(config.augment.policy, config.augment.probability)
        self.adversarial = self.options.adversarial_weight > 0
        self.horizon = max(config.train.steps, 1)
        self._grid = reference_indices(data.subjects, GRID_ROWS, GRID_SEED)
        self._eval = reference_indices(data.subjects, EVAL_TILES, EVAL_SEED)

    # ---------------------------------------------------------------------------------------------------
    # helpers

    def _inputs(self, aligned: dict[str, torch.Tensor], dropout: bool = False) -> torch.Tensor:
        """The input domains stacked on channels in the spec's order, then availability: [N, C_in, H, W].

        With ``dropout`` (training), each optional modality of each image is dropped with chance
        ``paired.modality_dropout`` (at least one is kept), so the model learns to serve incomplete protocols.
        """
        available = None
        if dropout and self.optional:
            available = modality_dropout(len(next(iter(aligned.values()))), len(self.optional),
                                         self.options.modality_dropout, self.rng)
        return stack_inputs(aligned, self.spec, self.input_domains, self.optional, available)

    def _patches(self, inputs: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The same random ``paired.patch``-sized square of every image in both tensors (whole tiles at 0)."""
        size = self.options.patch
        height, width = target.shape[-2:]
        if size <= 0 or (size >= height and size >= width):
            return inputs, target
        top = int(torch.randint(0, height - size + 1, (1,), generator=self.rng))
        left = int(torch.randint(0, width - size + 1, (1,), generator=self.rng))
        window = (..., slice(top, top + size), slice(left, left + size))
        return inputs[window], target[window]

    def _discriminate(self, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """D's patch logits on an (input, target) pair, both through the same DiffAugment draw."""
        pair = self.augment(torch.cat([inputs, target], dim=1), self.rng)
        return self.discriminator(pair[:, : inputs.shape[1]], pair[:, inputs.shape[1]:])

    # ---------------------------------------------------------------------------------------------------
    # the step

    def train_step(self, batch: Batch, step: int) -> dict[str, float]:
        """G forward, D main (unless pure L1), G main, EMA."""
        optim, options = self.config.optim, self.options
        factor = lr_factor(step, self.horizon, optim.schedule, optim.warmup_steps)
        set_learning_rates((self.optimizer_g, self.optimizer_d), (optim.lr_generator, optim.lr_discriminator), factor)
        inputs, target = self._patches(self._inputs(batch.aligned, dropout=True).to(self.device),
                                       batch.images.to(self.device))
        logs: dict[str, float] = {"lr_factor": factor}
        with autocast_context(self.device, self.bf16):
            fake = self.generator(inputs)
        if self.adversarial:
            # D main: real pairs vs generated pairs (G's output detached).
            with autocast_context(self.device, self.bf16):
                real_logits = self._discriminate(inputs, target)
                fake_logits = self._discriminate(inputs, fake.detach())
                loss_d = self.loss.discriminator(real_logits.flatten(1).mean(1), fake_logits.flatten(1).mean(1))
            self.optimizer_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.optimizer_d.step()
            logs["loss_d"] = loss_d.item()
        # G main: fool D (through D, whose weights get no gradient here) and stay close to the target.
        pixel = l1(fake, target)
        total = options.pixel * pixel
        if self.adversarial:
            self.discriminator.requires_grad_(False)
            with autocast_context(self.device, self.bf16):
                loss_g = self.loss.generator(self._discriminate(inputs, fake).flatten(1).mean(1))
            self.discriminator.requires_grad_(True)
            total = total + options.adversarial_weight * loss_g
            logs["loss_g"] = loss_g.item()
        self.optimizer_g.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer_g.step()
        logs["loss_l1"] = pixel.item()
        if exists(self.ema):
            self.ema.update(self.generator, step + 1)
        return logs

    # ---------------------------------------------------------------------------------------------------
    # inference

    @property
    def inference_generator(self) -> nn.Module:
        return self.ema.module if exists(self.ema) else self.generator

    def prepare_inference(self) -> None:
        """Nothing to recompute: the U-Net uses instance norm, which has no running statistics."""

    @torch.no_grad()
    def translate(self, inputs: torch.Tensor) -> torch.Tensor:
        model = self.inference_generator
        was_training = model.training
        model.eval()
        with autocast_context(self.device, self.bf16):
            output = model(inputs.to(self.device))
        model.train(was_training)
        return output.float().cpu()

    def grid(self) -> tuple[torch.Tensor, int]:
        """Rows of input (first channel) | output | target | |output - target| (black = 0) for fixed tiles."""
        inputs = self._inputs({name: tiles[self._grid] for name, tiles in self.data.aligned.items()})
        target = self.data.images[self._grid]
        output = self.translate(inputs)
        difference = (output - target).abs() - 1.0
        return torch.stack([inputs[:, :1], output, target, difference], dim=1).flatten(0, 1), 4

    def score(self, scorer: Scorer) -> dict[str, float]:
        """L1, PSNR and SSIM of the inference G on fixed training tiles spread across subjects."""
        inputs = self._inputs({name: tiles[self._eval] for name, tiles in self.data.aligned.items()})
        target = self.data.images[self._eval]
        output = self.translate(inputs).clamp(-1, 1)
        return {"ssim": float(ssim(output, target).mean()), "psnr": float(psnr(output, target).mean()),
                "l1": float(l1(output, target))}

    def inference_state(self) -> dict[str, Any]:
        return translator_state(self.inference_generator, self.input_domains, TARGET, self.optional,
                                self.config.data.context)

    # ---------------------------------------------------------------------------------------------------
    # state

    def state_dict(self) -> dict[str, Any]:
        return self.gan_state_dict()

    def load_state_dict(self, state: dict[str, Any], path: str) -> None:
        self.load_gan_state(state, path)
