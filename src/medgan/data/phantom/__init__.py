"""A procedural abdominal CT phantom: simulated patients, liver lesions and a simulated CT acquisition.

Everything here is **simulated data**, made for offline demos and tests; it is not patient data and supports
no clinical conclusion. Each phantom "patient" is a seed that fixes its anatomy, lesions and tissue texture,
so the same patient can be rendered at any slice height, dose or resolution. Importing this package registers
the embedded sources ``"ct-phantom"`` and ``"ct-lesions"``.

Modules, in the order a slice is made:

* ``tissue``: organ labels and HU per tissue and contrast phase (portal-venous by default);
* ``anatomy``: a patient's random shapes in mm (body, organs, vessels, bowel loops), drawn from its seed;
* ``canvas`` and ``paint``: the anatomy painted at one slice height in HU, then textured;
* ``lesions``: liver lesions (cyst, metastasis, hemangioma) placed in the liver and painted;
* ``acquisition``: projection, Poisson photon noise and filtered back-projection;
* ``cases``: rendered slices, lesion ROIs and LiTS-style volumes of phantom patients;
* ``pairs``: the same slices at routine and at low dose, with their label maps (paired tasks);
* ``sources``: the ``"ct-phantom"`` and ``"ct-lesions"`` sources; ``previews``: the README pictures.
"""

from __future__ import annotations

from medgan.data.phantom.acquisition import FOV_MM, KERNELS, simulate_acquisition
from medgan.data.phantom.cases import (
    LesionRois,
    PhantomCase,
    PhantomVolume,
    lesion_rois,
    patient_id,
    phantom_volume,
    render_patient,
    save_lits_pair,
)
from medgan.data.phantom.previews import save_previews
from medgan.data.phantom.sources import phantom_slices, slice_volume
from medgan.data.phantom.tissue import EXPECTED_MEDIAN_HU, LABEL, LESION_CLASSES, ORGANS, PHASES, TISSUE_HU

__all__ = [
    "EXPECTED_MEDIAN_HU",
    "FOV_MM",
    "KERNELS",
    "LABEL",
    "LESION_CLASSES",
    "LesionRois",
    "ORGANS",
    "PHASES",
    "PhantomCase",
    "PhantomVolume",
    "TISSUE_HU",
    "lesion_rois",
    "patient_id",
    "phantom_slices",
    "phantom_volume",
    "render_patient",
    "save_lits_pair",
    "save_previews",
    "simulate_acquisition",
    "slice_volume",
]
