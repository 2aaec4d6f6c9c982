"""Tissue tables of the simulated CT phantom: organ labels and mean HU per tissue and contrast phase.

Simulated data, not patient data. Contrast phase: tissue values follow a **portal-venous phase** (about 70 s
after iodinated contrast) by default, because the three lesion types are told apart by how they enhance
(rim-enhancing metastasis, peripheral nodular hemangioma) and because the liver-lesion GAN study this mirrors
(Frid-Adar et al. 2018) used portal-phase CT. In that phase the liver is about 100-110 HU (55-65 HU
unenhanced), the kidneys 130-180 HU (30-40 HU unenhanced) and the aorta about 165 HU (about 40 HU unenhanced).
``phase="unenhanced"`` gives non-contrast values. See ``TISSUE_HU``.

Lesions (portal phase): **cyst** round, sharp, water density (about 8 HU); **metastasis** lobulated,
hypodense core (about 30-40 HU) with a 2-3 mm enhancing rim (about 145 HU, brighter than the 105 HU liver, so
"enhancing" relative to the liver of this phase); **hemangioma** hypodense body (about 50 HU) with globular
nodules on its margin at blood-pool density (like the aorta, about 150-165 HU).
"""

from __future__ import annotations

LESION_CLASSES = ("cyst", "metastasis", "hemangioma")
PHASES = ("portal", "unenhanced")

# Values of PhantomCase.organ_labels; the index is the label.
ORGANS = (
    "air",
    "fat",
    "muscle",
    "liver",
    "spleen",
    "kidney",
    "aorta",
    "ivc",
    "liver-vessel",
    "bone-cortical",
    "bone-cancellous",
    "bowel",
    "gas",
    "spinal-canal",
    "gallbladder",
    "lesion",
    "disc",
    "pancreas",
    "vessel",
    "skin",
)
LABEL = {name: index for index, name in enumerate(ORGANS)}

# Mean HU per tissue and phase; each patient varies around these (see anatomy._sample_tissue_hu). Typical values
# from abdominal CT practice; portal-venous phase about 70 s after contrast, enhancement scaled per patient.
TISSUE_HU: dict[str, dict[str, float]] = {
    "portal": {
        "fat": -100.0,
        "skin": 40.0,
        "muscle": 55.0,
        "liver": 105.0,
        "spleen": 115.0,
        "pancreas": 100.0,
        "kidney-cortex": 170.0,
        "kidney-medulla": 135.0,
        "aorta": 165.0,
        "ivc": 145.0,
        "portal-vein": 175.0,
        "hepatic-vein": 160.0,
        "bone-cortical": 900.0,
        "bone-cancellous": 250.0,
        "rib-cortical": 750.0,
        "rib-marrow": 280.0,
        "cartilage": 130.0,
        "disc": 85.0,
        "spinal-canal": 15.0,
        "bowel-wall": 85.0,
        "bowel-fluid": 15.0,
        "stomach-fluid": 10.0,
        "gas": -1000.0,
        "bile": 10.0,
        "cyst": 8.0,
        "metastasis-centre": 38.0,
        "metastasis-rim": 145.0,
        "hemangioma-centre": 50.0,
    },
    "unenhanced": {
        "fat": -100.0,
        "skin": 40.0,
        "muscle": 45.0,
        "liver": 60.0,
        "spleen": 48.0,
        "pancreas": 42.0,
        "kidney-cortex": 35.0,
        "kidney-medulla": 30.0,
        "aorta": 42.0,
        "ivc": 40.0,
        "portal-vein": 40.0,
        "hepatic-vein": 38.0,
        "bone-cortical": 900.0,
        "bone-cancellous": 250.0,
        "rib-cortical": 750.0,
        "rib-marrow": 280.0,
        "cartilage": 130.0,
        "disc": 85.0,
        "spinal-canal": 15.0,
        "bowel-wall": 40.0,
        "bowel-fluid": 15.0,
        "stomach-fluid": 10.0,
        "gas": -1000.0,
        "bile": 10.0,
        "cyst": 8.0,
        "metastasis-centre": 35.0,
        "metastasis-rim": 45.0,
        "hemangioma-centre": 38.0,
    },
}
# Ranges that the median HU inside each (eroded) tissue label of a reconstructed slice falls in, over patients,
# at high dose (4.0); checked by tests/test_phantom.py. Thin structures (cortical bone, 1-2 mm) read lower
# than painted because of partial volume: the vertebral cortex (painted 900 +/- 80 HU) peaks at 650-850 HU.
EXPECTED_MEDIAN_HU: dict[str, dict[str, tuple[float, float]]] = {
    "portal": {
        "fat": (-120.0, -80.0),
        "muscle": (40.0, 70.0),
        "liver": (85.0, 125.0),
        "spleen": (95.0, 135.0),
        "pancreas": (80.0, 120.0),
        "kidney": (125.0, 200.0),
        "aorta": (130.0, 200.0),
        "ivc": (115.0, 180.0),
        "bone-cancellous": (180.0, 330.0),
        "spinal-canal": (0.0, 30.0),
    },
    "unenhanced": {
        "fat": (-120.0, -80.0),
        "muscle": (35.0, 55.0),
        "liver": (52.0, 68.0),
        "spleen": (38.0, 58.0),
        "kidney": (25.0, 45.0),
        "aorta": (30.0, 55.0),
        "bone-cancellous": (180.0, 330.0),
    },
}

# Contrast-enhanced tissues, scaled together per patient (contrast timing and cardiac output differ).
ENHANCING = (
    "kidney-cortex", "kidney-medulla", "aorta", "ivc", "portal-vein", "hepatic-vein", "spleen", "pancreas", "liver",
)
