"""Noise-to-image GANs: ``unconditional`` (the default task) and ``conditional`` (classes and attributes).

``config`` holds their own section (mode seeking, AC-GAN weight), their recipes (medgan, dcgan, standard) and
demos (brain, liver); ``task`` the training; ``evaluation`` what ``medgan evaluate`` and the demos run.
"""

from medgan.training.tasks.declarations import lazy_attributes

__all__ = ["ConditionalOptions", "ConditionalTask", "NoiseOptions", "NoiseToImageTask", "UnconditionalTask"]
# Imported at first use (the declarations in ``config`` load without torch; see medgan.training.tasks).
__getattr__ = lazy_attributes(__name__, {
    "ConditionalOptions": "config",
    "NoiseOptions": "config",
    "NoiseToImageTask": "task",
    "ConditionalTask": "tasks",
    "UnconditionalTask": "tasks",
})
