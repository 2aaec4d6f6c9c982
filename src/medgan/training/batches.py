"""Batches for the loop: shuffled epochs or class-grouped layouts over an in-memory SliceSet, with classic
augmentation applied identically to every aligned tensor; and the seeded evaluation reference."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from medgan.config import DataConfig
from medgan.data import SliceSet
from medgan.data.cache.tiles import CachedTiles
from medgan.data.slicing import foreground_fraction
from medgan.data.transforms import aligned_augment, flips
from medgan.networks.common import MINIBATCH_GROUP
from medgan.utils import exists

PRIMARY = "images"


@dataclass
class Batch:
    """One training batch.

    Args:
        images: [N, C, R, R] images of the primary domain in [-1, 1] (already classically augmented).
        labels: [N] int64 class indices when the data is labelled, else None.
        attributes: [N, A] standardized continuous attributes when the data has them, else None.
        aligned: other domains pixel-aligned with ``images`` (e.g. ``{"input": ..., "mask": ...}``), each
            [N, C_domain, R, R], augmented with the same geometric transform.
    """

    images: torch.Tensor
    labels: torch.Tensor | None = None
    attributes: torch.Tensor | None = None
    aligned: dict[str, torch.Tensor] = field(default_factory=dict)

    def to(self, device: torch.device) -> "Batch":
        """The batch on ``device``: to a GPU through pinned (page-locked) memory with asynchronous copies, so the
        copy overlaps the kernels still queued; on CPU the batch itself."""
        if device.type != "cuda":
            return self

        def move(tensor: torch.Tensor | None) -> torch.Tensor | None:
            return tensor.pin_memory().to(device, non_blocking=True) if exists(tensor) else None

        return Batch(images=move(self.images), labels=move(self.labels), attributes=move(self.attributes),
                     aligned={name: move(tensor) for name, tensor in self.aligned.items()})


class BatchSampler:
    """Shuffled epochs (or class-grouped batches) over an in-memory SliceSet; its state is checkpointable.

    The whole dataset is a small tensor, so batches are gathered by index in-process: on a 2-core CPU,
    DataLoader workers would only compete with the training step for the same cores.

    Args:
        data: the training data; its aligned domains (``data.aligned``) travel with the images.
        batch_size: images per batch.
        augment: the data config's classic augmentation (flip, rotate_degrees, scale).
        rng: the sampler's random generator (its state is checkpointed).
        attributes: standardized attributes [N, A], or None.
        group_by_class: lay batches out so that each minibatch-stddev group holds one class.
        nearest: aligned domains resampled with nearest-neighbour interpolation (label maps, masks).
        shard: data-parallel runs: ``shard(indices, groups)`` keeps this rank's share of each global batch
            (``medgan.training.distributed.World.shard``); every rank draws the same global batch from ``rng``.
        augment_rng: the generator of the classic augmentation of this rank's share (default: ``rng``).
    """

    def __init__(self, data: SliceSet, batch_size: int, augment: DataConfig, rng: torch.Generator,
                 attributes: torch.Tensor | None = None, group_by_class: bool = False,
                 nearest: frozenset[str] = frozenset(),
                 shard: Callable[[torch.Tensor, int], torch.Tensor] | None = None,
                 augment_rng: torch.Generator | None = None) -> None:
        self.tensors = {PRIMARY: data.images, **getattr(data, "aligned", {})}
        self.count = len(data)
        self.labels = data.labels
        self.attributes = attributes
        self.batch_size = batch_size
        self.augment = augment
        self.flip = flips(augment.flip, data.mapping.unit)
        self.rng = rng
        self.nearest = nearest
        self.shard = shard
        self.augment_rng = augment_rng if augment_rng is not None else rng
        self.group_by_class = group_by_class and exists(self.labels)
        self.order = torch.randperm(self.count, generator=rng)
        self.position = 0
        self.weights = None if exists(self.labels) else size_balance_weights(data.images, augment.balance)
        if exists(self.labels):
            self.members = {int(c): torch.nonzero(self.labels == c)[:, 0] for c in self.labels.unique()}

    def next_indices(self) -> torch.Tensor:
        """The image indices of the next batch (this rank's share of it in a data-parallel run)."""
        index = self._class_grouped() if self.group_by_class else self._shuffled()
        return self.shard(index, MINIBATCH_GROUP) if self.shard is not None else index

    def next(self) -> Batch:
        """The next batch (wrapping into a new shuffled epoch as needed)."""
        index = self.next_indices()
        augment = self.augment
        tensors = aligned_augment({name: t[index] for name, t in self.tensors.items()}, self.flip,
                                  augment.rotate_degrees, augment.scale, self.augment_rng, self.nearest)
        images = tensors.pop(PRIMARY)
        labels = self.labels[index] if exists(self.labels) else None
        attributes = self.attributes[index] if exists(self.attributes) else None
        return Batch(images=images, labels=labels, attributes=attributes, aligned=tensors)

    def _class_grouped(self) -> torch.Tensor:
        """Indices laid out as MINIBATCH_GROUP blocks that repeat one random label sequence.

        Strided minibatch-stddev groups (image i, i + N/G, ...) then hold one class each, so D can see a
        generator that ignores its noise within a class (class differences would otherwise mask it).
        Images are drawn uniformly at random within their class (with replacement).
        """
        per_block = -(-self.batch_size // MINIBATCH_GROUP)
        pick = torch.randint(0, len(self.labels), (per_block,), generator=self.rng)
        sequence = self.labels[pick]  # class frequencies follow the data
        blocks = []
        for _ in range(MINIBATCH_GROUP):
            chosen = []
            for label in sequence.tolist():
                members = self.members[label]
                chosen.append(members[torch.randint(0, len(members), (1,), generator=self.rng)])
            blocks.append(torch.cat(chosen))
        return torch.cat(blocks)[: self.batch_size]

    def _shuffled(self) -> torch.Tensor:
        """The next ``batch_size`` indices of shuffled epochs (weighted draws with replacement when balanced)."""
        if self.weights is not None:
            return torch.multinomial(self.weights, self.batch_size, replacement=True, generator=self.rng)
        size = self.batch_size
        chosen = []
        while size > 0:
            if self.position >= len(self.order):
                self.order = torch.randperm(self.count, generator=self.rng)
                self.position = 0
            take = self.order[self.position : self.position + size]
            chosen.append(take)
            self.position += len(take)
            size -= len(take)
        return torch.cat(chosen)

    def state_dict(self) -> dict[str, Any]:
        return {"order": self.order.clone(), "position": self.position, "rng": self.rng.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.order = state["order"].clone()
        self.position = int(state["position"])
        self.rng.set_state(state["rng"])


def size_balance_weights(images: torch.Tensor, balance: float) -> torch.Tensor | None:
    """Sampling weights ``density(foreground fraction) ** -balance`` over ``[N, C, R, R]`` images in [-1, 1].

    A volume's axial slices are mostly large (mid-brain, mid-abdomen); the small ones at its ends (cerebellum,
    vertex) are a minority that a GAN under-produces. The density of the slices' foreground fractions is a
    Gaussian KDE (SciPy, Scott's bandwidth); ``balance`` 1 makes every slice size about equally likely, 0
    changes nothing. None (uniform epochs) when ``balance`` is 0 or the sizes do not vary.
    """
    if balance <= 0 or images.shape[0] < 3:
        return None
    from scipy.stats import gaussian_kde

    parts = images.chunks() if isinstance(images, CachedTiles) else [images]  # tiles on disk: a chunk at a time
    fractions = np.concatenate([np.asarray(foreground_fraction(part[:, :1])) for part in parts])
    if float(np.std(fractions)) < 1e-3:
        return None
    density = gaussian_kde(fractions)(fractions)
    weights = density ** -balance
    return torch.as_tensor(weights / weights.sum(), dtype=torch.float64)


def reference_indices(subjects: list[str], count: int, seed: int) -> torch.Tensor:
    """A seeded random sample of ``count`` image indices spread evenly across subjects.

    The in-training score compares samples with real images; taking the first images of a folder of volumes
    would compare with its first one or two patients only. Here subjects take turns (in a seeded random
    order), each contributing a random image not yet taken, until ``count`` images are chosen.

    Returns:
        int64 indices, at most ``count`` (fewer when the data has fewer images).
    """
    rng = np.random.default_rng(seed)
    by_subject: dict[str, list[int]] = {}
    for index, subject in enumerate(subjects):
        by_subject.setdefault(subject, []).append(index)
    pools = [list(rng.permutation(members)) for members in by_subject.values()]
    pools = [pools[i] for i in rng.permutation(len(pools))]
    chosen: list[int] = []
    while len(chosen) < count and any(pools):
        for pool in pools:
            if pool and len(chosen) < count:
                chosen.append(int(pool.pop()))
    return torch.as_tensor(sorted(chosen), dtype=torch.int64)
