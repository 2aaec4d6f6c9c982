"""Image-to-image networks: a U-Net generator and a PatchGAN discriminator, both MONAI's.

* ``UNetTranslator``: MONAI's ``UNet`` (2D, residual units, instance norm) mapping the stacked input
  domains ``[N, C_in, H, W]`` to the target ``[N, C_out, H, W]``. With ``residual`` the network predicts a
  correction added to the first input channel (denoising, super-resolution and inpainting start from the
  identity, as RED-CNN does); a tanh bounds the result to [-1, 1]. It is fully convolutional: any H and W
  work, padded internally to a multiple of ``2 ** depth`` and cropped back.
* ``UNet3DTranslator`` (``model.name: unet3d``): MONAI's ``UNet`` in 3D on a slab of neighbouring slices (2.5D inputs,
  ``data.context`` K >= 1): each image input's ``2K + 1`` slices become the depth of one 3D channel, 3D convolutions
  (in-plane strides only: a slab of a few slices is not down-sampled through the plane) see the slab as a volume,
  and the output is the middle slice of the 3D output. The neighbour channels arrive in
  ``slicing.neighbour_indices`` order (the slice, then -1, +1, -2, +2, ...) and are put in spatial order first.
* ``PatchDiscriminator``: MONAI's PatchGAN (pix2pix's 70 x 70 receptive field at three stride-2 layers),
  conditional as in pix2pix: it sees the input stacked with the real or generated target, and returns one
  logit per patch ``[N, 1, h, w]``. Its BatchNorm is replaced by instance norm: the batches here are small.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from medgan.errors import ConfigError
from medgan.registry import Registry
from medgan.utils import quiet_import

TRANSLATORS: Registry = Registry("image-to-image generator")
PATCH_DISCRIMINATORS: Registry = Registry("patch discriminator")


@TRANSLATORS.register("unet")
class UNetTranslator(nn.Module):
    """U-Net G: ``[N, C_in, H, W]`` in [-1, 1] -> ``[N, C_out, H, W]`` in [-1, 1].

    Args:
        in_channels: stacked input channels (input domains, plus a mask or availability channels).
        out_channels: target channels.
        channels: width of the first level; each of the ``depth`` stride-2 levels doubles it (capped at 8x).
        depth: number of stride-2 down-samplings.
        residual: add the network's output to the first input channel before the tanh (identity at start).
    """

    def __init__(self, in_channels: int, out_channels: int, channels: int = 32, depth: int = 4,
                 residual: bool = True) -> None:
        super().__init__()
        widths = tuple(channels * min(2**level, 8) for level in range(depth + 1))
        nets = quiet_import("monai.networks.nets")
        self.unet = nets.UNet(spatial_dims=2, in_channels=in_channels, out_channels=channels, channels=widths,
                         strides=(2,) * depth, num_res_units=2, norm="INSTANCE")
        self.head = nn.Conv2d(channels, out_channels, kernel_size=1)  # features -> target channels
        self.multiple = 2**depth
        self.residual = residual and out_channels == 1
        if self.residual:
            # A zero head: the untrained generator is the identity on the first input channel.
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        height, width = inputs.shape[-2:]
        out = self.head(self.unet(_padded(inputs, self.multiple)))[..., :height, :width]  # (N, C_out, H, W)
        return _bounded(inputs, out, self.residual)


def _padded(inputs: torch.Tensor, multiple: int) -> torch.Tensor:
    """``inputs`` padded at the bottom and right to a multiple of ``multiple``: replicate padding, as a constant
    border would be an edge the network has to learn to ignore."""
    pad_h, pad_w = -inputs.shape[-2] % multiple, -inputs.shape[-1] % multiple
    return F.pad(inputs, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else inputs


def _bounded(inputs: torch.Tensor, out: torch.Tensor, residual: bool) -> torch.Tensor:
    """tanh of the network's output, added to the first input channel's atanh with ``residual`` (the identity
    start). In float32: under bf16 autocast an input that is itself a bf16 output (CycleGAN's round trip) holds
    0.999 as 1.0, whose atanh is infinite (NaN losses at the second step, measured)."""
    if residual:
        start = torch.atanh(inputs[:, :1].float().clamp(-0.999, 0.999))
        return torch.tanh(start + out.float())
    return torch.tanh(out)


def slab_order(slab: int) -> list[int]:
    """The permutation that puts a slab's channels, in ``slicing.neighbour_indices`` order (offsets 0, -1, +1, -2,
    +2, ...), in spatial order (offsets -K ... +K)."""
    offsets = [0] + [sign * step for step in range(1, slab // 2 + 1) for sign in (-1, 1)]
    return sorted(range(slab), key=lambda channel: offsets[channel])


@TRANSLATORS.register("unet3d")
class UNet3DTranslator(nn.Module):
    """3D U-Net G on slabs: ``[N, M * S, H, W]`` (M image inputs of S = 2K + 1 neighbouring slices each, in
    neighbour order) -> the middle slice ``[N, 1, H, W]`` in [-1, 1] (module docstring).

    Args:
        in_channels: ``M * slab`` stacked input channels (image inputs only: no mask or availability channels).
        out_channels: 1 (one target slice).
        channels, depth, residual: as ``UNetTranslator`` (the residual start adds to the first input's slice).
        slab: ``2 * data.context + 1``, at least 3.

    Raises:
        ConfigError: a slab under 3 slices, inputs that are not whole slabs, or more than one output channel.
    """

    takes_slab = True  # build_translator passes ``slab``

    def __init__(self, in_channels: int, out_channels: int, channels: int = 32, depth: int = 4,
                 residual: bool = True, slab: int = 1) -> None:
        super().__init__()
        if slab < 3 or in_channels % slab or out_channels != 1:
            raise ConfigError(f"model.name 'unet3d' takes slabs of neighbouring slices to one slice: it needs "
                              f"data.context >= 1 and image inputs only (got {in_channels} input channel(s) for "
                              f"slabs of {slab}, {out_channels} output channel(s)); use model.name unet otherwise")
        widths = tuple(channels * min(2**level, 8) for level in range(depth + 1))
        nets = quiet_import("monai.networks.nets")
        self.unet = nets.UNet(spatial_dims=3, in_channels=in_channels // slab, out_channels=channels,
                              channels=widths, strides=((1, 2, 2),) * depth, num_res_units=2, norm="INSTANCE")
        self.head = nn.Conv3d(channels, out_channels, kernel_size=1)
        self.slab, self.multiple = slab, 2**depth
        self.register_buffer("order", torch.tensor(slab_order(slab)), persistent=False)
        self.residual = residual
        if self.residual:
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        count, _, height, width = inputs.shape
        padded = _padded(inputs, self.multiple)
        slabs = padded.reshape(count, -1, self.slab, *padded.shape[-2:])[:, :, self.order]  # [N, M, S, H, W]
        # In float32 even under bf16 autocast: on the AMX Xeon, bf16 Conv3d gave a NaN weight gradient in the last
        # convolution at the first backward pass (measured; the 2D U-Net's bf16 steps are finite), so D's loss
        # became NaN at step 3.
        with torch.autocast(device_type=inputs.device.type, enabled=False):
            out = self.head(self.unet(slabs.float()))[:, :, self.slab // 2, :height, :width]  # the middle slice
        return _bounded(inputs, out, self.residual)  # the first input's channel 0 is its own slice


@PATCH_DISCRIMINATORS.register("patchgan")
class PatchDiscriminator(nn.Module):
    """Conditional PatchGAN D: (input, target) -> patch logits ``[N, 1, h, w]``.

    Args:
        in_channels: input-domain channels plus target channels.
        channels: width of the first layer (pix2pix: 64).
        layers: stride-2 layers (3 gives pix2pix's 70 x 70 receptive field).
    """

    def __init__(self, in_channels: int, channels: int = 64, layers: int = 3) -> None:
        super().__init__()
        nets = quiet_import("monai.networks.nets")
        self.network = nets.PatchDiscriminator(spatial_dims=2, channels=channels, in_channels=in_channels,
                                               num_layers_d=layers, norm="INSTANCE", kernel_size=4)

    def forward(self, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.network(torch.cat([inputs, target], dim=1))[-1]  # the last entry holds the logits


class DomainDiscriminator(PatchDiscriminator):
    """Unconditional PatchGAN D on the images of one domain (CycleGAN's D): images -> patch logits.

    Args:
        in_channels: the domain's channels.
        channels: width of the first layer (CycleGAN: 64).
        layers: stride-2 layers (3 gives the 70 x 70 receptive field).
    """

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self.network(images)[-1]
