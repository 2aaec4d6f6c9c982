"""``Inversion``: what ``Model.invert`` returns (``medgan invert`` in Python)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medgan.api.images import Images


@dataclass(frozen=True, eq=False)
class Inversion:
    """The latent found for one image, its reconstruction, and how close it came.

    Attributes:
        reconstruction: G(latent) on the model's grid, in the input's physical units (``synthetic`` True).
        target: the input as the model saw it (sliced, mapped and fitted to the model's grid; ``synthetic`` False).
        difference: ``[H, W]`` reconstruction - target, in physical units.
        latent: ``[latent_dim]`` the latent z.
        class_name: the class used (given or found) for conditional models, else None.
        ssim: SSIM between reconstruction and target (display scale, ``medgan.metrics.image``).
        psnr: PSNR in dB, likewise.
        record: everything ``inversion.json`` holds.
    """

    reconstruction: Images
    target: Images
    difference: np.ndarray
    latent: np.ndarray
    class_name: str | None
    ssim: float
    psnr: float
    record: dict[str, Any]
    _writer: Any = field(default=None, repr=False)

    def save(self, out: str | Path) -> list[Path]:
        """Writes the files ``medgan invert`` writes into the folder ``out`` (all or nothing)."""
        from medgan.run import check_output_folder

        check_output_folder(out, "out")
        return self._writer(Path(out))


def invert_image(model: Any, volume: Any, source: Path, class_name: str | None, config: Any, encoder: Any,
                 slice_index: int | None) -> Inversion:
    """``Model.invert`` for a reader ``Volume`` (see there)."""
    from medgan.evaluation.inversion import (
        discriminator_features,
        inversion_record,
        invert_targets,
        target_from_volume,
        write_inversion,
    )
    from medgan.inference.encoder import load_encoder

    class_labels_checked(model, class_name)
    loaded = None if encoder is None else load_encoder(encoder, model)
    target = target_from_volume(model, volume, slice_index)
    features, note = discriminator_features(source) if config.feature_weight > 0 else (None, None)
    result, quality = invert_targets(model, target.tile, config, class_name, loaded, features)
    record = inversion_record(model, target, result, quality, config, encoder, note)
    mapping, spacing = target.mapping, tuple(float(s) for s in target.spacing)
    recon = np.asarray(mapping.to_physical(result.images[0, 0].clamp(-1, 1).numpy()), dtype=np.float32)
    tile = np.asarray(mapping.to_physical(target.tile[0, 0].numpy()), dtype=np.float32)
    return Inversion(
        Images(recon[None], spacing, mapping.unit, True, None, None if record["class"] is None else
               (record["class"],), str(source)),
        Images(tile[None], spacing, mapping.unit, False, None, None, str(target.source)),
        recon - tile, result.latents[0].numpy().astype(np.float32), record["class"], record["ssim"],
        record["psnr_db"], record, lambda out: write_inversion(out, target, result, model, record, source))


def class_labels_checked(model: Any, class_name: str | None) -> None:
    """ConfigError for a class given to an unconditional model or an unknown class."""
    from medgan.evaluation.inversion import class_labels

    class_labels(model, class_name, 1)
