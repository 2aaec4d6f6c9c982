"""The downstream classifier: a small CNN, its training (augmentation, class weights, equal step budgets) and
prediction, and the CPU-thread setting they run under.
"""

from __future__ import annotations

import math
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as functional
from torch import nn

from medgan.data.transforms import acquisition_augment, classic_augment
from medgan.evaluation.utility.config import UtilityConfig
from medgan.utils import torch_threads


class SmallClassifier(nn.Module):
    """A few conv-BN-ReLU-maxpool blocks, global average pooling and a linear head; 28 to 128+ pixel inputs.

    Args:
        num_classes: number of output logits.
        resolution: input side in pixels; 64 and above get a fourth block.
        channels: input channels.
        width: channels of the first block, doubled in each following block.
    """

    def __init__(self, num_classes: int, resolution: int, channels: int = 1, width: int = 16) -> None:
        super().__init__()
        blocks = 3 if resolution < 64 else 4
        layers: list[nn.Module] = []
        in_channels = channels
        for index in range(blocks):
            out_channels = width * 2**index
            layers += [
                nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),  # out_channels x R/2^i x R/2^i
                nn.BatchNorm2d(out_channels),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),  # out_channels x R/2^(i+1) x R/2^(i+1)
            ]
            in_channels = out_channels
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)  # (width * 2^(blocks-1)) x 1 x 1
        self.dropout = nn.Dropout(0.2)  # small data: a little regularization on the pooled features
        self.head = nn.Linear(in_channels, num_classes)  # num_classes logits

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits [N, num_classes] for images [N, C, H, W] in [-1, 1]."""
        features = self.pool(self.features(images)).flatten(1)
        return self.head(self.dropout(features))


def augmentation_text(config: UtilityConfig) -> str:
    """What augmentation the classifiers were trained with, in words (for metrics.json and the report)."""
    if not config.augment:
        return "none"
    text = "flip, rotation +/-10 deg, zoom +/-10% (classic_augment)"
    return text + "; blur sigma 0-1.2 px and noise 0-0.06 (acquisition_augment)" if config.acquisition else text


def _augment(images: torch.Tensor, generator: torch.Generator, acquisition: bool) -> torch.Tensor:
    """Classic augmentation of the Frid-Adar protocol (random flip, +/-10 degree rotation, +/-10% zoom), then
    optionally random blur and noise (see ``acquisition_augment``)."""
    images = classic_augment(images, flip=True, rotate_degrees=10.0, scale=0.1, generator=generator)
    return acquisition_augment(images, generator=generator) if acquisition else images


def _batches(count: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Shuffled index batches; a trailing batch of one image is dropped (BatchNorm needs two)."""
    order = torch.randperm(count, generator=generator)
    return list(order.split(batch_size))[: _batch_count(count, batch_size)]


def _batch_stream(count: int, batch_size: int, generator: torch.Generator, steps: int) -> Iterator[torch.Tensor]:
    """``steps`` index batches, reshuffling after each pass over the data."""
    made = 0
    while made < steps:
        for batch in _batches(count, batch_size, generator)[: steps - made]:
            made += 1
            yield batch


def _batch_count(count: int, batch_size: int) -> int:
    """Batches per epoch as ``_batches`` makes them."""
    batches = math.ceil(count / batch_size)
    return batches - 1 if batches > 1 and count % batch_size == 1 else batches


def training_steps(count: int, config: UtilityConfig) -> int:
    """Optimizer steps of a run: ``config.epochs`` passes over ``count`` images, at least ``config.min_steps``."""
    return max(config.min_steps, config.epochs * _batch_count(count, config.batch_size))


def train_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    config: UtilityConfig,
    seed: int,
    steps: int | None = None,
) -> SmallClassifier:
    """Trains a SmallClassifier from scratch; the same seed gives the same weights.

    Args:
        images: training images [N, C, R, R] in [-1, 1].
        labels: int64 class indices [N].
        num_classes: number of classes (some may be absent from ``labels``).
        config: epochs, batch size, learning rate, augmentation and precision.
        seed: seeds weight initialization, dropout, shuffling and augmentation.
        steps: optimizer steps; None = ``training_steps(len(labels), config)``.

    Returns:
        The trained model, in eval mode.
    """
    generator = torch.Generator().manual_seed(seed)
    # Inverse-frequency class weights: balanced accuracy and per-class sensitivity are what we report.
    counts = torch.bincount(labels, minlength=num_classes).float()
    weights = torch.where(counts > 0, counts.sum() / (num_classes * counts.clamp(min=1)), torch.zeros(()))
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    # Init and dropout draw from the global RNG: fork it so that the caller's stream stays intact.
    with torch.random.fork_rng(devices=[]), torch_threads(config.threads):
        torch.manual_seed(seed)
        model = SmallClassifier(num_classes, images.shape[-1], images.shape[1], config.width)
        model = model.to(memory_format=memory_format)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=1e-4)
        total_steps = training_steps(len(labels), config) if steps is None else steps
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
        model.train()
        for batch in _batch_stream(len(labels), config.batch_size, generator, total_steps):
            inputs = images[batch]
            if config.augment:
                inputs = _augment(inputs, generator, config.acquisition)
            inputs = inputs.contiguous(memory_format=memory_format)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.precision == "bf16"):
                logits = model(inputs)
            loss = functional.cross_entropy(logits.float(), labels[batch], weight=weights)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        _recalibrate_batch_norm(model, images, memory_format)
    return model.eval()


@torch.no_grad()
def _recalibrate_batch_norm(model: nn.Module, images: torch.Tensor, memory_format: torch.memory_format) -> None:
    """Replaces BatchNorm running statistics by exact averages over the (unaugmented) training images.

    Short runs on small data take few optimizer steps, too few for the momentum-0.1 running averages to forget
    their initial values; eval-mode predictions then collapse onto one class. One extra forward pass fixes that.
    """
    norms = [module for module in model.modules() if isinstance(module, nn.BatchNorm2d)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative moving average: equal weight for every batch
    model.train()
    for chunk in images.split(256):
        model(chunk.contiguous(memory_format=memory_format))
    for norm in norms:
        norm.momentum = 0.1


@torch.no_grad()
def predict_probabilities(model: nn.Module, images: torch.Tensor, config: UtilityConfig) -> np.ndarray:
    """Softmax class probabilities [N, K] (float64) of ``model`` in eval mode, computed in batches of 256."""
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    model.eval()
    outputs = []
    with torch_threads(config.threads):
        for chunk in images.split(256):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.precision == "bf16"):
                logits = model(chunk.contiguous(memory_format=memory_format))
            outputs.append(torch.softmax(logits.float(), dim=1))
    return torch.cat(outputs).double().numpy()
