"""``Translator``: the inference generator of image-to-image runs (paired, and each direction of unpaired runs).

Several input modalities (e.g. T1 + T2 -> CT) are stacked as channels in the run's order, followed by one
availability channel per modality (1 present, 0 missing), and a missing modality is a zero image: one model
serves patients with incomplete protocols (``optional_domains``, ``stack_inputs``). Label maps and masks are
never optional and a single input modality has no availability channel, so such runs are unchanged.

2.5D runs (``data.context`` K > 0) take each image input domain as ``2K + 1`` channels: the slice, then its
neighbours (``medgan.data.slicing.neighbour_indices``); the inference state records K (``"context"``), and
``medgan.inference.files`` stacks the neighbours of each slice of a volume.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Any, Mapping

import torch

from medgan.checkpoint import load_module_state
from medgan.config import RunConfig
from medgan.data.spec import DataSpec
from medgan.errors import CheckpointError, ConfigError, DataError
from medgan.inference.registry import INFERENCE
from medgan.networks.translation import TRANSLATORS
from medgan.run import RunState

KIND = "image-to-image"


class Direction(str, enum.Enum):
    """A direction of a run that translates both ways: A -> B or B -> A (``inference["directions"]``)."""

    A2B = "a2b"
    B2A = "b2a"

    @property
    def opposite(self) -> "Direction":
        """The way back."""
        return Direction.B2A if self is Direction.A2B else Direction.A2B

    @classmethod
    def parse(cls, value: "str | Direction | None", default: "Direction | None" = None) -> "Direction | None":
        """``value`` as a Direction (None gives ``default``); anything else raises ConfigError."""
        if value is None:
            return default
        try:
            return cls(value)
        except ValueError:
            raise ConfigError(f"unknown direction {value!r}; choose one of: "
                              f"{', '.join(d.value for d in cls)}") from None

# Pixels per forward pass (one 512 x 512 slice). Measured on 2 CPU cores (benchmarks/bench_translate.py):
# 512 px slices one at a time ran at 1.93-2.05 slices/s and 640-690 MiB peak, eight at a time at 1.31-1.46
# slices/s and 1,396-1,446 MiB; the U-Net's activations, not the volume, set the peak.
TRANSLATE_PIXELS = 512 * 512


def slices_per_batch(height: int, width: int) -> int:
    """How many ``height x width`` slices one forward pass takes (at least one)."""
    return max(1, TRANSLATE_PIXELS // max(1, height * width))


def optional_domains(spec: DataSpec, input_domains: tuple[str, ...]) -> tuple[str, ...]:
    """The input domains that may be missing: the image modalities, when there are at least two."""
    images = tuple(name for name in input_domains if spec.domain(name).mapping.unit != "label")
    return images if len(images) >= 2 else ()


def stack_inputs(tiles: Mapping[str, torch.Tensor | None], spec: DataSpec, input_domains: tuple[str, ...],
                 optional: tuple[str, ...], available: torch.Tensor | None = None) -> torch.Tensor:
    """The generator's input ``[N, C_in + len(optional), H, W]``: the domains on channels, then availability.

    Args:
        tiles: domain name -> ``[N, C, H, W]`` unit-space tiles; an optional domain may be absent or None.
        spec: the run's data spec (channels of each domain).
        input_domains: the stacking order.
        optional: the domains with an availability channel (``optional_domains``).
        available: ``[N, len(optional)]`` 0/1 per image and optional domain (training's modality dropout);
            None means "present where given".

    Raises:
        DataError: a required domain is missing, or every optional domain of an image is.
    """
    present = [name for name in input_domains if tiles.get(name) is not None]
    if not present:
        raise DataError(f"no input images: this run translates {' + '.join(input_domains)}")
    reference = tiles[present[0]]
    count, size = reference.shape[0], reference.shape[-2:]
    given = torch.tensor([[tiles.get(name) is not None for name in optional]], dtype=reference.dtype)
    flags = given.expand(count, -1) if available is None else available.to(reference.dtype) * given
    if optional and bool((flags.sum(1) == 0).any()):
        raise DataError(f"every input modality of an image is missing; give at least one of: {', '.join(optional)}")
    channels = []
    for name in input_domains:
        tile = tiles.get(name)
        if tile is None:
            if name not in optional:
                raise DataError(f"this run needs the input domain {name!r} (only {', '.join(optional) or 'none'} "
                                "may be missing)")
            tile = reference.new_zeros((count, spec.domain(name).channels, *size))
        elif name in optional:
            tile = tile * flags[:, optional.index(name)].view(-1, 1, 1, 1)
        channels.append(tile)
    channels.extend(flags[:, i].view(-1, 1, 1, 1).expand(-1, 1, *size) for i in range(len(optional)))
    return torch.cat(channels, dim=1)


def split_domains(stacked: torch.Tensor, spec: DataSpec, domains: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """A stacked ``[N, C, H, W]`` tensor split back into its domains (channels in ``domains`` order)."""
    tiles, start = {}, 0
    for name in domains:
        channels = spec.domain(name).channels
        tiles[name] = stacked[:, start : start + channels]
        start += channels
    return tiles


def build_translator(config: RunConfig, spec: DataSpec, input_domains: tuple[str, ...],
                     target: str | tuple[str, ...], residual: bool | None = None) -> torch.nn.Module:
    """The image-to-image generator named by ``config.model.name`` (e.g. "unet") for the spec's domains.

    The residual (identity) start (``model.residual``) applies only when every input is an image: a label map's
    +/-1 channels sit where tanh is flat, and a U-Net started there did not learn (mask-to-image L1 stayed at 0.227
    over 800 steps on the phantom; 0.013 without the residual start); with a hole mask (inpainting) the hole is
    background, as flat, and a U-Net started there left the holes unfilled (3D holes in brain MR: mean 5 inside
    them against the truth's 182 after 6 CPU-minutes; benchmarks/volume_inpaint.py). ``residual`` given (a run's
    recorded choice, ``translator_state``) overrides that rule.
    """
    model = config.model
    targets = (target,) if isinstance(target, str) else tuple(target)
    in_channels = sum(spec.domain(name).channels for name in input_domains)
    in_channels += len(optional_domains(spec, input_domains))
    if residual is None:
        residual = model.residual and all(spec.domain(name).mapping.unit != "label" for name in input_domains)
    out_channels = sum(spec.domain(name).channels for name in targets)
    network = TRANSLATORS.get(model.name)
    slab = {"slab": 2 * config.data.context + 1} if getattr(network, "takes_slab", False) else {}
    if slab and in_channels != len(input_domains) * slab["slab"]:  # masks, label maps or availability channels
        raise ConfigError(f"model.name {model.name!r} takes image inputs only, each a slab of {slab['slab']} slices "
                          f"(data.context {config.data.context}); this run's inputs {' + '.join(input_domains)} have "
                          f"{in_channels} channels in all; use model.name unet")
    return network(in_channels=in_channels, out_channels=out_channels, channels=model.generator_channels,
                   depth=model.depth, residual=residual, **slab)


def translator_state(generator: torch.nn.Module, input_domains: tuple[str, ...], target: str | tuple[str, ...],
                     optional: tuple[str, ...] = (), context: int = 0) -> dict[str, Any]:
    """The inference state of one translation direction (``target``: one domain, or several stacked; ``context``:
    the neighbouring slices on each side that join each input slice, ``data.context``)."""
    targets = [target] if isinstance(target, str) else list(target)
    return {"kind": KIND, "generator": generator.state_dict(), "inputs": list(input_domains), "target": targets[0],
            "targets": targets, "optional": list(optional), "context": int(context),
            "residual": bool(getattr(generator, "residual", False))}


class Translator:
    """A trained G: stacked input domains -> target domain(s), fully convolutional.

    Args:
        generator: the inference generator (EMA weights where EMA was on), in eval mode.
        config: the run's config.
        spec: the run's data spec: the target domain and each input domain with their mappings.
        input_domains: names of the input domains, in the order their channels are stacked.
        target: name of the (first) output domain; outputs of several stacked domains follow ``targets``.
        checkpoint: the file it was loaded from.
        optional: input domains that may be missing (each has an availability channel).
        targets: every output domain, in channel order (default: ``(target,)``).
        direction: for unpaired runs, "a2b" or "b2a"; "" otherwise.
        directions: every direction the run has ("" for paired runs).
        context: 2.5D runs: neighbouring slices on each side stacked with each slice of an image input domain.
    """

    def __init__(self, generator: torch.nn.Module, config: RunConfig, spec: DataSpec, input_domains: tuple[str, ...],
                 target: str, checkpoint: Path, optional: tuple[str, ...] = (), targets: tuple[str, ...] = (),
                 direction: str = "", directions: tuple[str, ...] = (), context: int = 0) -> None:
        self.generator = generator.eval()
        self.config = config
        self.spec = spec
        self.input_domains = input_domains
        self.target = target
        self.checkpoint = checkpoint
        self.optional = optional
        self.targets = targets or (target,)
        self.direction = direction
        self.directions = directions
        self.context = context

    @property
    def in_channels(self) -> int:
        """Channels of the stacked input, availability channels included."""
        return sum(self.spec.domain(name).channels for name in self.input_domains) + len(self.optional)

    def stack(self, tiles: Mapping[str, torch.Tensor | None]) -> torch.Tensor:
        """The stacked input for unit-space tiles by domain; optional domains may be missing (``stack_inputs``)."""
        return stack_inputs(tiles, self.spec, self.input_domains, self.optional)

    @torch.no_grad()
    def translate(self, inputs: torch.Tensor, batch: int | None = None) -> torch.Tensor:
        """Outputs ``[N, C_out, H, W]`` in [-1, 1] for stacked unit-space inputs ``[N, C_in, H, W]`` (any H, W)."""
        if inputs.ndim != 4 or inputs.shape[1] != self.in_channels:
            flags = f" + {len(self.optional)} availability" if self.optional else ""
            raise DataError(f"this run translates {self.in_channels}-channel inputs "
                            f"({' + '.join(self.input_domains)}{flags}), got shape {tuple(inputs.shape)}")
        batch = batch or slices_per_batch(*inputs.shape[-2:])
        chunks = [self.generator(inputs[start : start + batch].float()).float()
                  for start in range(0, inputs.shape[0], batch)]
        return torch.cat(chunks) if chunks else inputs.new_zeros((0, 1, *inputs.shape[2:]))


@INFERENCE.register(KIND)
def load_translator(state: RunState, direction: str | None = None) -> Translator:
    """Builds the generator of one direction from the run's model config and data spec and loads its weights.

    Paired runs have one direction (``direction`` must be None); unpaired runs keep each direction's state under
    ``inference["directions"]`` and default to "a2b".
    """
    inference = state.inference
    directions = inference.get("directions") or {}
    if directions:
        name = direction or str(inference.get("default", Direction.A2B.value))
        if name not in directions:
            raise ConfigError(f"this run translates {' and '.join(directions)}; it has no direction {name!r}",
                              state.path)
        inference = directions[name]
    elif direction is not None:
        raise ConfigError(f"this run translates one way ({' + '.join(inference.get('inputs', []))} -> "
                          f"{inference.get('target')}); --direction is for runs that translate both ways", state.path)
    else:
        name = ""
    try:
        inputs = tuple(str(n) for n in inference["inputs"])
        targets = tuple(str(n) for n in inference.get("targets", [inference["target"]]))
        optional = tuple(str(n) for n in inference.get("optional", []))
        context = int(inference.get("context", state.config.data.context))
        # Runs saved before the choice was recorded: the identity start whenever the first input was an image.
        residual = inference.get("residual")
        if residual is None:
            residual = state.config.model.residual and state.spec.domain(inputs[0]).mapping.unit != "label"
        generator = build_translator(state.config, state.spec, inputs, targets, residual=bool(residual))
    except (KeyError, TypeError, ValueError, DataError) as error:
        raise CheckpointError(f"image-to-image inference state is incomplete ({error})", state.path) from None
    load_module_state(generator, inference.get("generator"), state.path, "generator")
    return Translator(generator, state.config, state.spec, inputs, targets[0], state.path, optional, targets, name,
                      tuple(directions), context)
