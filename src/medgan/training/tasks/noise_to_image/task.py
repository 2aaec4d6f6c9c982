"""Noise-to-image GAN tasks: unconditional and class-conditional.

Phases per step, in StyleGAN2-ADA's order:
  D main: minimize the adversarial D loss on (augmented real, augmented fake) logits;
  D reg:  every ``r1_interval`` D steps, add gamma/2 * interval * R1 (lazy regularization), or WGAN-GP;
  G main: minimize the adversarial G loss on D(augment(G(z))); then update the generator EMA.

Conditional tasks may add AC-GAN's auxiliary classification (``model.auxiliary_classifier``): D's class head
learns the classes of real images, and G is also trained to make its samples classified as the requested class.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from medgan.config import RunConfig
from medgan.data import SliceSet
from medgan.data.spec import DataSpec, spec_of
from medgan.errors import CheckpointError, ConfigError
from medgan.inference.noise import KIND, generator_state
from medgan.losses import get_adversarial
from medgan.losses.diversity import mode_seeking_ratio
from medgan.losses.penalties import gradient_penalty, r1_penalty
from medgan.losses.spectral import spectral_matching
from medgan.networks import DISCRIMINATORS, GENERATORS, build_discriminator, build_generator
from medgan.training.batches import reference_indices
from medgan.training.augment import POLICIES, AdaptiveProbability, DiffAugment
from medgan.training.ema import EMA, standing_statistics
from medgan.training.precision import autocast_context, use_bf16
from medgan.training.privacy import DiscriminatorPrivacy
from medgan.training.private_settings import check_private_config, is_private
from medgan.training.schedule import annealed, lr_factor, set_learning_rates
from medgan.training.tasks.base import Batch, Capabilities, ScoreRule, Scorer, TaskBase
from medgan.training.tasks.gan_state import STATE_ERRORS, GanState
from medgan.training.tasks.noise_to_image.config import NoiseOptions, check_noise_options
from medgan.training.tasks.noise_to_image.volumes import GRID_VOLUMES, check_volume_config, mid_planes, plane_views
from medgan.utils import exists

GRID_SIZE = 64  # images in each sample grid (8 x 8)
GRID_SEED = 1234  # fixed noise of the sample grids
EVAL_IMAGES = 256  # synthetic (and reference) images per in-training evaluation
EVAL_SEED = 99  # noise of the in-training evaluation and the choice of reference images
STANDING_SEED = 4321  # noise of the BatchNorm standing statistics


class NoiseToImageTask(GanState, TaskBase):
    """G(z[, y][, a]) vs D(x[, y][, a]) with the configured loss, regularizers, augmentation and EMA.

    Args:
        config: the resolved run config.
        data: the training data (classes and attributes come from it).
        device: where the networks live.
        rng: the task's generator for noise and augmentation (its state is checkpointed).
        conditional: condition G and D on the data's classes (projection discriminator) and attributes.
    """

    default_recipe = "medgan"
    inference_kind = KIND
    Options = NoiseOptions
    capabilities = Capabilities(private=True, volumes=True)

    @classmethod
    def check_options(cls, options: NoiseOptions, config: RunConfig) -> None:
        check_noise_options(options, cls.name, config.data.resolution)
        check_volume_config(config, options.spectral, cls.name)

    @classmethod
    def check_config(cls, config: RunConfig) -> None:
        """Its section, and the registered names it uses (networks, loss, augmentation), before anything runs."""
        super().check_config(config)
        GENERATORS.get(config.model.name)
        DISCRIMINATORS.get(config.model.name)
        get_adversarial(config.loss.adversarial)
        for name in config.augment.policy:
            POLICIES.get(name)
        check_private_config(config)

    def __init__(self, config: RunConfig, data: SliceSet, device: torch.device, rng: torch.Generator,
                 conditional: bool = False) -> None:
        if conditional and not exists(data.labels):
            raise ConfigError("task 'conditional' needs labelled data (a labels CSV, a labelled layout or source)",
                              config.data.source)
        if not conditional and config.model.auxiliary_classifier:
            raise ConfigError("config key 'model.auxiliary_classifier' needs task: conditional (it predicts class "
                              "labels)")
        self.config = config
        self.options: NoiseOptions = self.section(config)
        self.device = device
        self.rng = rng
        self.conditional = conditional
        self.spec = spec_of(data, attributes=conditional)
        if not conditional:
            self.spec = _without_classes(self.spec)
        self.data = data
        self.attributes = self.spec.standardize(data.attributes) if self.spec.num_attributes else None
        self.groups_by_class = conditional
        self.nearest_domains: frozenset[str] = frozenset()
        self.score_rule: ScoreRule | None = ScoreRule("fid", lower_is_better=True)
        self.auxiliary_weight = getattr(self.options, "auxiliary", 0.0)
        self.auxiliary = conditional and config.model.auxiliary_classifier and self.auxiliary_weight > 0
        optim = config.optim
        self.bf16 = use_bf16(config.train.precision, device)
        self.volumes = self.spec.dims == 3  # cubes [N, C, D, H, W] (medgan.data.cubes)
        last = torch.channels_last_3d if self.volumes else torch.channels_last  # 3D: 30-40% faster steps on CPU
        self.memory_format = last if config.train.channels_last else torch.contiguous_format
        shape = (config.model, self.spec.resolution, self.spec.channels, self.spec.num_classes,
                 self.spec.num_attributes, self.spec.dims)
        self.generator = build_generator(*shape).to(device, memory_format=self.memory_format)
        self.discriminator = build_discriminator(*shape).to(device, memory_format=self.memory_format)
        self.ema = EMA(self.generator, config.train.ema, config.train.ema_start) if config.train.ema > 0 else None
        self.optimizer_g = torch.optim.Adam(self.generator.parameters(), lr=optim.lr_generator, betas=optim.betas)
        self.optimizer_d = torch.optim.Adam(self.discriminator.parameters(), lr=optim.lr_discriminator,
                                            betas=optim.betas)
        self.loss = get_adversarial(config.loss.adversarial)
        self.privacy = None  # DP-SGD on D (medgan.training.privacy)
        if is_private(config):
            self.privacy = DiscriminatorPrivacy(config, data, self.discriminator, self.attributes)
            self.score_rule = None  # no in-training score: choosing best.pt by real images would leak
        self.augment = DiffAugment(config.augment.policy, config.augment.probability)
        self.ada = None
        if config.augment.adaptive:
            self.ada = AdaptiveProbability(target=config.augment.ada_target, probability=0.0)
            self.augment.probability = 0.0
        self.horizon = max(config.train.steps, 1)
        self.d_steps_done = 0
        self.steps_done = 0
        self._pending_fake: tuple[torch.Tensor, torch.Tensor] | None = None  # (fakes, noise) of the last D step
        self._grid_noise = torch.randn(GRID_SIZE, config.model.latent_dim,
                                       generator=torch.Generator().manual_seed(GRID_SEED))
        self._grid_conditions = self._conditions(GRID_SIZE, torch.Generator().manual_seed(GRID_SEED + 1))

    # ---------------------------------------------------------------------------------------------------
    # helpers

    def noise(self, count: int) -> torch.Tensor:
        """z ~ N(0, I): [count, latent_dim] drawn from the task's RNG."""
        return torch.randn(count, self.config.model.latent_dim, generator=self.rng).to(self.device)

    def _labels(self, batch: Batch) -> torch.Tensor | None:
        return batch.labels.to(self.device) if self.conditional else None

    def _attributes(self, batch: Batch) -> torch.Tensor | None:
        if not self.spec.num_attributes:
            return None
        return batch.attributes.to(self.device)

    def _noisy(self, images: torch.Tensor) -> torch.Tensor:
        """Instance noise: Gaussian noise on D's inputs, its std annealed linearly to 0 over the horizon."""
        sigma = annealed(self.config.loss.instance_noise, self.steps_done, self.horizon)
        if sigma <= 0:
            return images
        return images + sigma * torch.randn(images.shape, generator=self.rng).to(images)

    def _discriminate(self, images: torch.Tensor, labels: torch.Tensor | None, attributes: torch.Tensor | None,
                      classes: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """D's logits on augmented (and instance-noised) images; with ``classes`` also its class logits."""
        images = self.discriminator_inputs(images)
        if classes:
            return self.discriminator(images, labels, attributes, return_classes=True)
        return self.discriminator(images, labels, attributes)

    def discriminator_inputs(self, images: torch.Tensor) -> torch.Tensor:
        """What D sees of ``images``: augmented and instance-noised, in the training memory format."""
        return self._noisy(self.augment(images, self.rng)).contiguous(memory_format=self.memory_format)

    def _clip(self, module: nn.Module) -> None:
        if self.config.optim.grad_clip > 0:
            nn.utils.clip_grad_norm_(module.parameters(), self.config.optim.grad_clip)

    def _conditions(self, count: int, rng: torch.Generator) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Balanced class labels for ``count`` samples and, with attributes, the standardized attributes of a
        random real image of each sample's class."""
        if not self.conditional:
            return None, None
        labels = torch.arange(count) % self.spec.num_classes
        if self.attributes is None:
            return labels, None
        rows = []
        for label in labels.tolist():
            members = torch.nonzero(self.data.labels == label)[:, 0]
            rows.append(members[torch.randint(0, len(members), (1,), generator=rng)][0])
        return labels, self.attributes[torch.stack(rows)]

    # ---------------------------------------------------------------------------------------------------
    # the step

    def train_step(self, batch: Batch, step: int) -> dict[str, float]:
        """D main (+ D reg) ``optim.d_steps`` times, then G main and the EMA update.

        The learning rate for this step is set before any update, so warm-up starts at 1/warmup of the rate.
        """
        optim = self.config.optim
        factor = lr_factor(step, self.horizon, optim.schedule, optim.warmup_steps)
        set_learning_rates((self.optimizer_g, self.optimizer_d), (optim.lr_generator, optim.lr_discriminator), factor)
        logs: dict[str, float] = {"lr_factor": factor}
        if exists(self.privacy):  # G's step then gets fake conditions only (uniform classes), never real labels
            d_logs, batch, self._pending_fake = self.privacy.discriminator_step(self, batch)
            logs.update(d_logs)
        else:
            for _ in range(optim.d_steps):
                logs.update(self.discriminator_step(batch))
        logs.update(self.generator_step(batch))
        self.steps_done = step + 1
        if exists(self.ema):
            self.ema.update(self.generator, self.steps_done)
        return logs

    def discriminator_step(self, batch: Batch) -> dict[str, float]:
        """D main (+ D reg): minimize L_D on real vs fake logits, plus lazy R1 or WGAN-GP.

        On the last D step of an iteration the fakes are generated with their graph kept, and the G step
        reuses them (as the classic DCGAN loop does): one generator forward per iteration instead of two.
        """
        labels, attributes = self._labels(batch), self._attributes(batch)
        real = batch.images.to(self.device, memory_format=self.memory_format)
        loss_config = self.config.loss
        apply_r1 = loss_config.r1_gamma > 0 and self.d_steps_done % loss_config.r1_interval == 0
        last_d_step = (self.d_steps_done + 1) % self.config.optim.d_steps == 0
        with autocast_context(self.device, self.bf16):
            noise = self.noise(real.shape[0])
            with torch.set_grad_enabled(last_d_step):
                fake = self.generator(noise, labels, attributes)
            self._pending_fake = (fake, noise) if last_d_step else None
            fake = fake.detach()
            if apply_r1:
                real = real.detach().requires_grad_(True)
            if self.auxiliary:
                real_logits, real_classes = self._discriminate(real, labels, attributes, classes=True)
            else:
                real_logits = self._discriminate(real, labels, attributes)
            fake_logits = self._discriminate(fake, labels, attributes)
            loss = self.loss.discriminator(real_logits, fake_logits)
        logs = {"loss_d": loss.item(), "logit_real": real_logits.float().mean().item(),
                "logit_fake": fake_logits.float().mean().item()}
        total = loss
        if self.auxiliary:
            # The class head learns from real images only: early fakes of the wrong look must not teach it.
            classification = F.cross_entropy(real_classes.float(), labels)
            total = total + self.auxiliary_weight * classification
            logs["ac_real"] = classification.item()
        if apply_r1:
            penalty = r1_penalty(real, real_logits)
            total = total + 0.5 * loss_config.r1_gamma * loss_config.r1_interval * penalty
            logs["r1"] = penalty.item()
        if loss_config.gradient_penalty > 0:
            with autocast_context(self.device, self.bf16):
                penalty = gradient_penalty(lambda x: self._discriminate(x, labels, attributes), real.detach(), fake,
                                           self.rng)
            total = total + loss_config.gradient_penalty * penalty
            logs["gp"] = penalty.item()
        self.optimizer_d.zero_grad(set_to_none=True)
        total.backward()
        self._clip(self.discriminator)
        self.optimizer_d.step()
        if isinstance(self.ada, AdaptiveProbability):
            self.augment.probability = self.ada.update(real_logits)
            logs["ada_p"] = self.augment.probability
        self.d_steps_done += 1
        return logs

    def generator_step(self, batch: Batch) -> dict[str, float]:
        """G main: minimize L_G on D's logits for the fakes (through D, whose weights get no gradient)."""
        labels, attributes = self._labels(batch), self._attributes(batch)
        # D's weight gradients are not needed here: freezing them skips a third of D's backward pass.
        self.discriminator.requires_grad_(False)
        with autocast_context(self.device, self.bf16):
            if self._pending_fake is None:
                noise = self.noise(batch.images.shape[0])
                fake = self.generator(noise, labels, attributes)
            else:
                fake, noise = self._pending_fake
            if self.auxiliary:
                fake_logits, fake_classes = self._discriminate(fake, labels, attributes, classes=True)
            else:
                fake_logits = self._discriminate(fake, labels, attributes)
            loss = self.loss.generator(fake_logits)
        self._pending_fake = None
        logs = {"loss_g": loss.item()}
        total = loss
        if self.auxiliary:
            classification = F.cross_entropy(fake_classes.float(), labels)
            total = total + self.auxiliary_weight * classification
            logs["ac_fake"] = classification.item()
        if self.options.mode_seeking > 0:
            pool = self.options.mode_seeking_pool
            pooling = F.avg_pool3d if self.volumes else F.avg_pool2d
            ratio = mode_seeking_ratio(pooling(fake.float(), pool) if pool > 1 else fake.float(), noise, labels)
            if ratio is not None:
                total = total + self.options.mode_seeking / (ratio + 1e-5)
                logs["mode_seeking_ratio"] = ratio.item()
        if self.options.spectral > 0:  # never under DP (check_private_config): it reads real images
            term = spectral_matching(fake, batch.images.to(self.device), self.options.spectral_from)
            total = total + self.options.spectral * term
            logs["spectral"] = term.item()
        self.optimizer_g.zero_grad(set_to_none=True)
        total.backward()
        self.discriminator.requires_grad_(True)
        self._clip(self.generator)
        self.optimizer_g.step()
        return logs

    # ---------------------------------------------------------------------------------------------------
    # inference

    @property
    def inference_generator(self) -> nn.Module:
        """The generator used for samples: the EMA copy when EMA is on."""
        return self.ema.module if exists(self.ema) else self.generator

    def prepare_inference(self) -> None:
        """Recomputes BatchNorm standing statistics of the inference generator over fixed-seed noise."""
        rng = torch.Generator().manual_seed(STANDING_SEED)
        size = self.config.train.batch_size
        model = self.inference_generator

        def forward() -> None:
            z = torch.randn(size, self.config.model.latent_dim, generator=rng).to(self.device)
            labels, attributes = None, None
            if self.conditional:
                labels = torch.randint(0, self.spec.num_classes, (size,), generator=rng).to(self.device)
            if self.spec.num_attributes:  # standardized: N(0, 1) stands in for the data
                attributes = torch.randn(size, self.spec.num_attributes, generator=rng).to(self.device)
            with autocast_context(self.device, self.bf16):
                model(z, labels, attributes)

        standing_statistics(model, forward)

    @torch.no_grad()
    def sample(self, noise: torch.Tensor, labels: torch.Tensor | None = None,
               attributes: torch.Tensor | None = None) -> torch.Tensor:
        """Images [N, C, R, R] in [-1, 1] (float32) from the inference generator in eval mode."""
        model = self.inference_generator
        was_training = model.training
        model.eval()
        labels = labels.to(self.device) if exists(labels) else None
        attributes = attributes.to(self.device) if exists(attributes) else None
        with autocast_context(self.device, self.bf16):
            images = model(noise.to(self.device), labels, attributes)
        model.train(was_training)
        return images.float().contiguous().cpu()

    def grid(self) -> tuple[torch.Tensor, int]:
        """Samples for the fixed grid noise (and balanced classes), 8 columns; volumes: a row per volume of its
        three mid-planes, two volumes per row."""
        if self.volumes:
            labels, attributes = (None if c is None else c[:GRID_VOLUMES] for c in self._grid_conditions)
            return mid_planes(self.sample(self._grid_noise[:GRID_VOLUMES], labels, attributes)), 6
        return self.sample(self._grid_noise, *self._grid_conditions), 8

    def score(self, scorer: Scorer) -> dict[str, float]:
        """``scorer`` on EVAL_IMAGES samples against a seeded sample of real images spread across subjects."""
        count = min(EVAL_IMAGES, len(self.data))
        reference = self.data.images[reference_indices(self.data.subjects, count, EVAL_SEED)]
        rng = torch.Generator().manual_seed(EVAL_SEED)
        z = torch.randn(count, self.config.model.latent_dim, generator=rng)
        fake = self.sample(z, *self._conditions(count, rng))
        if self.volumes:  # 2D views through the three planes: the scorer's features are 2D
            return scorer(plane_views(torch.as_tensor(reference)), plane_views(fake))
        return scorer(reference, fake)

    def inference_state(self) -> dict[str, Any]:
        return generator_state(self.inference_generator)

    # ---------------------------------------------------------------------------------------------------
    # state

    def state_dict(self) -> dict[str, Any]:
        """Weights, optimizer states, step counters, ADA state and the task RNG state."""
        state = {**self.gan_state_dict(), "d_steps_done": self.d_steps_done, "steps_done": self.steps_done,
                 "augment_probability": self.augment.probability}
        if isinstance(self.ada, AdaptiveProbability):
            state["ada"] = {"probability": self.ada.probability}
        if exists(self.privacy):
            state["privacy"] = self.privacy.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any], path: str) -> None:
        """Restores :meth:`state_dict`; mismatched weights or fields raise CheckpointError naming ``path``."""
        self.load_gan_state(state, path)
        try:
            self.d_steps_done = int(state["d_steps_done"])
            self.steps_done = int(state["steps_done"])
            self.augment.probability = float(state["augment_probability"])
            if isinstance(self.ada, AdaptiveProbability) and "ada" in state:
                self.ada.probability = float(state["ada"]["probability"])
            if exists(self.privacy):
                self.privacy.load_state_dict(state["privacy"])
        except STATE_ERRORS as error:
            raise CheckpointError(f"task state does not fit this run ({type(error).__name__}: {error})",
                                  path) from None


def _without_classes(spec: DataSpec) -> DataSpec:
    """A spec with class names dropped (an unconditional task ignores labels)."""
    return replace(spec, class_names=())
