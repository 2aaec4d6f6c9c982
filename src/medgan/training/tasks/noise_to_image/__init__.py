"""Noise-to-image GANs: ``unconditional`` (the default task) and ``conditional`` (classes and attributes).

``config`` holds their own section (mode seeking, AC-GAN weight), their recipes (medgan, dcgan, standard) and
demos (brain, liver); ``task`` the training; ``evaluation`` what ``medgan evaluate`` and the demos run.
"""

from medgan.training.tasks.noise_to_image.config import ConditionalOptions, NoiseOptions
from medgan.training.tasks.noise_to_image.task import NoiseToImageTask
from medgan.training.tasks.noise_to_image.tasks import ConditionalTask, UnconditionalTask

__all__ = ["ConditionalOptions", "ConditionalTask", "NoiseOptions", "NoiseToImageTask", "UnconditionalTask"]
