"""Differentially private training of the discriminator (DP-SGD), with the patient as the privacy unit.

Only D sees real images, so only D's updates need a DP mechanism; G learns from D's weights and from noise,
which is post-processing. The mechanism (also written into the log and into ``checkpoint["privacy"]``):

* **Poisson sampling of units.** Every D step, each privacy unit joins the batch independently with
  probability ``q = expected units per batch / number of units`` (``train.batch_size`` units expected, at most
  all of them). With ``privacy.unit: subject`` the unit is a patient, and a sampled patient contributes one of
  its slices, drawn uniformly: every unit adds at most one per-sample gradient per step, so per-sample
  clipping *is* per-patient clipping. With ``unit: slice`` each slice is a unit; a patient with k slices is
  then only protected at about k times epsilon (group privacy), so slice-level epsilon understates the
  patient-level risk.
* **The real half of D's loss** (the adversarial term on real images, plus the AC-GAN class term on them):
  per-sample gradients with ``torch.func`` (vmap of grad over ``functional_call``). Opacus's GradSampleModule
  is not used because its layer hooks cannot see weights behind ``nn.utils.parametrizations.spectral_norm``
  (the trainable tensor lives in the parametrization, not in the Conv2d); torch.func differentiates through it
  exactly. Each unit's gradient is clipped to L2 norm ``C = privacy.max_grad_norm``. The clipped gradients are
  summed, Gaussian noise ``N(0, sigma^2 C^2 I)`` is added, and the sum is divided by the expected batch size.
* **The fake half of D's loss** is computed from D's and G's current weights (already outputs of the
  mechanism) and fresh noise, with class labels drawn uniformly (never taken from a real batch). It is
  post-processing, so its gradient is added without clipping or noise, and the whole clipping bound is spent
  on the real images. (Opacus's DP-GAN example instead clips the sum of one real and one fake sample's
  gradients; that is also valid, but it shares C between real and fake.)
* **Accounting**: Opacus's RDP accountant for the Poisson-subsampled Gaussian mechanism, one step per D
  update. With a target epsilon, sigma is solved for the planned steps with Opacus's ``get_noise_multiplier``,
  and training stops before a step would take epsilon past the target.

Covered by the guarantee: D, G, the EMA generator and everything sampled from them. Not covered: the run's
training log (``loss_d``, ``logit_real`` are statistics of real batches), the data spec (class names, the
intensity mapping). A DP run does no in-training scoring against real images, so ``best.pt`` is the final
checkpoint and is not chosen by looking at real data. Noise comes from a seeded torch generator (checkpointed,
so a resume continues exactly), not a cryptographically secure one (Opacus's ``secure_mode`` off).
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from medgan.config import RunConfig
from medgan.data import SliceSet
from medgan.data.transforms import aligned_augment, flips
from medgan.errors import ConfigError
from medgan.training.accounting import ACCOUNTANT, automatic_delta, epsilon_spent, solve_noise
from medgan.training.batches import PRIMARY, Batch
from medgan.training.precision import autocast_context

MECHANISMS = {
    "subject": "DP-SGD on D: Poisson-sampled subjects (probability q per step), one uniformly drawn slice per "
               "sampled subject, per-subject clipping of D's real-image gradient to max_grad_norm, Gaussian noise "
               "noise_multiplier * max_grad_norm on the sum; D's fake-image gradient and G are post-processing",
    "slice": "DP-SGD on D: Poisson-sampled slices (probability q per step), per-slice clipping of D's real-image "
             "gradient to max_grad_norm, Gaussian noise noise_multiplier * max_grad_norm on the sum; D's "
             "fake-image gradient and G are post-processing. Slice-level: a patient with k slices is protected "
             "only at about k x epsilon",
}


def privacy_section(privacy: "DiscriminatorPrivacy | None") -> dict[str, Any]:
    """``{"privacy": record}`` for a checkpoint of a DP run, ``{}`` otherwise (the section is then absent)."""
    return {} if privacy is None else {"privacy": privacy.record()}


def check_discriminator(discriminator: nn.Module) -> None:
    """Raises ConfigError when D has layers whose output mixes samples of a batch (BatchNorm and friends)."""
    for name, module in discriminator.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            raise ConfigError(f"privacy: the discriminator has BatchNorm ({name}), which mixes samples across "
                              "patients; turn model.spectral_norm on (the dcgan D then drops BatchNorm)")


def clip_per_unit(gradients: dict[str, torch.Tensor], max_norm: float) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Scales each unit's gradient (row ``i`` of every tensor) to L2 norm at most ``max_norm``.

    The norm is taken over all parameters together, with Opacus's factor ``min(1, C / (norm + 1e-6))``. Hand-rolled
    (three lines) because Opacus's DPOptimizer overwrites ``.grad`` with the noised sum, and the fake half's
    gradient must be added to it.

    Returns:
        The clipped gradients (same shapes) and the unclipped per-unit norms ``[U]``.
    """
    norms = torch.stack([g.flatten(1).norm(dim=1) for g in gradients.values()], dim=1).norm(dim=1)
    factor = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    return {name: g * factor.view(-1, *[1] * (g.ndim - 1)) for name, g in gradients.items()}, norms


def per_sample_gradients(model: nn.Module, loss: Callable[..., torch.Tensor], inputs: tuple[torch.Tensor, ...]
                         ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Per-sample gradients of ``loss(model, *one_sample)`` for every trainable parameter of ``model``.

    Args:
        model: the network, in eval mode (no buffer updates under vmap).
        loss: ``loss(call, *sample) -> (scalar, logit)`` where ``call(*batched_args)`` runs ``model``.
        inputs: tensors whose first dimension is the sample.

    Returns:
        ``{name: [N, *param.shape]}`` and the per-sample logits ``[N]`` (detached).
    """
    params = {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}
    buffers = {name: b.detach() for name, b in model.named_buffers()}

    def one(parameters: dict[str, torch.Tensor], *sample: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        def call(*args: Any, **kwargs: Any) -> Any:
            return functional_call(model, (parameters, buffers), args, kwargs)

        value, logit = loss(call, *(t.unsqueeze(0) for t in sample))
        return value, logit.detach()

    gradients, logits = vmap(grad(one, has_aux=True), in_dims=(None, *[0] * len(inputs)))(params, *inputs)
    return gradients, logits.reshape(-1)


class PoissonUnitSampler:
    """Poisson-sampled batches of privacy units (the loop's sampler in a DP run; checkpointable like BatchSampler).

    Args:
        data: the training data (``subjects`` name each image's patient).
        config: the run config (``privacy.unit``, ``train.batch_size``, classic augmentation).
        rng: the sampler's generator (its state is checkpointed).
        attributes: standardized attributes ``[N, A]`` or None.
    """

    def __init__(self, data: SliceSet, config: RunConfig, rng: torch.Generator,
                 attributes: torch.Tensor | None = None) -> None:
        if config.privacy.unit == "subject":
            groups: dict[str, list[int]] = {}
            for index, subject in enumerate(data.subjects):
                groups.setdefault(subject, []).append(index)
            self.units = [torch.as_tensor(members) for members in groups.values()]
        else:
            self.units = [torch.as_tensor([index]) for index in range(len(data))]
        self.tensors = {PRIMARY: data.images, **getattr(data, "aligned", {})}
        self.labels, self.attributes, self.augment, self.rng = data.labels, attributes, config.data, rng
        self.flip = flips(config.data.flip, data.mapping.unit)
        self.expected = float(min(config.train.batch_size, len(self.units)))
        self.sample_rate = self.expected / len(self.units)

    def next(self) -> Batch:
        """Each unit independently with probability ``sample_rate``; one random slice of each sampled unit."""
        chosen = torch.nonzero(torch.rand(len(self.units), generator=self.rng) < self.sample_rate)[:, 0]
        picks = [self.units[u][torch.randint(len(self.units[u]), (1,), generator=self.rng)] for u in chosen.tolist()]
        index = torch.cat(picks) if picks else torch.zeros(0, dtype=torch.int64)
        augment = self.augment
        tensors = aligned_augment({name: t[index] for name, t in self.tensors.items()}, self.flip,
                                  augment.rotate_degrees, augment.scale, self.rng)
        images = tensors.pop(PRIMARY)
        labels = self.labels[index] if self.labels is not None else None
        attributes = self.attributes[index] if self.attributes is not None else None
        return Batch(images=images, labels=labels, attributes=attributes, aligned=tensors)

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.set_state(state["rng"])


class DiscriminatorPrivacy:
    """DP-SGD for a noise-to-image task's discriminator: sampler, per-unit clipping, noise and accountant.

    The task calls :meth:`discriminator_step` in place of its own D step; the loop reads :attr:`sampler`,
    :meth:`spent`, :meth:`epsilon` and :meth:`record` (``checkpoint["privacy"]``).

    Args:
        config: the run config (``privacy`` section, ``train.steps`` for the planned steps).
        data: the training data.
        discriminator: D, checked for layers that mix samples.
        attributes: standardized attributes ``[N, A]`` the batches carry, or None.
    """

    def __init__(self, config: RunConfig, data: SliceSet, discriminator: nn.Module,
                 attributes: torch.Tensor | None) -> None:
        check_discriminator(discriminator)
        privacy = config.privacy
        self.config = config
        self.sampler = PoissonUnitSampler(data, config, torch.Generator().manual_seed(config.train.seed + 1),
                                          attributes)
        self.units = len(self.sampler.units)
        self.sample_rate = self.sampler.sample_rate
        self.delta = privacy.delta if privacy.delta > 0 else automatic_delta(self.units)
        if self.delta >= 1.0 / self.units:
            raise ConfigError(f"privacy: privacy.delta must be below 1 / number of {privacy.unit}s "
                              f"(1/{self.units}), got {self.delta:g}")
        self.target = privacy.epsilon if privacy.epsilon > 0 else None
        self.planned_steps = config.train.steps
        self.noise_multiplier = privacy.noise
        if self.target is not None:
            self.noise_multiplier = solve_noise(self.target, self.delta, self.sample_rate, self.planned_steps)
        from opacus.accountants import RDPAccountant

        self.accountant = RDPAccountant()  # its history of (sigma, q, steps) is all the state it has
        self.noise_rng = torch.Generator().manual_seed(config.train.seed + 2)

    @property
    def steps(self) -> int:
        """DP steps taken (accounted D updates)."""
        return sum(int(entry[2]) for entry in self.accountant.history)

    def epsilon(self, extra_steps: int = 0) -> float:
        """Epsilon spent so far (Opacus's RDP accountant at this run's delta), or after ``extra_steps`` more."""
        history = list(self.accountant.history)
        if extra_steps:
            history.append((self.noise_multiplier, self.sample_rate, extra_steps))
        return epsilon_spent(history, self.delta)

    def spent(self) -> bool:
        """True when one more step would take epsilon past the target (never with a fixed noise multiplier)."""
        if self.target is None or self.steps < self.planned_steps:
            return False  # sigma was solved so that the planned steps stay within the target
        return self.epsilon(extra_steps=1) > self.target

    def describe(self) -> str:
        """The log line that states the mechanism and its parameters."""
        target = f"target epsilon {self.target:g} over {self.planned_steps} steps, " if self.target else ""
        return (f"privacy: {target}noise multiplier {self.noise_multiplier:.4g}, max grad norm "
                f"{self.config.privacy.max_grad_norm:g}, delta {self.delta:.3g}, unit {self.config.privacy.unit} "
                f"({self.units} units, sample rate {self.sample_rate:.4g}), accountant {ACCOUNTANT}; "
                f"{MECHANISMS[self.config.privacy.unit]}")

    def record(self) -> dict[str, Any]:
        """``checkpoint["privacy"]``: the guarantee of the weights in that checkpoint (a contract: the data card
        reads epsilon, delta, noise_multiplier, max_grad_norm, unit, sample_rate, steps, accountant, mechanism)."""
        privacy = self.config.privacy
        return {"epsilon": self.epsilon(), "delta": self.delta, "noise_multiplier": self.noise_multiplier,
                "max_grad_norm": privacy.max_grad_norm, "unit": privacy.unit, "sample_rate": self.sample_rate,
                "steps": self.steps, "accountant": ACCOUNTANT, "mechanism": MECHANISMS[privacy.unit],
                "target_epsilon": self.target, "planned_steps": self.planned_steps, "units": self.units,
                "expected_batch_units": self.sampler.expected}

    # ---------------------------------------------------------------------------------------------------
    # the step

    def discriminator_step(self, task: Any, batch: Batch) -> tuple[dict[str, float], Batch, tuple]:
        """One DP-SGD update of ``task.discriminator`` on a Poisson batch (see the module docstring).

        Args:
            task: an AdversarialTask (its networks, loss, augmentation, RNG and D optimizer are used).
            batch: the Poisson-sampled real batch (one slice per sampled unit; may be empty).

        Returns:
            Logs, the fake conditions for G's step (a batch of ``train.batch_size`` uniform classes and N(0, 1)
            standardized attributes, images unused), and the (fakes, noise) G's step reuses.
        """
        discriminator, config = task.discriminator, self.config
        count = config.train.batch_size
        labels = attributes = None
        if task.conditional:
            labels = torch.randint(0, task.spec.num_classes, (count,), generator=task.rng).to(task.device)
        if task.spec.num_attributes:
            attributes = torch.randn(count, task.spec.num_attributes, generator=task.rng).to(task.device)
        fake_conditions = Batch(images=torch.zeros(count, 0), labels=labels, attributes=attributes)
        # Fake half first, in train mode (spectral norm's power iteration updates u, v from the weights only);
        # the real half then runs in eval mode with the same u, v.
        noise = task.noise(count)
        with autocast_context(task.device, task.bf16):
            fake = task.generator(noise, labels, attributes)
            fake_logits = discriminator(task.discriminator_inputs(fake.detach()), labels, attributes)
            fake_loss = task.loss.discriminator(torch.zeros(1, device=task.device), fake_logits)
        discriminator.zero_grad(set_to_none=True)
        fake_loss.backward()
        logs = {"logit_fake": fake_logits.float().mean().item()}
        real_gradients, real_logs = self._noisy_real_gradient(task, batch)
        logs.update(real_logs)
        for name, parameter in discriminator.named_parameters():
            if name in real_gradients:
                parameter.grad = real_gradients[name] if parameter.grad is None else parameter.grad + real_gradients[name]
        if config.optim.grad_clip > 0:  # post-processing of the noised gradient
            nn.utils.clip_grad_norm_(discriminator.parameters(), config.optim.grad_clip)
        task.optimizer_d.step()
        self.accountant.step(noise_multiplier=self.noise_multiplier, sample_rate=self.sample_rate)
        return logs, fake_conditions, (fake, noise)

    def _noisy_real_gradient(self, task: Any, batch: Batch) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """(sum of per-unit clipped real-image gradients + N(0, sigma^2 C^2)) / expected units, and logs."""
        discriminator, bound = task.discriminator, self.config.privacy.max_grad_norm
        parameters = {name: p for name, p in discriminator.named_parameters() if p.requires_grad}
        summed = {name: torch.zeros_like(p) for name, p in parameters.items()}
        logs = {"dp_units": float(batch.images.shape[0])}
        if batch.images.shape[0] > 0:
            real = task.discriminator_inputs(batch.images.to(task.device, memory_format=task.memory_format))
            inputs = tuple(t.to(task.device) for t in (real, batch.labels if task.conditional else None,
                                                        batch.attributes if task.spec.num_attributes else None)
                           if t is not None)
            discriminator.eval()
            try:
                gradients, logits = per_sample_gradients(discriminator, self._real_loss(task), inputs)
            finally:
                discriminator.train()
            clipped, norms = clip_per_unit(gradients, bound)
            summed = {name: g.sum(dim=0) for name, g in clipped.items()}
            logs.update(logit_real=logits.mean().item(), dp_clipped=(norms > bound).float().mean().item(),
                        dp_grad_norm=norms.mean().item())
        scale = 1.0 / (self.sample_rate * self.units)
        noisy = {name: (g + self.noise_multiplier * bound * torch.randn(g.shape, generator=self.noise_rng).to(g))
                 * scale for name, g in summed.items()}
        return noisy, logs

    def _real_loss(self, task: Any) -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
        """One real sample's D loss (the adversarial real term, plus the AC-GAN class term) and its logit.

        The adversarial losses are a real term plus a fake term; with constant fake logits the fake term has
        no gradient, so ``loss.discriminator(r, 0)`` has exactly the real term's gradient.
        """
        conditional, has_attributes = task.conditional, bool(task.spec.num_attributes)

        def loss(call: Callable[..., Any], image: torch.Tensor, *conditions: torch.Tensor):
            labels = conditions[0] if conditional else None
            attributes = conditions[-1] if has_attributes else None
            if task.auxiliary:
                logit, classes = call(image, labels, attributes, return_classes=True)
                extra = task.auxiliary_weight * nn.functional.cross_entropy(classes.float(), labels)
            else:
                logit, extra = call(image, labels, attributes), 0.0
            value = task.loss.discriminator(logit, torch.zeros(1, device=logit.device)) + extra
            return value, logit.float()

        return loss

    # ---------------------------------------------------------------------------------------------------
    # state

    def state_dict(self) -> dict[str, Any]:
        return {"history": [tuple(entry) for entry in self.accountant.history],
                "noise_multiplier": self.noise_multiplier, "planned_steps": self.planned_steps,
                "delta": self.delta, "noise_rng": self.noise_rng.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continues the accountant exactly: its history, sigma, the planned steps, delta and the noise RNG."""
        self.accountant.history = [(float(s), float(q), int(n)) for s, q, n in state["history"]]
        self.noise_multiplier = float(state["noise_multiplier"])
        self.planned_steps = int(state["planned_steps"])
        self.delta = float(state["delta"])
        self.noise_rng.set_state(state["noise_rng"])
