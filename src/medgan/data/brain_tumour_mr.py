"""MR images of the simulated brain-tumour patients (``medgan.data.brain_tumour``): T1, contrast-enhanced T1,
T2 and FLAIR of the same anatomy, in arbitrary MR units. Simulated data, not patient data.

Each voxel holds fractions of ``TISSUES`` (grey and white matter, CSF, oedema, enhancing tumour, necrosis); its
signal is the fraction-weighted sum of the tissues' signals (partial volume mixes signals, not parameters). In
order:

1. **Tissue parameters** (``BRAIN_RELAXATION``, 3 T) per patient: each tissue's T1 and T2 times a factor with
   standard deviation ``RELAXATION_SPREAD`` (5 %), its proton density times one with ``PD_SPREAD`` (2 %), as
   the phantom's MR (``medgan.data.phantom.mr``).
2. **Gadolinium** (``t1c``): ``1 / T1 = 1 / T1_0 + r1 C`` and ``1 / T2 = 1 / T2_0 + r2 C`` with relaxivities
   ``RELAXIVITY`` and tissue concentrations ``GADOLINIUM_MM``: the enhancing rim, where the blood-brain barrier
   leaks, takes up contrast; necrosis (no perfusion) and normal brain (intact barrier) take none; oedema a trace.
3. **Signal**: ``t1`` and ``t1c`` are the phantom's T1-weighted spoiled gradient echo (TR 150 ms, TE 2.3 ms,
   flip 70 degrees), ``t2`` its spin echo (TR 4000 ms, TE 90 ms), both through ``mr_signal``; ``flair`` is an
   inversion-recovery spin echo, TR 9000 ms, TE 120 ms, TI chosen to null CSF's nominal T1:
   ``S = PD |1 - 2 exp(-TI / T1) + exp(-TR / T1)| exp(-TE / T2)``.
4. **Texture**: proton density times ``1 + 0.03 n``, ``n`` a unit-variance field of 2 mm correlation, the same
   for every sequence of a patient.
5. **Bias field**: ``exp`` of a second-order polynomial in x, y, z (units of 100 mm from the volume centre),
   coefficients with standard deviation ``BIAS_SPREAD`` per patient, the same for every sequence.
6. **Rician noise** with ``sigma`` = the nominal white-matter signal over ``Sequence.liver_snr`` (here the
   white-matter SNR: T1 and T1c 30, T2 20, FLAIR 15), then a receiver gain ``UNIT_SCALE * g``, ``g``
   log-normal per patient and sequence (``GAIN_SPREAD``).

Not simulated: skull and scalp (the volumes are skull-stripped, as BraTS's are), vessels and choroid plexus
enhancement, flow, susceptibility, k-space effects, haemorrhage or calcification in the tumour.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from medgan.data.brain_tumour import TISSUES, PatientAnatomy
from medgan.data.cohort import VOXEL_MM
from medgan.data.phantom.mr import (
    _APPROX,
    _STANISZ,
    SEQUENCES,
    TEXTURE,
    Relaxation,
    Sequence,
    mr_signal,
    patient_spread,
    rician,
)
from medgan.errors import ConfigError

UNIT_SCALE = 4000.0  # signal of fully relaxed water at gain 1 (arbitrary units; int16 files keep 4 digits)
TEXTURE_MM = 2.0  # correlation (Gaussian sigma) of the proton-density texture

# Mean parameters at 3 T; proton densities relative to water are approximate everywhere (water content).
BRAIN_RELAXATION: dict[str, Relaxation] = {
    "grey-matter": Relaxation(1820.0, 99.0, 0.80, _STANISZ + ", frontal grey matter"),
    "white-matter": Relaxation(1084.0, 69.0, 0.69, _STANISZ + ", frontal white matter"),
    "csf": Relaxation(4300.0, 1500.0, 1.00, _APPROX + "; free water-like"),
    "oedema": Relaxation(1800.0, 250.0, 0.88, _APPROX + "; vasogenic oedema: white matter with more free water"),
    "enhancing": Relaxation(1700.0, 120.0, 0.85, _APPROX + "; viable tumour, before contrast"),
    "necrosis": Relaxation(2800.0, 400.0, 0.95, _APPROX + "; fluid-like necrotic core"),
}
# Gadolinium: relaxivities of a macrocyclic agent at 3 T (about 3.5-5 L/mmol/s for r1; approximate) and tissue
# concentrations (mmol/L) minutes after a standard dose (approximate, chosen for plausible enhancement).
RELAXIVITY = (4.0e-3, 5.0e-3)  # r1, r2 in 1 / (mM ms)
GADOLINIUM_MM = {"grey-matter": 0.0, "white-matter": 0.0, "csf": 0.0, "oedema": 0.02, "enhancing": 0.4,
                 "necrosis": 0.0}


@dataclass(frozen=True)
class BrainSequence:
    """A sequence of the brain-tumour sources: its acquisition, gadolinium or not, and for inversion recovery
    the inversion time (ms)."""

    acquisition: Sequence
    contrast: bool = False
    inversion_ms: float | None = None


def _flair() -> BrainSequence:
    csf = BRAIN_RELAXATION["csf"]
    tr = 9000.0
    # Null of the inversion-recovery signal for CSF's nominal T1: 1 - 2 exp(-TI / T1) + exp(-TR / T1) = 0.
    inversion = csf.t1_ms * math.log(2.0 / (1.0 + math.exp(-tr / csf.t1_ms)))
    return BrainSequence(Sequence("FLAIR inversion-recovery spin echo", "spin-echo", tr, 120.0, 90.0, 15.0),
                         inversion_ms=inversion)


def _with_snr(sequence: Sequence, snr: float, name: str | None = None) -> Sequence:
    return Sequence(name or sequence.name, sequence.kind, sequence.tr_ms, sequence.te_ms, sequence.flip_deg, snr)


BRAIN_SEQUENCES: dict[str, BrainSequence] = {  # Sequence.liver_snr holds the white-matter SNR here
    "t1": BrainSequence(_with_snr(SEQUENCES["t1"], 30.0)),
    "t1c": BrainSequence(_with_snr(SEQUENCES["t1"], 30.0, "T1-weighted spoiled gradient echo, gadolinium"), True),
    "t2": BrainSequence(_with_snr(SEQUENCES["t2"], 20.0)),
    "flair": _flair(),
}
SEQUENCE_NAMES = tuple(BRAIN_SEQUENCES)


def check_sequences(sequences: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """``sequences`` as a tuple, each one of ``SEQUENCE_NAMES``.

    Raises:
        ConfigError: an unknown name, or none.
    """
    names = tuple(sequences)
    unknown = [name for name in names if name not in BRAIN_SEQUENCES]
    if unknown or not names:
        raise ConfigError(f"unknown brain-tumour MR sequence {unknown[0] if unknown else '(none)'!r}; "
                          f"known: {', '.join(SEQUENCE_NAMES)}")
    return names


def tissue_signal(t1_ms: np.ndarray, t2_ms: np.ndarray, pd: np.ndarray, sequence: BrainSequence) -> np.ndarray:
    """Per-tissue signal in ``sequence`` (elementwise; gadolinium is applied by the caller through T1 and T2)."""
    if sequence.inversion_ms is None:
        return mr_signal(t1_ms, t2_ms, pd, sequence.acquisition)
    t1 = np.asarray(t1_ms, dtype=np.float64)
    recovery = 1.0 - 2.0 * np.exp(-sequence.inversion_ms / t1) + np.exp(-sequence.acquisition.tr_ms / t1)
    return pd * np.abs(recovery) * np.exp(-sequence.acquisition.te_ms / np.asarray(t2_ms, dtype=np.float64))


@dataclass(frozen=True)
class PatientParameters:
    """One patient's per-tissue T1, T2 (ms), proton density (order of ``TISSUES``), bias coefficients and gains."""

    t1_ms: np.ndarray
    t2_ms: np.ndarray
    pd: np.ndarray
    bias: np.ndarray  # on (x, y, z, x^2, y^2, z^2, xy, xz, yz)
    gain: dict[str, float]


def patient_parameters(index: int, seed: int = 0) -> PatientParameters:
    """Patient ``index``'s MR parameters (deterministic)."""
    rng = np.random.default_rng([seed, index, 97])
    table = [BRAIN_RELAXATION[name] for name in TISSUES]
    return PatientParameters(*patient_spread(rng, table, 9, SEQUENCE_NAMES))


def contrast_relaxation(t1_ms: np.ndarray, t2_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-tissue T1 and T2 after gadolinium (``GADOLINIUM_MM``, ``RELAXIVITY``)."""
    concentration = np.array([GADOLINIUM_MM[name] for name in TISSUES])
    r1, r2 = RELAXIVITY
    return 1.0 / (1.0 / t1_ms + r1 * concentration), 1.0 / (1.0 / t2_ms + r2 * concentration)


def _bias(shape: tuple[int, ...], coefficients: np.ndarray) -> np.ndarray:
    x, y, z = np.meshgrid(*[(np.arange(n) - (n - 1) / 2.0) * VOXEL_MM / 100.0 for n in shape], indexing="ij",
                          sparse=True)
    terms = (x, y, z, x * x, y * y, z * z, x * y, x * z, y * z)
    return np.exp(sum(c * t for c, t in zip(coefficients, terms))).astype(np.float32)


def noise_sigma(sequence: str) -> float:
    """Rician sigma of ``sequence`` before the gain: the nominal white-matter signal over its SNR."""
    spec, white = BRAIN_SEQUENCES[sequence], BRAIN_RELAXATION["white-matter"]
    signal = tissue_signal(np.array(white.t1_ms), np.array(white.t2_ms), np.array(white.pd), spec)
    return float(signal) / spec.acquisition.liver_snr


def render_patient(anatomy: PatientAnatomy, sequences: tuple[str, ...] = SEQUENCE_NAMES,
                   seed: int = 0, noise: bool = True) -> dict[str, np.ndarray]:
    """The patient's images, float32 ``[X, Y, Z]`` >= 0 in arbitrary units, one per sequence (module docstring).

    Args:
        anatomy: ``medgan.data.brain_tumour.patient_anatomy(index, seed)``.
        sequences: names in ``SEQUENCE_NAMES``.
        seed: the cohort's seed (as for the anatomy).
        noise: False leaves out texture, bias, noise and gain (the bare signal times ``UNIT_SCALE``; tests).

    Raises:
        ConfigError: an unknown sequence.
    """
    sequences = check_sequences(sequences)
    index = anatomy.index
    parameters = patient_parameters(index, seed)
    fractions = anatomy.fractions.astype(np.float32) / np.float32(255.0)
    shape = fractions.shape[1:]
    if noise:
        field = ndimage.gaussian_filter(np.random.default_rng([seed, index, 98]).standard_normal(shape),
                                        TEXTURE_MM / VOXEL_MM)
        texture = (1.0 + TEXTURE * field / (field.std() + 1e-9)).astype(np.float32)
        bias = _bias(shape, parameters.bias)
    out = {}
    for name in sequences:
        spec = BRAIN_SEQUENCES[name]
        t1, t2 = parameters.t1_ms, parameters.t2_ms
        if spec.contrast:
            t1, t2 = contrast_relaxation(t1, t2)
        per_tissue = tissue_signal(t1, t2, parameters.pd, spec).astype(np.float32)
        signal = np.tensordot(per_tissue, fractions, axes=1)  # [X, Y, Z]
        if not noise:
            out[name] = (UNIT_SCALE * signal).astype(np.float32)
            continue
        rng = np.random.default_rng([seed, index, 99, SEQUENCE_NAMES.index(name)])
        noisy = rician(signal * texture * bias, noise_sigma(name), rng)
        out[name] = (UNIT_SCALE * parameters.gain[name] * noisy).astype(np.float32)
    return out
