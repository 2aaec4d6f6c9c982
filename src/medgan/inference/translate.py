"""``Translator``: the inference generator of image-to-image runs (paired, and later unpaired directions)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from medgan.checkpoint import load_module_state
from medgan.config import RunConfig
from medgan.data.spec import DataSpec
from medgan.errors import CheckpointError, DataError
from medgan.inference.registry import INFERENCE
from medgan.networks.translation import TRANSLATORS
from medgan.run import RunState

KIND = "image-to-image"
# Pixels per forward pass (one 512 x 512 slice). Measured on 2 CPU cores (benchmarks/bench_translate.py):
# 512 px slices one at a time ran at 1.93-2.05 slices/s and 640-690 MiB peak, eight at a time at 1.31-1.46
# slices/s and 1,396-1,446 MiB; the U-Net's activations, not the volume, set the peak.
TRANSLATE_PIXELS = 512 * 512


def slices_per_batch(height: int, width: int) -> int:
    """How many ``height x width`` slices one forward pass takes (at least one)."""
    return max(1, TRANSLATE_PIXELS // max(1, height * width))


def build_translator(config: RunConfig, spec: DataSpec, input_domains: tuple[str, ...],
                     target: str) -> torch.nn.Module:
    """The image-to-image generator named by ``config.model.name`` (e.g. "unet") for the spec's domains.

    The residual (identity) start applies only when the first input is an image: a label map's +/-1 channels
    sit where tanh is flat, and a U-Net started there did not learn (mask-to-image L1 stayed at 0.227 over 800
    steps on the phantom; 0.013 without the residual start).
    """
    model = config.model
    in_channels = sum(spec.domain(name).channels for name in input_domains)
    residual = model.residual and spec.domain(input_domains[0]).mapping.unit != "label"
    return TRANSLATORS.get(model.name)(in_channels=in_channels, out_channels=spec.domain(target).channels,
                                       channels=model.generator_channels, depth=model.depth, residual=residual)


def translator_state(generator: torch.nn.Module, input_domains: tuple[str, ...], target: str) -> dict[str, Any]:
    """The inference state an image-to-image task saves."""
    return {"kind": KIND, "generator": generator.state_dict(), "inputs": list(input_domains), "target": target}


class Translator:
    """A trained G: stacked input domains -> target domain, fully convolutional.

    Args:
        generator: the inference generator (EMA weights where EMA was on), in eval mode.
        config: the run's config.
        spec: the run's data spec: the target domain and each input domain with their mappings.
        input_domains: names of the input domains, in the order their channels are stacked.
        target: name of the output domain.
        checkpoint: the file it was loaded from.
    """

    def __init__(self, generator: torch.nn.Module, config: RunConfig, spec: DataSpec, input_domains: tuple[str, ...],
                 target: str, checkpoint: Path) -> None:
        self.generator = generator.eval()
        self.config = config
        self.spec = spec
        self.input_domains = input_domains
        self.target = target
        self.checkpoint = checkpoint

    @property
    def in_channels(self) -> int:
        return sum(self.spec.domain(name).channels for name in self.input_domains)

    @torch.no_grad()
    def translate(self, inputs: torch.Tensor, batch: int | None = None) -> torch.Tensor:
        """Outputs ``[N, C_out, H, W]`` in [-1, 1] for stacked unit-space inputs ``[N, C_in, H, W]`` (any H, W)."""
        if inputs.ndim != 4 or inputs.shape[1] != self.in_channels:
            raise DataError(f"this run translates {self.in_channels}-channel inputs "
                            f"({' + '.join(self.input_domains)}), got shape {tuple(inputs.shape)}")
        batch = batch or slices_per_batch(*inputs.shape[-2:])
        chunks = [self.generator(inputs[start : start + batch].float()).float()
                  for start in range(0, inputs.shape[0], batch)]
        return torch.cat(chunks) if chunks else inputs.new_zeros((0, 1, *inputs.shape[2:]))


@INFERENCE.register(KIND)
def load_translator(state: RunState) -> Translator:
    """Builds the generator from the run's model config and data spec and loads its weights."""
    inference = state.inference
    try:
        inputs = tuple(str(name) for name in inference["inputs"])
        target = str(inference["target"])
        generator = build_translator(state.config, state.spec, inputs, target)
    except (KeyError, TypeError, DataError) as error:
        raise CheckpointError(f"image-to-image inference state is incomplete ({error})", state.path) from None
    load_module_state(generator, inference.get("generator"), state.path, "generator")
    return Translator(generator, state.config, state.spec, inputs, target, state.path)
