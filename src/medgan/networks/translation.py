"""Image-to-image networks: a U-Net generator and a PatchGAN discriminator, both MONAI's.

* ``UNetTranslator``: MONAI's ``UNet`` (2D, residual units, instance norm) mapping the stacked input
  domains ``[N, C_in, H, W]`` to the target ``[N, C_out, H, W]``. With ``residual`` the network predicts a
  correction added to the first input channel (denoising, super-resolution and inpainting start from the
  identity, as RED-CNN does); a tanh bounds the result to [-1, 1]. It is fully convolutional: any H and W
  work, padded internally to a multiple of ``2 ** depth`` and cropped back.
* ``PatchDiscriminator``: MONAI's PatchGAN (pix2pix's 70 x 70 receptive field at three stride-2 layers),
  conditional as in pix2pix: it sees the input stacked with the real or generated target, and returns one
  logit per patch ``[N, 1, h, w]``. Its BatchNorm is replaced by instance norm: the batches here are small.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

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
        pad_h, pad_w = -height % self.multiple, -width % self.multiple
        # Replicate padding: a constant border would be an edge the network has to learn to ignore.
        padded = F.pad(inputs, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else inputs
        out = self.head(self.unet(padded))[..., :height, :width]  # (N, C_out, H, W)
        if self.residual:
            # In float32: under bf16 autocast an input that is itself a bf16 output (CycleGAN's round trip) holds
            # 0.999 as 1.0, whose atanh is infinite (NaN losses at the second step, measured).
            start = torch.atanh(inputs[:, :1].float().clamp(-0.999, 0.999))
            return torch.tanh(start + out.float())
        return torch.tanh(out)


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
