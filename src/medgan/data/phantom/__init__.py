"""A procedural abdominal phantom: simulated patients, liver lesions, a simulated CT acquisition and simulated MR.

Everything here is **simulated data**, made for offline demos and tests; it is not patient data and supports
no clinical conclusion. Each phantom "patient" is a seed that fixes its anatomy, lesions and tissue texture,
so the same patient can be rendered at any slice height, dose, resolution, contrast phase or MR contrast.
Importing this package registers the embedded sources ``"ct-phantom"``, ``"ct-lesions"``, ``"phantom-t1"``,
``"phantom-t2"``, ``"phantom-ct"``, ``"phantom-ct-unenhanced"`` and the paired ``"ct-phantom-volumes"``.

Simulated MR and contrast phases (``mr``, ``modalities``): each slice is painted once; its tissue label map
(plus the painted sub-tissues: kidney cortex and medulla, rib and cartilage, bowel wall and content, and the
lesion class) becomes MR tissues with relaxation times at 3 T from de Bazelaire et al. 2004 (liver, spleen,
pancreas, kidney cortex and medulla, paravertebral muscle, subcutaneous fat, vertebral marrow) and Stanisz et
al. 2005 (blood, cartilage), and approximate values for fluids, lesions, disc, skin and bowel (marked so in
``mr.RELAXATION``). T1-weighted: spoiled gradient echo TR 150 ms, TE 2.3 ms, flip 70 degrees; T2-weighted: spin
echo TR 4000 ms, TE 90 ms. Per patient: T1/T2 (5 %) and proton density (2 %) variation, a smooth multiplicative
bias field (exp of a second-order polynomial in x, y, z; about 0.85-1.2 over the body) and a receiver gain
(arbitrary units differ between patients); per slice: Rician noise (magnitude of complex Gaussian noise; liver
SNR 30 on T1w, 15 on T2w). Not realistic: no flow voids or inflow (vessels are static blood), no chemical
shift, J-coupling, susceptibility, motion or k-space artefacts, uniform single-coil noise. The unenhanced CT
phase paints the same patient with non-contrast tissue values (identical shapes and labels; liver about
60 HU, kidneys 30-35 HU, aorta about 42 HU against about 105, 135-170 and 165 HU portal-venous).

Modules, in the order a slice is made:

* ``tissue``: organ labels and HU per tissue and contrast phase (portal-venous by default);
* ``anatomy``: a patient's random shapes in mm (body, organs, vessels, bowel loops), drawn from its seed;
* ``canvas`` and ``paint``: the anatomy painted at one slice height in HU, then textured;
* ``lesions``: liver lesions (cyst, metastasis, hemangioma) placed in the liver and painted;
* ``acquisition``: projection, Poisson photon noise and filtered back-projection;
* ``cases``: rendered slices, lesion ROIs and LiTS-style volumes of phantom patients;
* ``pairs``: the same slices at routine and at low dose, with their label maps (paired tasks);
* ``mr``: MR physics (tissue parameters, signal equations, bias field, Rician noise) of a painted slice;
* ``modalities``: the same slices as T1, T2, portal and unenhanced CT with labels, and their sources;
* ``fields``, ``volumes``, ``volume_files``: whole patients as contiguous volumes (64 slices of 2.5 mm by
  default) in every CT dose and phase and MR sequence, with label and lesion maps; texture continues through
  the plane (3D random fields instead of per-slice draws); written as NIfTI marked simulated;
* ``volume_pairs``: whole patients at routine and low dose, the paired ``"ct-phantom-volumes"`` source;
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
from medgan.data.phantom.modalities import MODALITIES, PhantomModalities, phantom_modalities
from medgan.data.phantom.mr import MR_TISSUES, RELAXATION, SEQUENCES
from medgan.data.phantom.previews import save_previews
from medgan.data.phantom.sources import phantom_slices, slice_volume
from medgan.data.phantom.tissue import EXPECTED_MEDIAN_HU, LABEL, LESION_CLASSES, ORGANS, PHASES, TISSUE_HU
from medgan.data.phantom.volume_files import save_patient_volume
from medgan.data.phantom.volume_pairs import VOLUME_SOURCE, phantom_volume_pair
from medgan.data.phantom.volumes import PatientVolume, Rendering, ct_rendering_name, phantom_patient_volume

__all__ = [
    "EXPECTED_MEDIAN_HU",
    "FOV_MM",
    "KERNELS",
    "LABEL",
    "LESION_CLASSES",
    "LesionRois",
    "MODALITIES",
    "MR_TISSUES",
    "ORGANS",
    "PHASES",
    "PatientVolume",
    "PhantomCase",
    "PhantomModalities",
    "PhantomVolume",
    "RELAXATION",
    "Rendering",
    "SEQUENCES",
    "TISSUE_HU",
    "VOLUME_SOURCE",
    "ct_rendering_name",
    "lesion_rois",
    "patient_id",
    "phantom_modalities",
    "phantom_patient_volume",
    "phantom_volume_pair",
    "phantom_slices",
    "phantom_volume",
    "render_patient",
    "save_lits_pair",
    "save_patient_volume",
    "save_previews",
    "simulate_acquisition",
    "slice_volume",
]
