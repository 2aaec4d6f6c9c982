"""Typed, frozen run configuration <-> YAML.

A run is described by one ``RunConfig`` made of small section dataclasses shared by every task (``sections``)
and the task's own section (``RunConfig.options``, typed by the task). Values come, in order, from a named
recipe (registered by the tasks: ``medgan.training.tasks.RECIPES``), a YAML file, and ``section.key=value``
overrides (``io``). Unknown keys and bad values raise ``ConfigError`` naming the offending key (``checks``).
"""

from medgan.config.checks import check, validate
from medgan.config.io import (deep_update, first_difference, from_dict, load_yaml, merge_section, parse_overrides,
                              save_yaml, saved_config, to_dict)
from medgan.config.sections import (MAX_BATCH_SIZE, MAX_CHANNELS, MAX_EPSILON, MAX_LATENT_DIM, MAX_ROI_SIZE,
                                    MAX_THREADS, RESOLUTIONS, AugmentConfig, DataConfig, LossConfig, ModelConfig,
                                    OptimConfig, PrivacyConfig, RunConfig, TrainConfig)

__all__ = [
    "AugmentConfig", "DataConfig", "LossConfig", "MAX_BATCH_SIZE", "MAX_CHANNELS", "MAX_EPSILON", "MAX_LATENT_DIM",
    "MAX_ROI_SIZE", "MAX_THREADS", "ModelConfig", "OptimConfig", "PrivacyConfig", "RESOLUTIONS", "RunConfig",
    "TrainConfig", "check", "deep_update", "first_difference", "from_dict", "load_yaml", "merge_section",
    "parse_overrides", "save_yaml", "saved_config", "to_dict", "validate",
]
