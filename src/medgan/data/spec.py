"""``DataSpec``: the frozen description of a run's data that everything after training needs.

Training, sampling, translation, evaluation and export need to know what the model's tensors mean without
reading the data again: the channels and resolution, the class names, the continuous attributes and their
statistics, and, for every image domain, the intensity mapping that writes a [-1, 1] tensor back in
physical units (HU for CT, the scanner's units for MR). A noise-to-image run has one domain, ``"image"``;
a translation run has one per domain (``"input"``, ``"target"``, ``"mask"``, or ``"a"``/``"b"``).

The spec is saved once, in the checkpoint (``RunDir`` also writes a human-readable ``data.json`` copy that
nothing reads back).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

import torch

from medgan.data.cache.tiles import CachedTiles
from medgan.data.intensity import IntensityMapping
from medgan.errors import DataError

if TYPE_CHECKING:
    from medgan.data.datasets import SliceSet

PRIMARY = "image"  # the domain name of a SliceSet's ``images``


@dataclass(frozen=True)
class DomainSpec:
    """One image domain of a run.

    Args:
        name: the domain's name (``"image"`` for noise-to-image runs).
        channels: tensor channels of this domain.
        mapping: physical units <-> [-1, 1] for this domain.
    """

    name: str
    channels: int
    mapping: IntensityMapping


@dataclass(frozen=True)
class DataSpec:
    """What a trained model's tensors mean.

    Args:
        resolution: square side of the training tiles in pixels (cube side in voxels for volumes).
        spacing: in-plane (row, column) mm per pixel of the tiles; for volumes (D, H, W) mm per voxel.
        domains: the image domains; the first is the primary one (what a noise-to-image G produces).
        class_names: class name per label index (conditional runs), else empty.
        attribute_names: continuous attribute names (conditional runs with attribute columns), else empty.
        attribute_mean: per attribute, the training mean (G and D see standardized values).
        attribute_std: per attribute, the training standard deviation (1 for constant attributes).
        images: number of training images.
        subjects: number of distinct training subjects (patients).
        degradation: for derived pairs, how the inputs were made from the targets (e.g. ``"downsample:4"``).
        data_sha256: SHA-256 of the training tensors (``training_data_sha256``), the data's provenance in data
            cards and bundles; empty for specs written before it existed.
        dims: 2 for images ``[C, R, R]``, 3 for volumes ``[C, R, R, R]`` (D superior, H anterior, W right).
    """

    resolution: int
    spacing: tuple[float, ...]
    domains: tuple[DomainSpec, ...]
    class_names: tuple[str, ...] = ()
    attribute_names: tuple[str, ...] = ()
    attribute_mean: tuple[float, ...] = ()
    attribute_std: tuple[float, ...] = ()
    images: int = 0
    subjects: int = 0
    degradation: str = ""
    data_sha256: str = ""
    dims: int = 2

    def __post_init__(self) -> None:
        if not self.domains:
            raise DataError("a data spec needs at least one image domain")
        if not len(self.attribute_names) == len(self.attribute_mean) == len(self.attribute_std):
            raise DataError("attribute names, means and standard deviations must have the same length")

    # ---------------------------------------------------------------------------------------------------

    @property
    def primary(self) -> DomainSpec:
        """The first domain (the images a noise-to-image generator makes)."""
        return self.domains[0]

    @property
    def channels(self) -> int:
        """Channels of the primary domain."""
        return self.primary.channels

    @property
    def mapping(self) -> IntensityMapping:
        """Intensity mapping of the primary domain."""
        return self.primary.mapping

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_attributes(self) -> int:
        return len(self.attribute_names)

    def domain(self, name: str) -> DomainSpec:
        """The domain called ``name``; an unknown name raises DataError listing the run's domains."""
        for domain in self.domains:
            if domain.name == name:
                return domain
        raise DataError(f"no image domain {name!r}; this run has: {', '.join(d.name for d in self.domains)}")

    def standardize(self, attributes: torch.Tensor) -> torch.Tensor:
        """Raw attributes ``[N, A]`` -> (value - mean) / std with the training statistics."""
        mean = torch.tensor(self.attribute_mean, dtype=attributes.dtype)
        std = torch.tensor(self.attribute_std, dtype=attributes.dtype)
        return (attributes - mean) / std

    # ---------------------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON-safe dict (what checkpoints and ``data.json`` hold)."""
        return {
            "resolution": self.resolution,
            "spacing": list(self.spacing),
            "domains": [{"name": d.name, "channels": d.channels, "mapping": d.mapping.to_dict()}
                        for d in self.domains],
            "class_names": list(self.class_names),
            "attribute_names": list(self.attribute_names),
            "attribute_mean": list(self.attribute_mean),
            "attribute_std": list(self.attribute_std),
            "images": self.images,
            "subjects": self.subjects,
            "degradation": self.degradation,
            "data_sha256": self.data_sha256,
            "dims": self.dims,
        }

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "DataSpec":
        """The spec saved by :meth:`to_dict`; a malformed dict raises DataError."""
        try:
            domains = tuple(DomainSpec(str(d["name"]), int(d["channels"]), IntensityMapping.from_dict(d["mapping"]))
                            for d in values["domains"])
            return cls(
                resolution=int(values["resolution"]),
                spacing=tuple(float(v) for v in values["spacing"]),  # type: ignore[arg-type]
                domains=domains,
                class_names=tuple(str(v) for v in values.get("class_names", ())),
                attribute_names=tuple(str(v) for v in values.get("attribute_names", ())),
                attribute_mean=tuple(float(v) for v in values.get("attribute_mean", ())),
                attribute_std=tuple(float(v) for v in values.get("attribute_std", ())),
                images=int(values.get("images", 0)),
                subjects=int(values.get("subjects", 0)),
                degradation=str(values.get("degradation", "")),
                data_sha256=str(values.get("data_sha256", "")),
                dims=int(values.get("dims", 2)),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise DataError(f"malformed data spec ({type(error).__name__}: {error})") from None


def spec_of(data: "SliceSet", attributes: bool = True) -> DataSpec:
    """The spec of a loaded SliceSet: its primary domain ``"image"`` plus every aligned domain it carries.

    Args:
        data: the training data.
        attributes: keep the data's continuous attributes (tasks that do not condition on them pass False).
    """
    domains = [DomainSpec(PRIMARY, int(data.images.shape[1]), data.mapping)]
    for name, tensor in data.aligned.items():
        # Label maps and masks carry no physical unit: they are stored as they are in [-1, 1].
        mapping = data.mappings.get(name) or IntensityMapping("identity", -1.0, 1.0, "label")
        domains.append(DomainSpec(name, int(tensor.shape[1]), mapping))
    names: tuple[str, ...] = ()
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    if attributes and data.attributes is not None:
        names = tuple(data.attribute_names)
        mean = tuple(data.attributes.mean(0).tolist())
        # A constant attribute carries no information; unit scale keeps it at 0 instead of dividing by 0.
        std = tuple(v if v > 1e-6 else 1.0 for v in data.attributes.std(0, unbiased=False).tolist())
    return DataSpec(
        resolution=int(data.images.shape[-1]),
        spacing=tuple(float(v) for v in data.spacing),  # type: ignore[arg-type]
        domains=tuple(domains),
        class_names=tuple(data.class_names),
        attribute_names=names,
        attribute_mean=mean,
        attribute_std=std,
        images=len(data),
        subjects=len(set(data.subjects)),
        degradation=data.degradation,
        data_sha256=training_data_sha256(data),
        dims=len(data.images.shape) - 2,
    )


def training_data_sha256(data: "SliceSet") -> str:
    """SHA-256 over the training tensors: images, aligned domains (by name), labels and attributes.

    Each tensor contributes its name, dtype, shape and raw bytes, read in place (no copy of the data). The same
    tiles give the same hash on every machine; it identifies the data set without revealing anything of it.
    """
    digest = hashlib.sha256()
    tensors = [("images", data.images), *sorted(data.aligned.items()), ("labels", data.labels),
               ("attributes", data.attributes)]
    cached = data.images.digest if isinstance(data.images, CachedTiles) and data.images.rows is None else None
    if cached is not None:
        # A prepared cohort: the hash of its stored tiles (recorded at preparation) stands for the tiles, so
        # nothing is read; labels and attributes are small and hashed as usual.
        digest.update(f"cache:{cached};".encode())
        tensors = tensors[-2:]
    for name, tensor in tensors:
        if tensor is None:
            continue
        digest.update(f"{name}:{tensor.dtype}{tuple(tensor.shape)};".encode())
        for chunk in (tensor.chunks() if isinstance(tensor, CachedTiles) else [tensor]):  # on disk: a chunk at a time
            chunk = chunk.detach().cpu().contiguous()
            if chunk.numel():
                digest.update(chunk.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()
