"""What differentially private training needs of a config: which settings DP-SGD on the discriminator cannot
honour, switching them off where a recipe chose them (with a note) and refusing them where the user did.

Torch-free, so config resolution (``medgan.training.tasks.resolve_config``) can apply it without loading the
mechanism itself (``medgan.training.privacy``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from medgan.config import RunConfig
from medgan.errors import ConfigError


def is_private(config: RunConfig) -> bool:
    """True when the config asks for DP training (a target epsilon or a noise multiplier)."""
    return config.privacy.epsilon > 0 or config.privacy.noise > 0


@dataclass(frozen=True)
class PrivateSetting:
    """A config value DP-SGD on D cannot honour, the value it can, and why."""

    key: str  # "section.name" of a shared config section
    honoured: Any  # the value DP training needs
    why: str  # the reason, for the note and the error
    applies: Callable[[RunConfig], bool] = lambda config: True  # only configs where the value matters

    def value(self, config: RunConfig) -> Any:
        section, name = self.key.split(".")
        return getattr(getattr(config, section), name)

    def conflicts(self, config: RunConfig) -> bool:
        return self.applies(config) and self.value(config) != self.honoured

    def wording(self) -> str:
        """How the honoured value is said: "off", "on", "0", "1"."""
        if isinstance(self.honoured, bool):
            return "on" if self.honoured else "off"
        return f"{self.honoured:g}"


# What DP training needs of the shared sections. A recipe's value is switched by ``private_defaults`` (with a note);
# a value the user set is refused by ``check_private_config``.
PRIVATE_SETTINGS = (
    PrivateSetting("model.minibatch_std", False, "it mixes samples across patients"),
    PrivateSetting("model.spectral_norm", True, "without it the dcgan discriminator has BatchNorm, which mixes "
                   "samples across patients", applies=lambda config: config.model.name == "dcgan"),
    PrivateSetting("loss.r1_gamma", 0.0, "R1's double backward has no per-sample gradients here"),
    PrivateSetting("loss.gradient_penalty", 0.0, "it mixes real and fake samples"),
    PrivateSetting("augment.adaptive", False, "ADA tunes itself on real logits outside the mechanism"),
    PrivateSetting("optim.d_steps", 1, "each D step is one Poisson-sampled batch"),
    PrivateSetting("train.compile", False, "per-sample gradients need the eager discriminator"),
)
# The same for keys of a task's own section (``RunConfig.options``): (name, value DP needs, why). A task without
# the key never has it set, so the check passes for it.
PRIVATE_OPTIONS = (
    ("spectral", 0.0, "the generator's spectral term reads real images outside the mechanism"),
)


def private_defaults(config: RunConfig, given: Mapping[str, Any]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """For a config that asks for DP, the values that switch off what DP-SGD cannot honour, for each key that
    ``given`` (the user's own values: YAML, flags, overrides) leaves to the recipe; and one note each, e.g.
    ``dp: model.minibatch_std switched off (it mixes samples across patients)``. Nothing without DP.

    Args:
        config: the config as resolved without these switches.
        given: the user's nested values; a key set there is the user's choice and is left to
            ``check_private_config``.
    """
    values: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    if not is_private(config):
        return values, notes
    for setting in PRIVATE_SETTINGS:
        section, name = setting.key.split(".")
        chosen = given.get(section)
        if (isinstance(chosen, Mapping) and name in chosen) or not setting.conflicts(config):
            continue
        values.setdefault(section, {})[name] = setting.honoured
        notes.append(f"dp: {setting.key} switched {setting.wording()} ({setting.why})")
    chosen = given.get(config.task)
    for name, honoured, why in PRIVATE_OPTIONS:
        if (isinstance(chosen, Mapping) and name in chosen) or config.options.get(name, honoured) == honoured:
            continue
        values.setdefault(config.task, {})[name] = honoured
        notes.append(f"dp: {config.task}.{name} switched to {honoured:g} ({why})")
    return values, notes


def check_private_config(config: RunConfig) -> None:
    """Raises a one-line ConfigError naming the first option that DP-SGD on D cannot honour (no-op without DP)."""
    if not is_private(config):
        return
    for setting in PRIVATE_SETTINGS:
        if setting.conflicts(config):
            raise ConfigError(f"privacy: {setting.key} must be {setting.wording()} ({setting.why})")
    for name, honoured, why in PRIVATE_OPTIONS:
        if config.options.get(name, honoured) != honoured:
            raise ConfigError(f"privacy: {config.task}.{name} must be {honoured:g} ({why})")
    if config.privacy.epsilon > 0 and config.train.steps <= 0:
        raise ConfigError("privacy: privacy.epsilon needs a step budget (train.steps) to solve the noise for; use "
                          "privacy.noise with a time budget")
