"""Unpaired image-to-image translation (CycleGAN): MR -> CT, unenhanced <-> contrast-enhanced CT, without pairs.

Domain A is ``data.domain_a`` (one or several modalities stacked as channels, e.g. T1 + T2) and domain B is
``data.source``; each keeps its own intensity mapping, so a CT domain is written back in HU and an MR domain in
its own units. Two generators (G: A -> B, F: B -> A, medgan's U-Net translator) and two unconditional PatchGAN
discriminators (D_A, D_B). Phases per step, in CycleGAN's order:

  G phase: fake_b = G(a), fake_a = F(b); minimize  L_adv(D_B(fake_b)) + L_adv(D_A(fake_a))
           + cycle * (|F(fake_b) - a| + |G(fake_a) - b|) + identity * cycle * (|G(b) - b| + |F(a) - a|);
  D phase: D_A on real a vs a fake drawn from its image pool of past F(b), D_B likewise (each loss halved);
  then the generator EMAs.

2.5D (``data.context`` K): each A modality arrives as ``2K + 1`` channels, the slice and its neighbours, read from
volume files (``medgan.data.modalities``); B's slices go in alone. So G maps an A slab to one B slice, F maps a B
slice to a whole A slab, D_A judges slabs (real ones against F's), and the cycle compares F(G(a)) with the whole
slab; identity needs equal channels and is refused. ``medgan translate`` stacks each slice's neighbours for a2b.

With several A modalities, G's input carries one availability channel per modality and each is dropped with
``unpaired.modality_dropout`` per image (never all), so G serves incomplete protocols; F outputs every modality
and the cycle compares it with the full a. Identity needs A and B of the same channels (one modality).

The loop feeds domain B (``data``); the task draws domain A from ``data.other`` with its own checkpointed
sampler. Without true pairs nothing is scored by SSIM: "best" is the lowest FID of G(a) against real B tiles.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medgan.checkpoint import load_module_state
from medgan.config import RunConfig
from medgan.data import SliceSet
from medgan.data.cache import load_training_slices
from medgan.data.modalities import load_unpaired
from medgan.data.pairs import input_names
from medgan.data.spec import PRIMARY, DataSpec, DomainSpec
from medgan.errors import CheckpointError, ConfigError
from medgan.inference.translate import (KIND, Direction, build_translator, optional_domains, split_domains,
                                        stack_inputs, translator_state)
from medgan.losses import get_adversarial
from medgan.losses.pixel import cycle_consistency, identity_mapping, l1
from medgan.networks.translation import DomainDiscriminator
from medgan.training.augment import DiffAugment
from medgan.training.batches import Batch, BatchSampler, reference_indices
from medgan.training.ema import EMA
from medgan.training.precision import autocast_context, use_bf16
from medgan.training.schedule import lr_factor, set_learning_rates
from medgan.training.tasks.base import Capabilities, EvaluationRequest, ScoreRule, Scorer, TaskBase
from medgan.training.tasks.gan_state import STATE_ERRORS
from medgan.training.tasks.image_to_image import (check_context_channels, check_translation_names,
                                                   evaluate_modalities, modality_dropout)
from medgan.training.tasks.registry import register_task
from medgan.training.tasks.unpaired.config import CLI_OPTIONS, NAME, UnpairedOptions, check_unpaired_options
from medgan.training.tasks.unpaired.pool import ImagePool
from medgan.utils import exists

LOG = logging.getLogger(__name__)
GRID_ROWS = 6  # fixed tiles of each domain in every sample grid
GRID_SEED = 1234
EVAL_TILES = 256  # FID on the 64 offline features needs more images than features
EVAL_SEED = 99


@register_task(NAME)
class UnpairedTask(TaskBase):
    """CycleGAN on domains A (``data.other``) and B (``data``); see the module docstring.

    Args:
        config: the resolved run config (``model.name`` names the translator, e.g. "unet").
        data: domain B tiles, with domain A in ``data.other`` (``load_data``).
        device: where the networks live.
        rng: the task's generator for augmentation, dropout, pools and domain A's sampler (checkpointed).
    """

    default_recipe = "cyclegan"
    inference_kind = KIND
    Options = UnpairedOptions
    capabilities = Capabilities(directions=tuple(Direction), context=True)
    cli_options = CLI_OPTIONS

    @classmethod
    def check_options(cls, options: UnpairedOptions, config: RunConfig) -> None:
        check_unpaired_options(options, config)

    @classmethod
    def check_config(cls, config: RunConfig) -> None:
        """Its section, the registered names it uses, and that it has two domains, before anything is created."""
        super().check_config(config)
        check_translation_names(config)
        if not config.data.domain_a:
            raise ConfigError("task 'unpaired' needs domain A: --domain-a PATH [PATH ...] (domain B is --domain-b "
                              "or --data)")
        if config.data.input or config.data.pairs or config.data.degrade:
            raise ConfigError("task 'unpaired' takes --domain-a and --domain-b, not paired inputs (data.input, "
                              "data.pairs, data.degrade): use --task paired for those")

    @classmethod
    def load_data(cls, config: RunConfig, progress: bool = True) -> SliceSet:
        """Domain B with domain A in ``other`` (``medgan.data.modalities.load_unpaired``)."""
        domain_a, domain_b, note = load_unpaired(config.data, load_training_slices, progress)
        if note:
            LOG.warning(note)
        return replace(domain_b, other=domain_a)

    @classmethod
    def describe(cls, config: RunConfig) -> str:
        return "CycleGAN (unpaired)"

    @classmethod
    def direction_sources(cls, config: RunConfig, direction: Direction) -> tuple[str, tuple[str, ...]]:
        """``(target source, input sources)`` of ``direction``: a2b maps ``data.domain_a`` to ``data.source``
        (domain B), b2a maps ``data.source`` to the first A modality."""
        if direction is Direction.B2A:
            return config.data.domain_a[0], (config.data.source,)
        return config.data.source, tuple(config.data.domain_a)

    @classmethod
    def evaluate(cls, run_dir: str | Path, request: EvaluationRequest) -> str:
        """One direction (default a2b) against held-out true pairs, with the cycle error through both."""
        from medgan.run import RunDir

        direction = Direction.parse(request.direction, Direction.A2B)
        if request.direction is not None:
            from medgan.inference import load_model

            load_model(run_dir, direction=direction.value)  # a run without that direction refuses in one line
        config = RunDir.existing(run_dir).read_config()
        target, sources = cls.direction_sources(config, direction)
        # b2a of a 2.5D run takes B's slices alone (its output's first channel is the A slice)
        context = config.data.context if direction is Direction.A2B else 0
        return evaluate_modalities(run_dir, request, target, sources, request.direction, context)

    @classmethod
    def showcase(cls, run_dir: str | Path, progress: bool = True) -> list[str]:
        """The held-out evaluation of a2b and how to translate more."""
        table = cls.evaluate(run_dir, EvaluationRequest(out=Path(run_dir) / "evaluation", progress=progress))
        return [table, f"held-out evaluation: {Path(run_dir) / 'evaluation' / 'report.html'}; translate your own "
                       f"images with: medgan translate --run {run_dir} --input IMAGES --out DIR [--direction b2a]"]

    def samplers(self) -> list[BatchSampler]:
        """Domain A's sampler (the loop's draws domain B)."""
        return [self.sampler_a]

    def __init__(self, config: RunConfig, data: SliceSet, device: torch.device, rng: torch.Generator) -> None:
        if data.other is None:
            raise ConfigError("task 'unpaired' needs domain A (data.other): load its data with UnpairedTask.load_data",
                              config.data.source)
        self.config, self.device, self.rng = config, device, rng
        self.options: UnpairedOptions = self.section(config)
        self.data_b, self.data_a = data, data.other
        self.spec = unpaired_spec(data.other, data)
        self.a_domains = input_names(1 + len(data.other.aligned))
        check_context_channels(self.spec, self.a_domains, config.data.context, config.data.source)
        self.optional = optional_domains(self.spec, self.a_domains)
        a_channels = sum(self.spec.domain(name).channels for name in self.a_domains)
        options = self.options
        self.identity = options.identity * options.cycle
        if self.identity > 0 and (a_channels != self.spec.channels or self.optional):
            slabs = f" (data.context {config.data.context}: slabs of {a_channels})" if config.data.context else ""
            raise ConfigError(f"config key '{NAME}.identity': identity needs domains of equal channels, but A has "
                              f"{a_channels} ({' + '.join(self.a_domains)}{slabs}) and B {self.spec.channels}; "
                              f"set {NAME}.identity=0", config.data.source)
        self.score_rule: ScoreRule | None = ScoreRule("fid", lower_is_better=True)
        self.bf16 = use_bf16(config.train.precision, device)
        self.generator_ab = build_translator(config, self.spec, self.a_domains, PRIMARY).to(device)
        self.generator_ba = build_translator(config, self.spec, (PRIMARY,), self.a_domains).to(device)
        width = config.model.discriminator_channels
        self.discriminator_a = DomainDiscriminator(a_channels, width).to(device)
        self.discriminator_b = DomainDiscriminator(self.spec.channels, width).to(device)
        ema, start = config.train.ema, config.train.ema_start
        self.ema_ab = EMA(self.generator_ab, ema, start) if ema > 0 else None
        self.ema_ba = EMA(self.generator_ba, ema, start) if ema > 0 else None
        optim = config.optim
        generators = [*self.generator_ab.parameters(), *self.generator_ba.parameters()]
        discriminators = [*self.discriminator_a.parameters(), *self.discriminator_b.parameters()]
        self.optimizer_g = torch.optim.Adam(generators, lr=optim.lr_generator, betas=optim.betas)
        self.optimizer_d = torch.optim.Adam(discriminators, lr=optim.lr_discriminator, betas=optim.betas)
        self.loss = get_adversarial(config.loss.adversarial)
        self.augment = DiffAugment(config.augment.policy, config.augment.probability)
        self.pool_a = ImagePool(options.pool_size)
        self.pool_b = ImagePool(options.pool_size)
        self.sampler_a = BatchSampler(self.data_a, config.train.batch_size, config.data,
                                      torch.Generator().manual_seed(config.train.seed + 2))
        self.horizon = max(config.train.steps, 1)
        self._grid_a = reference_indices(self.data_a.subjects, GRID_ROWS, GRID_SEED)
        self._grid_b = reference_indices(self.data_b.subjects, GRID_ROWS, GRID_SEED)
        self._eval_a = reference_indices(self.data_a.subjects, EVAL_TILES, EVAL_SEED)
        self._eval_b = reference_indices(self.data_b.subjects, EVAL_TILES, EVAL_SEED + 1)

    # ---------------------------------------------------------------------------------------------------
    # helpers

    def _a_tiles(self, images: torch.Tensor, aligned: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Domain A's modalities by name from a batch (first modality in ``images``)."""
        return {self.a_domains[0]: images, **{name: aligned[name] for name in self.a_domains[1:]}}

    def _split_a(self, stacked: torch.Tensor) -> dict[str, torch.Tensor]:
        """F's stacked output split back into A's modalities."""
        return split_domains(stacked, self.spec, self.a_domains)

    def _g_input(self, tiles: dict[str, torch.Tensor], dropout: bool) -> torch.Tensor:
        """G's input: A's modalities stacked, then availability (dropped modalities zeroed when ``dropout``)."""
        available = None
        if dropout and self.optional:
            count = len(next(iter(tiles.values())))
            available = modality_dropout(count, len(self.optional), self.options.modality_dropout, self.rng)
        return stack_inputs(tiles, self.spec, self.a_domains, self.optional, available)

    def _d(self, discriminator: nn.Module, images: torch.Tensor) -> torch.Tensor:
        return discriminator(self.augment(images, self.rng))

    # ---------------------------------------------------------------------------------------------------
    # the step

    def train_step(self, batch: Batch, step: int) -> dict[str, float]:
        """G phase (adversarial + cycle + identity), D phase (pooled fakes), EMA."""
        optim, options = self.config.optim, self.options
        factor = lr_factor(step, self.horizon, optim.schedule, optim.warmup_steps)
        set_learning_rates((self.optimizer_g, self.optimizer_d), (optim.lr_generator, optim.lr_discriminator), factor)
        batch_a = self.sampler_a.next()
        tiles_a = {name: tile.to(self.device) for name, tile in self._a_tiles(batch_a.images, batch_a.aligned).items()}
        real_a = torch.cat([tiles_a[name] for name in self.a_domains], dim=1)
        real_b = batch.images.to(self.device)
        # G phase: D_A and D_B give gradients to the generators only.
        for discriminator in (self.discriminator_a, self.discriminator_b):
            discriminator.requires_grad_(False)
        with autocast_context(self.device, self.bf16):
            fake_b = self.generator_ab(self._g_input(tiles_a, dropout=True))
            fake_a = self.generator_ba(real_b)
            rec_a = self.generator_ba(fake_b)
            rec_b = self.generator_ab(self._g_input(self._split_a(fake_a), dropout=False))
            adversarial = (self.loss.generator(self._d(self.discriminator_b, fake_b))
                           + self.loss.generator(self._d(self.discriminator_a, fake_a)))
        cycle = cycle_consistency(rec_a, real_a, rec_b, real_b)
        total = options.adversarial_weight * adversarial + options.cycle * cycle
        logs: dict[str, float] = {"lr_factor": factor}
        if self.identity > 0:
            with autocast_context(self.device, self.bf16):
                same_b = self.generator_ab(self._g_input({self.a_domains[0]: real_b}, dropout=False))
                same_a = self.generator_ba(real_a)
            identity = identity_mapping(same_b, real_b, same_a, real_a)
            total = total + self.identity * identity
            logs["loss_identity"] = identity.item()
        self.optimizer_g.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer_g.step()
        for discriminator in (self.discriminator_a, self.discriminator_b):
            discriminator.requires_grad_(True)
        # D phase: real vs a fake from each pool of past generator outputs.
        pooled_a = self.pool_a.query(fake_a.detach().float(), self.rng)
        pooled_b = self.pool_b.query(fake_b.detach().float(), self.rng)
        with autocast_context(self.device, self.bf16):
            loss_d_a = 0.5 * self.loss.discriminator(self._d(self.discriminator_a, real_a),
                                                     self._d(self.discriminator_a, pooled_a))
            loss_d_b = 0.5 * self.loss.discriminator(self._d(self.discriminator_b, real_b),
                                                     self._d(self.discriminator_b, pooled_b))
        self.optimizer_d.zero_grad(set_to_none=True)
        (loss_d_a + loss_d_b).backward()
        self.optimizer_d.step()
        for ema, generator in ((self.ema_ab, self.generator_ab), (self.ema_ba, self.generator_ba)):
            if exists(ema):
                ema.update(generator, step + 1)
        logs.update({"loss_g": adversarial.item(), "loss_cycle": cycle.item(), "loss_d": (loss_d_a + loss_d_b).item(),
                     "loss_d_a": loss_d_a.item(), "loss_d_b": loss_d_b.item()})
        return logs

    # ---------------------------------------------------------------------------------------------------
    # inference

    def inference_generator(self, direction: Direction) -> nn.Module:
        ema, generator = ((self.ema_ab, self.generator_ab) if direction is Direction.A2B
                          else (self.ema_ba, self.generator_ba))
        return ema.module if exists(ema) else generator

    def prepare_inference(self) -> None:
        """Nothing to recompute: the U-Nets use instance norm, which has no running statistics."""

    @torch.no_grad()
    def translate(self, direction: Direction, inputs: torch.Tensor) -> torch.Tensor:
        """The inference G of ``direction`` on stacked inputs (G's input for a2b, B tiles for b2a)."""
        model = self.inference_generator(direction)
        was_training = model.training
        model.eval()
        with autocast_context(self.device, self.bf16):
            output = model(inputs.to(self.device))
        model.train(was_training)
        return output.float().cpu()

    def _fixed(self, indices_a: torch.Tensor, indices_b: torch.Tensor) -> tuple[torch.Tensor, dict, torch.Tensor]:
        """Fixed tiles: stacked A, A by modality, and B."""
        tiles_a = self._a_tiles(self.data_a.images[indices_a],
                                {name: tiles[indices_a] for name, tiles in self.data_a.aligned.items()})
        return torch.cat([tiles_a[n] for n in self.a_domains], dim=1), tiles_a, self.data_b.images[indices_b]

    def grid(self) -> tuple[torch.Tensor, int]:
        """Rows of a | G(a) | F(G(a)) | b | F(b) | G(F(b)) for fixed tiles (first channel of A-side images)."""
        real_a, tiles_a, real_b = self._fixed(self._grid_a, self._grid_b)
        count = min(len(real_a), len(real_b))
        real_a, real_b = real_a[:count], real_b[:count]
        tiles_a = {name: tile[:count] for name, tile in tiles_a.items()}
        fake_b = self.translate(Direction.A2B, self._g_input(tiles_a, dropout=False))
        rec_a = self.translate(Direction.B2A, fake_b)
        fake_a = self.translate(Direction.B2A, real_b)
        rec_b = self.translate(Direction.A2B, self._g_input(self._split_a(fake_a), dropout=False))
        columns = [real_a[:, :1], fake_b[:, :1], rec_a[:, :1], real_b[:, :1], fake_a[:, :1], rec_b[:, :1]]
        return torch.stack(columns, dim=1).flatten(0, 1), len(columns)

    def score(self, scorer: Scorer) -> dict[str, float]:
        """FID (and what else the scorer gives) of G(a) against real B tiles, and both cycle errors (L1)."""
        real_a, tiles_a, real_b = self._fixed(self._eval_a, self._eval_b)
        fake_b = self.translate(Direction.A2B, self._g_input(tiles_a, dropout=False)).clamp(-1, 1)
        fake_a = self.translate(Direction.B2A, real_b).clamp(-1, 1)
        scores = dict(scorer(real_b, fake_b))
        scores["cycle_a"] = float(l1(self.translate(Direction.B2A, fake_b), real_a))
        scores["cycle_b"] = float(l1(self.translate(Direction.A2B, self._g_input(self._split_a(fake_a), False)), real_b))
        return scores

    def inference_state(self) -> dict[str, Any]:
        """Both directions, and which one a loader reads by default (a2b). The weights are not repeated at the top
        level: a bundle stores each tensor once per name, so a copy there tripled its size."""
        a2b = translator_state(self.inference_generator(Direction.A2B), self.a_domains, PRIMARY, self.optional,
                               context=self.config.data.context)
        b2a = translator_state(self.inference_generator(Direction.B2A), (PRIMARY,), self.a_domains)
        return {"kind": a2b["kind"], "directions": {Direction.A2B.value: a2b, Direction.B2A.value: b2a},
                "default": Direction.A2B.value}

    # ---------------------------------------------------------------------------------------------------
    # state

    def modules(self) -> dict[str, nn.Module]:
        modules = {"generator_ab": self.generator_ab, "generator_ba": self.generator_ba,
                   "discriminator_a": self.discriminator_a, "discriminator_b": self.discriminator_b}
        for name, ema in (("ema_ab", self.ema_ab), ("ema_ba", self.ema_ba)):
            if exists(ema):
                modules[name] = ema.module
        return modules

    def state_dict(self) -> dict[str, Any]:
        return {**{name: module.state_dict() for name, module in self.modules().items()},
                "optimizer_g": self.optimizer_g.state_dict(), "optimizer_d": self.optimizer_d.state_dict(),
                "pool_a": self.pool_a.state_dict(), "pool_b": self.pool_b.state_dict(),
                "sampler_a": self.sampler_a.state_dict(), "rng": self.rng.get_state()}

    def load_state_dict(self, state: dict[str, Any], path: str) -> None:
        for name, module in self.modules().items():
            load_module_state(module, state.get(name), path, name.replace("_", " "))
        try:
            self.optimizer_g.load_state_dict(state["optimizer_g"])
            self.optimizer_d.load_state_dict(state["optimizer_d"])
            self.pool_a.load_state_dict(state["pool_a"])
            self.pool_b.load_state_dict(state["pool_b"])
            self.sampler_a.load_state_dict(state["sampler_a"])
            self.rng.set_state(state["rng"])
        except STATE_ERRORS as error:
            raise CheckpointError(f"task state does not fit this run ({type(error).__name__}: {error})",
                                  path) from None


def unpaired_spec(domain_a: SliceSet, domain_b: SliceSet) -> DataSpec:
    """The run's spec: B as the primary domain ``"image"``, then A's modalities ``"input"``, ``"input2"``, ..."""
    names = input_names(1 + len(domain_a.aligned))
    tensors = [domain_a.images, *domain_a.aligned.values()]
    mappings = [domain_a.mapping, *(domain_a.mappings[name] for name in domain_a.aligned)]
    domains = [DomainSpec(PRIMARY, int(domain_b.images.shape[1]), domain_b.mapping)]
    domains += [DomainSpec(name, int(tensor.shape[1]), mapping) for name, tensor, mapping in zip(names, tensors, mappings)]
    return DataSpec(resolution=int(domain_b.images.shape[-1]), spacing=tuple(float(v) for v in domain_b.spacing),
                    domains=tuple(domains), images=len(domain_a) + len(domain_b),
                    subjects=len(set(domain_a.subjects) | set(domain_b.subjects)))
