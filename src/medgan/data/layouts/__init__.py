"""Dataset layouts: detectors that recognise a known dataset on disk and load it (extension point).

Each module registers its detectors in ``medgan.data.sources.LAYOUTS`` on import; ``pipeline.load_slices``
offers every user path to them (in name order) before the generic pipeline.

* ``lits_msd``: LiTS and MSD Task03_Liver folders (CT volumes with liver/tumour masks), cut by ``data.extract``;
* ``medmnist``: MedMNIST ``.npz`` files, and the opt-in ``download_medmnist``.
"""

from __future__ import annotations

from medgan.data.layouts.lits_msd import EXTRACT_MODES, MASK_CLASSES, CtCase, load_ct_cases
from medgan.data.layouts.medmnist import ORGAN_MNIST_CLASSES, download_medmnist, load_medmnist

__all__ = [
    "EXTRACT_MODES",
    "MASK_CLASSES",
    "ORGAN_MNIST_CLASSES",
    "CtCase",
    "download_medmnist",
    "load_ct_cases",
    "load_medmnist",
]
