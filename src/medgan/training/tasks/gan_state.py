"""The checkpointed state every generator/discriminator task shares (noise-to-image and image-to-image)."""

from __future__ import annotations

from typing import Any

from torch import nn

from medgan.checkpoint import load_module_state
from medgan.errors import CheckpointError

STATE_ERRORS = (KeyError, TypeError, ValueError, RuntimeError, IndexError)  # a field that does not fit the run


class GanState:
    """Mixin for tasks with ``generator``, ``discriminator``, ``ema`` (an EMA or None), ``optimizer_g``,
    ``optimizer_d`` and ``rng``: their modules, state dict and restore, in one place."""

    generator: nn.Module
    discriminator: nn.Module
    ema: Any
    optimizer_g: Any
    optimizer_d: Any
    rng: Any

    def modules(self) -> dict[str, nn.Module]:
        modules = {"generator": self.generator, "discriminator": self.discriminator}
        if self.ema is not None:
            modules["ema"] = self.ema.module
        return modules

    def gan_state_dict(self) -> dict[str, Any]:
        """Weights (EMA included), optimizer states and the task RNG state."""
        state = {"generator": self.generator.state_dict(), "discriminator": self.discriminator.state_dict(),
                 "optimizer_g": self.optimizer_g.state_dict(), "optimizer_d": self.optimizer_d.state_dict(),
                 "rng": self.rng.get_state()}
        if self.ema is not None:
            state["ema"] = self.ema.module.state_dict()
        return state

    def load_gan_state(self, state: dict[str, Any], path: str) -> None:
        """Restores :meth:`gan_state_dict`; anything that does not fit raises CheckpointError naming ``path``."""
        load_module_state(self.generator, state.get("generator"), path, "generator")
        load_module_state(self.discriminator, state.get("discriminator"), path, "discriminator")
        if self.ema is not None:
            load_module_state(self.ema.module, state.get("ema", state.get("generator")), path, "EMA generator")
        try:
            self.optimizer_g.load_state_dict(state["optimizer_g"])
            self.optimizer_d.load_state_dict(state["optimizer_d"])
            self.rng.set_state(state["rng"])
        except STATE_ERRORS as error:
            raise CheckpointError(f"task state does not fit this run ({type(error).__name__}: {error})",
                                  path) from None
