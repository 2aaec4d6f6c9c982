"""Paired image-to-image translation (pix2pix): denoising, super-resolution, inpainting, masks to images, and
input modalities to a target modality with true pairs.

``config`` holds its section (pixel weight, patch size...), options (--input, --pairs, --degrade, --patch,
--domain-a), recipe (pix2pix) and demos (denoise, superres); ``task`` the training and what ``medgan evaluate``
runs on its runs.
"""

from medgan.training.tasks.declarations import lazy_attributes

__all__ = ["PairedOptions", "PairedTask"]
# Imported at first use (the declarations in ``config`` load without torch; see medgan.training.tasks).
__getattr__ = lazy_attributes(__name__, {
    "PairedOptions": "config",
    "PairedTask": "task",
})
