"""``UtilityConfig``: how the downstream classifier is trained and how its scores are summarised.

Its own module because both the classifier (``classifier``) and the experiment (``protocol``) read it.
"""

from __future__ import annotations

from dataclasses import dataclass

from medgan.errors import ConfigError


@dataclass(frozen=True)
class UtilityConfig:
    """How the downstream classifier is trained and how its scores are summarised."""

    seeds: int = 5  # classifier runs per arm, each with its own seed (seed, seed+1, ...), paired across arms
    epochs: int = 30  # training epochs per run, counted over the real training set (every arm gets as many steps)
    min_steps: int = 200  # at least this many optimizer steps per run: tiny data sets give few steps per epoch
    batch_size: int = 64  # images per optimizer step
    lr: float = 1e-3  # AdamW learning rate (cosine-decayed to 0 over the run)
    synthetic_per_class: int = 0  # synthetic images per class; 0 = as many as real training images of that class
    test_fraction: float = 0.3  # held-out real subjects when no explicit test set is given
    confidence: float = 0.95  # two-sided confidence level of the intervals over seeds
    seed: int = 0  # first seed; run i uses seed + i
    width: int = 16  # channels of the classifier's first block (doubled per block)
    augment: bool = True  # classic augmentation (flip, +/-10 degree rotation, +/-10% zoom) in every arm
    acquisition: bool = True  # also random blur and noise (acquisition_augment), so the noise texture is not a cue
    precision: str = "fp32"  # "fp32" or "bf16" (autocast); bf16 is slower on CPUs without native bf16 (AVX2)
    channels_last: bool = True  # NHWC memory format for the convolutions
    threads: int = 0  # torch CPU threads while training/predicting (0 = leave torch's setting); 1 suits busy CPUs

    def validate(self) -> None:
        """Raises ConfigError naming the first invalid field."""
        checks = {
            "seeds": self.seeds >= 1,
            "epochs": self.epochs >= 1,
            "min_steps": self.min_steps >= 0,
            "batch_size": self.batch_size >= 2,
            "lr": self.lr > 0,
            "synthetic_per_class": self.synthetic_per_class >= 0,
            "test_fraction": 0 < self.test_fraction < 1,
            "confidence": 0 < self.confidence < 1,
            "width": self.width >= 1,
            "precision": self.precision in ("fp32", "bf16"),
            "threads": 0 <= self.threads <= 1024,  # a huge count makes OpenMP allocate per-thread state and abort
        }
        for key, valid in checks.items():
            if not valid:
                raise ConfigError(f"utility.{key}: invalid value {getattr(self, key)!r}")
