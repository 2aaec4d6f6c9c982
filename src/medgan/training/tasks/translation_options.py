"""What the two image-to-image families (paired and unpaired) declare alike, without torch: the keys of their
sections that mean the same in both, and the ``--domain-a`` option (``image_to_image`` holds their shared code)."""

from __future__ import annotations

from dataclasses import dataclass

from medgan.config import check
from medgan.training.tasks.declarations import TaskOption

TRANSLATOR_ARCHITECTURES = ("unet",)  # medgan.networks.translation.TRANSLATORS: the generators they train
SLAB_ARCHITECTURES = ("unet3d",)  # ... and the paired task's 3D U-Net on slabs of neighbouring slices (data.context)


@dataclass(frozen=True)
class TranslationOptions:
    """Keys of the paired and unpaired sections that mean the same in both."""

    adversarial_weight: float = 1.0  # weight of the adversarial term (0 = pure pixel loss, no D trained)
    # Several input modalities: each gets an availability channel (1 present, 0 missing: a zero image) and is
    # dropped with this chance per training image, so one model serves incomplete protocols.
    modality_dropout: float = 0.2


def check_translation_options(options: TranslationOptions, name: str) -> None:
    """Range checks of the shared keys of section ``name``."""
    check(options.adversarial_weight >= 0, f"{name}.adversarial_weight", "must be >= 0")
    check(0.0 <= options.modality_dropout < 1.0, f"{name}.modality_dropout", "must be in [0, 1)")


DOMAIN_A = TaskOption("--domain-a", "data.domain_a", "the input modalities (domain A; several are stacked as "
                      "channels, e.g. T1 T2)",
                      nargs="+", metavar="PATH", selects=True)
