"""Noise-to-image GAN tasks: unconditional and class-conditional.

Phases per step, in StyleGAN2-ADA's order:
  D main: minimize the adversarial D loss on (augmented real, augmented fake) logits;
  D reg:  every ``r1_interval`` D steps, add gamma/2 * interval * R1 (lazy regularization), or WGAN-GP;
  G main: minimize the adversarial G loss on D(augment(G(z))); then update the generator EMA.

Conditional tasks may add AC-GAN's auxiliary classification (``model.auxiliary_classifier``): D's class head
learns the classes of real images, and G is also trained to make its samples classified as the requested class.
"""

from __future__ import annotations

import contextlib
import copy
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from medgan.augment import AdaptiveProbability, DiffAugment
from medgan.config import RunConfig
from medgan.losses import get_adversarial
from medgan.losses.penalties import gradient_penalty, r1_penalty
from medgan.networks import build_networks
from medgan.training.checkpoint import load_module_state
from medgan.training.tasks.base import TASKS, Batch
from medgan.utils import exists


def autocast_context(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on the given device when enabled, else a no-op context."""
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def cpu_has_fast_bf16() -> bool:
    """True when the CPU has native bf16 arithmetic (AVX512-BF16 or AMX), where oneDNN's bf16 kernels win.

    Measured on an AVX2-only EPYC: a bf16 2048^2 matmul ran at 0.14 GFLOP/s against 88 GFLOP/s in fp32,
    and a bf16 training step was 5-20x slower, so bf16 must never be switched on blindly on a CPU.
    """
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def use_bf16(precision: str, device: torch.device) -> bool:
    """Whether to train under bf16 autocast: "bf16" forces it, "fp32" disables it, "auto" uses it where the
    hardware runs it natively (CUDA with bf16 support, CPUs with AVX512-BF16/AMX)."""
    if precision == "auto":
        if device.type == "cuda":
            return torch.cuda.is_bf16_supported()
        return cpu_has_fast_bf16()
    return precision == "bf16"


def lr_factor(step: int, total: int, schedule: str, warmup: int) -> float:
    """Learning-rate multiplier at ``step``: linear warm-up, then constant, linear decay or cosine decay."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    progress = min(max(step - warmup, 0) / max(total - warmup, 1), 1.0)
    if schedule == "linear":
        return 1.0 - progress
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0


def mode_seeking_ratio(fake: torch.Tensor, noise: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor | None:
    """MSGAN's ratio (Mao et al. 2019): mean |G(z1) - G(z2)| / mean |z1 - z2| over same-class pairs.

    Pairs are images i and i + N/2 of the batch (the conditional batch sampler lays batches out so that they
    share a class; other pairs are ignored). The G loss adds ``weight / ratio``: a conditional generator that
    maps all noise of a class to one image (a known failure on small data) makes the ratio vanish.

    Returns:
        The mean ratio over same-class pairs, or None when the batch has none.
    """
    half = fake.shape[0] // 2
    if half == 0:
        return None
    same = torch.ones(half, dtype=torch.bool, device=fake.device)
    if labels is not None:
        same = labels[:half] == labels[half : 2 * half]
    if not bool(same.any()):
        return None
    image_distance = (fake[:half] - fake[half : 2 * half]).abs().flatten(1).mean(1)
    noise_distance = (noise[:half] - noise[half : 2 * half]).abs().mean(1)
    return (image_distance / noise_distance)[same].mean()


class AdversarialTask:
    """G(z[, y]) vs D(x[, y]) with the configured loss, regularizers, augmentation and EMA.

    Args:
        config: the resolved run config.
        channels: image channels.
        device: where the networks live.
        rng: the task's generator for noise and augmentation (its state is checkpointed).
        conditional: pass class labels to G and D (projection discriminator).
    """

    def __init__(self, config: RunConfig, channels: int, device: torch.device, rng: torch.Generator,
                 conditional: bool = False) -> None:
        self.config = config
        self.device = device
        self.rng = rng
        self.conditional = conditional
        self.auxiliary = conditional and config.model.auxiliary_classifier and config.loss.auxiliary > 0
        train, optim = config.train, config.optim
        self.bf16 = use_bf16(config.train.precision, device)
        self.memory_format = torch.channels_last if train.channels_last else torch.contiguous_format
        generator, discriminator = build_networks(config.model, config.data.resolution, channels)
        self.generator = generator.to(device, memory_format=self.memory_format)
        self.discriminator = discriminator.to(device, memory_format=self.memory_format)
        self.ema = copy.deepcopy(self.generator).eval().requires_grad_(False) if train.ema > 0 else None
        self.optimizer_g = torch.optim.Adam(self.generator.parameters(), lr=optim.lr_generator, betas=optim.betas)
        self.optimizer_d = torch.optim.Adam(self.discriminator.parameters(), lr=optim.lr_discriminator,
                                            betas=optim.betas)
        self.loss = get_adversarial(config.loss.adversarial)
        self.augment = DiffAugment(config.augment.policy, config.augment.probability)
        self.ada = None
        if config.augment.adaptive:
            self.ada = AdaptiveProbability(target=config.augment.ada_target, probability=0.0)
            self.augment.probability = 0.0
        self.d_steps_done = 0
        self.steps_done = 0
        self._pending_fake: tuple[torch.Tensor, torch.Tensor] | None = None  # (fakes, noise) of the last D step

    # ---------------------------------------------------------------------------------------------------
    # helpers

    def noise(self, count: int) -> torch.Tensor:
        """z ~ N(0, I): [count, latent_dim] drawn from the task's RNG."""
        return torch.randn(count, self.config.model.latent_dim, generator=self.rng).to(self.device)

    def _labels(self, batch: Batch) -> torch.Tensor | None:
        return batch.labels.to(self.device) if self.conditional else None

    def _attributes(self, batch: Batch) -> torch.Tensor | None:
        if not self.conditional or self.config.model.num_attributes == 0:
            return None
        return batch.attributes.to(self.device)

    def _noisy(self, images: torch.Tensor) -> torch.Tensor:
        """Instance noise: Gaussian noise on D's inputs, its std annealed linearly to 0 over training."""
        sigma = self.config.loss.instance_noise * max(0.0, 1.0 - self.steps_done / self.config.train.steps)
        if sigma <= 0:
            return images
        return images + sigma * torch.randn(images.shape, generator=self.rng).to(images)

    def _discriminate(self, images: torch.Tensor, labels: torch.Tensor | None, attributes: torch.Tensor | None,
                      classes: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """D's logits on augmented (and instance-noised) images; with ``classes`` also its class logits."""
        images = self._noisy(self.augment(images, self.rng)).contiguous(memory_format=self.memory_format)
        if classes:
            return self.discriminator(images, labels, attributes, return_classes=True)
        return self.discriminator(images, labels, attributes)

    def _clip(self, module: nn.Module) -> None:
        if self.config.optim.grad_clip > 0:
            nn.utils.clip_grad_norm_(module.parameters(), self.config.optim.grad_clip)

    # ---------------------------------------------------------------------------------------------------
    # phases

    def discriminator_step(self, batch: Batch, step: int) -> dict[str, float]:
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
            total = total + self.config.loss.auxiliary * classification
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

    def generator_step(self, batch: Batch, step: int) -> dict[str, float]:
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
            total = total + self.config.loss.auxiliary * classification
            logs["ac_fake"] = classification.item()
        if self.conditional and self.config.loss.mode_seeking > 0:
            ratio = mode_seeking_ratio(fake.float(), noise, labels)
            if ratio is not None:
                total = total + self.config.loss.mode_seeking / (ratio + 1e-5)
                logs["mode_seeking_ratio"] = ratio.item()
        self.optimizer_g.zero_grad(set_to_none=True)
        total.backward()
        self.discriminator.requires_grad_(True)
        self._clip(self.generator)
        self.optimizer_g.step()
        self._update_ema()
        return logs

    def end_step(self, step: int) -> None:
        """Advances the LR schedule (both optimizers) after a finished step."""
        self.steps_done = step + 1
        optim = self.config.optim
        factor = lr_factor(self.steps_done, self.config.train.steps, optim.schedule, optim.warmup_steps)
        for optimizer, base in ((self.optimizer_g, optim.lr_generator), (self.optimizer_d, optim.lr_discriminator)):
            for group in optimizer.param_groups:
                group["lr"] = base * factor

    @torch.no_grad()
    def _update_ema(self) -> None:
        """ema <- decay * ema + (1 - decay) * G, with the decay ramped up as ``min(ema, (1 + t) / (10 + t))``.

        t counts steps after ``ema_start`` (before it the EMA is a plain copy). The ramp keeps the average's
        horizon (about 1 / (1 - decay) steps) short early on: short CPU runs of a few thousand steps would
        otherwise average mostly untrained weights (the same reason as StyleGAN2's EMA ramp-up).
        """
        if not exists(self.ema):
            return
        since = self.steps_done - self.config.train.ema_start
        decay = 0.0 if since < 0 else min(self.config.train.ema, (1.0 + since) / (10.0 + since))
        for ema_param, param in zip(self.ema.parameters(), self.generator.parameters()):
            ema_param.lerp_(param, 1.0 - decay)
        for ema_buffer, buffer in zip(self.ema.buffers(), self.generator.buffers()):
            ema_buffer.copy_(buffer)

    # ---------------------------------------------------------------------------------------------------
    # inference

    @property
    def inference_generator(self) -> nn.Module:
        """The generator used for samples: the EMA copy when EMA is on."""
        return self.ema if exists(self.ema) else self.generator

    @torch.no_grad()
    def prepare_inference(self, noise_generator: torch.Generator, batches: int = 8) -> None:
        """Recomputes BatchNorm running statistics of the inference generator ("standing statistics").

        EMA weights never ran forward during training, so BatchNorm statistics copied from G do not match
        them; averaging batch statistics over a few noise batches (BigGAN's standing stats) fixes that and
        makes eval-mode samples independent of batch composition.
        """
        model = self.inference_generator
        norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if not norms:
            return
        saved = [m.momentum for m in norms]
        was_training = model.training
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the passes below
        model.train()
        size = self.config.train.batch_size
        num_classes = self.config.model.num_classes
        for _ in range(batches):
            z = torch.randn(size, self.config.model.latent_dim, generator=noise_generator).to(self.device)
            labels, attributes = None, None
            if self.conditional:
                labels = torch.randint(0, num_classes, (size,), generator=noise_generator).to(self.device)
            if self.conditional and self.config.model.num_attributes:  # standardized: N(0, 1) stands in for data
                attributes = torch.randn(size, self.config.model.num_attributes, generator=noise_generator)
                attributes = attributes.to(self.device)
            with autocast_context(self.device, self.bf16):
                model(z, labels, attributes)
        for m, momentum in zip(norms, saved):
            m.momentum = momentum
        model.train(was_training)  # without EMA this is the training generator: it must stay in train mode

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
        return images.float().contiguous()

    # ---------------------------------------------------------------------------------------------------
    # state

    def state_dict(self) -> dict[str, Any]:
        """Weights, optimizer states, step counters, ADA state and the task RNG state."""
        state = {
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "optimizer_g": self.optimizer_g.state_dict(),
            "optimizer_d": self.optimizer_d.state_dict(),
            "d_steps_done": self.d_steps_done,
            "steps_done": self.steps_done,
            "augment_probability": self.augment.probability,
            "rng": self.rng.get_state(),
        }
        if exists(self.ema):
            state["ema"] = self.ema.state_dict()
        if isinstance(self.ada, AdaptiveProbability):
            state["ada"] = {"probability": self.ada.probability}
        return state

    def load_state_dict(self, state: dict[str, Any], path: str) -> None:
        """Restores :meth:`state_dict`; mismatched weights raise CheckpointError naming ``path``."""
        load_module_state(self.generator, state["generator"], path, "generator")
        load_module_state(self.discriminator, state["discriminator"], path, "discriminator")
        if exists(self.ema):
            load_module_state(self.ema, state.get("ema", state["generator"]), path, "EMA generator")
        self.optimizer_g.load_state_dict(state["optimizer_g"])
        self.optimizer_d.load_state_dict(state["optimizer_d"])
        self.d_steps_done = int(state["d_steps_done"])
        self.steps_done = int(state["steps_done"])
        self.augment.probability = float(state["augment_probability"])
        if isinstance(self.ada, AdaptiveProbability) and "ada" in state:
            self.ada.probability = float(state["ada"]["probability"])
        self.rng.set_state(state["rng"])


@TASKS.register("unconditional")
def unconditional_task(config: RunConfig, channels: int, device: torch.device, rng: torch.Generator) -> AdversarialTask:
    """G(z) -> image; D(image) -> logit."""
    return AdversarialTask(config, channels, device, rng, conditional=False)


@TASKS.register("conditional")
def conditional_task(config: RunConfig, channels: int, device: torch.device, rng: torch.Generator) -> AdversarialTask:
    """G(z, class) -> image; D(image, class) -> logit with a projection term."""
    return AdversarialTask(config, channels, device, rng, conditional=True)
