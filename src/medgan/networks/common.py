"""Building blocks shared by the architectures: spectral norm switch, class embedding, projection head."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

# Layers by spatial dimensionality (MONAI's ``spatial_dims``): 2 for images, 3 for volumes.
CONV = {2: nn.Conv2d, 3: nn.Conv3d}
CONV_TRANSPOSED = {2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
NORM = {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}


def maybe_spectral_norm(enabled: bool) -> Callable[[nn.Module], nn.Module]:
    """A wrapper that applies spectral normalization to a layer when ``enabled``, else returns it unchanged."""
    if enabled:
        return nn.utils.parametrizations.spectral_norm
    return lambda module: module


def class_embedding(num_classes: int, dim: int) -> nn.Embedding | None:
    """A learned class embedding for conditional generators, or None for unconditional ones."""
    return nn.Embedding(num_classes, dim) if num_classes > 0 else None


def attribute_embedding(num_attributes: int, dim: int) -> nn.Linear | None:
    """A learned linear map of continuous attributes for conditional generators, or None without attributes."""
    return nn.Linear(num_attributes, dim) if num_attributes > 0 else None


def condition_inputs(num_classes: int, num_attributes: int,
                     latent_dim: int) -> tuple[nn.Module | None, nn.Module | None, int]:
    """A generator's conditioning: (class embedding or None, attribute embedding or None, size of G's input)."""
    input_dim = latent_dim * (1 + int(num_classes > 0) + int(num_attributes > 0))
    return class_embedding(num_classes, latent_dim), attribute_embedding(num_attributes, latent_dim), input_dim


def conditioned_latent(z: torch.Tensor, labels: torch.Tensor | None, attributes: torch.Tensor | None,
                       classes: nn.Module | None, continuous: nn.Module | None) -> torch.Tensor:
    """G's input: z, then the class embedding and the attribute embedding where the generator has them."""
    parts = [z]
    if classes is not None:
        if labels is None:
            raise ValueError("a class-conditional generator needs labels")
        parts.append(class_vectors(classes, labels))
    if continuous is not None:
        if attributes is None:
            raise ValueError("an attribute-conditional generator needs attributes")
        parts.append(continuous(attributes.to(z.dtype)))
    return torch.cat(parts, dim=1) if len(parts) > 1 else z


def class_vectors(embedding: nn.Embedding, labels: torch.Tensor) -> torch.Tensor:
    """Rows of ``embedding`` for int64 class indices [N], or their mixtures for float class weights [N, K].

    Mixtures move a generator's conditioning along the straight line between two classes' embeddings (and
    conditional norm parameters), the path ``medgan counterfactual --steer`` walks; one-hot weights give exactly
    the rows that the indices give.
    """
    if labels.is_floating_point():
        return labels.to(embedding.weight.dtype) @ embedding.weight
    return embedding(labels)


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm whose scale and shift are looked up per class (de Vries et al. 2017; BigGAN's conditional BN).

    A class-conditional G that only sees its class through an embedding concatenated to z can let the class
    decide the whole layout; per-class affine parameters at every resolution give each class its own feature
    statistics instead. The scales start at 1 and the shifts at 0, so it begins as plain BatchNorm.
    (PyTorch has no conditional BatchNorm layer; MONAI's networks have none either.)

    Args:
        features: channels.
        num_classes: classes.
        spatial_dims: 2 for images, 3 for volumes.
    """

    def __init__(self, features: int, num_classes: int, spatial_dims: int = 2) -> None:
        super().__init__()
        self.norm = NORM[spatial_dims](features, affine=False)
        self.scale = nn.Embedding(num_classes, features)
        self.shift = nn.Embedding(num_classes, features)
        nn.init.ones_(self.scale.weight)
        nn.init.zeros_(self.shift.weight)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        shape = (labels.shape[0], -1, *([1] * (x.dim() - 2)))  # [N, C, 1, 1(, 1)]
        scale = class_vectors(self.scale, labels).reshape(shape).to(x.dtype)
        shift = class_vectors(self.shift, labels).reshape(shape).to(x.dtype)
        return self.norm(x) * scale + shift


class AttributeProjection(nn.Module):
    """The continuous-condition term of a projection discriminator: ``<W a, h>`` for attributes ``a``.

    The class projection's inner product with a learned linear map of the (standardized) attributes in place
    of a class embedding, as in continuous-conditional GANs (Ding et al. 2021, CcGAN) that project labels.

    Args:
        num_attributes: number of attributes; 0 makes the head return zeros.
        features: size of the pooled feature vector h.
        spectral_norm: spectrally normalize the map.
    """

    def __init__(self, num_attributes: int, features: int, spectral_norm: bool) -> None:
        super().__init__()
        self.linear = None
        if num_attributes > 0:
            linear = nn.Linear(num_attributes, features, bias=False)
            nn.init.normal_(linear.weight, 0.0, 0.02)
            self.linear = maybe_spectral_norm(spectral_norm)(linear)

    def forward(self, pooled: torch.Tensor, attributes: torch.Tensor | None) -> torch.Tensor:
        """pooled [N, F], attributes [N, A] -> attribute logit term [N]."""
        if self.linear is None:
            return pooled.new_zeros(pooled.shape[0])
        if attributes is None:
            raise ValueError("an attribute-conditional discriminator needs attributes")
        return (self.linear(attributes.to(pooled.dtype)) * pooled).sum(dim=1)


class ProjectionHead(nn.Module):
    """The class term of a projection discriminator: ``<embed(y), h>`` (Miyato & Koyama 2018).

    Args:
        num_classes: number of classes; 0 makes the head return zeros (unconditional).
        features: size of the pooled feature vector h.
        spectral_norm: spectrally normalize the embedding.
    """

    def __init__(self, num_classes: int, features: int, spectral_norm: bool) -> None:
        super().__init__()
        self.embedding = None
        if num_classes > 0:
            embedding = nn.Embedding(num_classes, features)
            nn.init.normal_(embedding.weight, 0.0, 0.02)
            self.embedding = maybe_spectral_norm(spectral_norm)(embedding)

    def forward(self, pooled: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """pooled [N, F], labels [N] -> class logit term [N]."""
        if self.embedding is None:
            return pooled.new_zeros(pooled.shape[0])
        if labels is None:
            raise ValueError("a conditional discriminator needs labels")
        return (self.embedding(labels) * pooled).sum(dim=1)


class ClassifierHead(nn.Module):
    """AC-GAN's auxiliary classifier (Odena et al. 2017): class logits from D's pooled features.

    A cosine classifier, ``scale * <h / |h|, w_c / |w_c|>``: its logits do not depend on the scale of D's
    features (small under spectral normalization) and stay bounded, so G cannot push them without limit.

    Args:
        num_classes: number of classes; 0 (or ``enabled=False``) leaves the head out.
        features: size of the pooled feature vector.
        enabled: build the head.
    """

    SCALE = 10.0  # logit range +/-10: enough for confident (99.99%) predictions, bounded against blow-up

    def __init__(self, num_classes: int, features: int, enabled: bool) -> None:
        super().__init__()
        self.weight = None
        if enabled and num_classes > 0:
            self.weight = nn.Parameter(torch.randn(num_classes, features) * 0.02)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        """pooled [N, F] -> class logits [N, num_classes]."""
        if self.weight is None:
            raise ValueError("this discriminator has no auxiliary classifier (model.auxiliary_classifier)")
        features = nn.functional.normalize(pooled.float(), dim=1)
        return self.SCALE * features @ nn.functional.normalize(self.weight.float(), dim=1).t()


MINIBATCH_GROUP = 4  # images per minibatch-stddev group; conditional batches are built so groups share a class


def minibatch_stddev(features: torch.Tensor, group_size: int = MINIBATCH_GROUP) -> torch.Tensor:
    """One scalar per image: the mean standard deviation of features across its group (StyleGAN's layer).

    Gives the discriminator a direct view of sample diversity, so a generator that collapses onto one output
    is detected even when each image alone looks real.

    Groups are strided, as in StyleGAN: group members are images i, i + N/G, i + 2N/G, ... For conditional
    training the batch sampler lays batches out so that strided groups share a class; otherwise class
    differences inside a group would hide a generator that ignores its noise within each class.

    Args:
        features: [N, C, H, W] discriminator features ([N, C, D, H, W] in 3D).
        group_size: images per group (reduced to a divisor of N).

    Returns:
        [N, 1, H, W] ([N, 1, D, H, W]) feature map to concatenate to ``features``.
    """
    count, channels, *spatial = features.shape
    group = min(group_size, count)
    while count % group:
        group -= 1
    grouped = features.float().reshape(group, -1, channels, *spatial)  # G x (N/G) x C x H x W
    deviation = (grouped.var(dim=0, unbiased=False) + 1e-8).sqrt().flatten(1).mean(dim=1)  # [N/G]
    ones = [1] * len(spatial)
    return deviation.repeat(group).reshape(count, 1, *ones).expand(count, 1, *spatial).to(features.dtype)
