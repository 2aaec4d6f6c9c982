"""``medgan audit``: membership-inference audit of a trained noise-to-image run (attacks in ``membership``).

Members are images of the patients the run was trained on, non-members images of patients it never saw; each side
is any source ``medgan.data.load_slices`` reads (a folder, a file, an embedded source name such as ``ct-lesions``,
or a run directory, whose training data is used), read with the run's own data config (resolution, axis, CT
window) so that both sides look like the run's training images. A folder holding a ``labels.csv`` gets its classes
from it (a conditional discriminator is then asked about each image's own class). Patients are the slice set's
subject keys (DICOM PatientID, file stem, phantom patient id); a patient on both sides is an error, since the audit
measures what leaks about patients the generator never saw.

Outputs: ``audit.json`` (written atomically) and a table (``format_audit``). ``medgan evaluate --members
--non-members`` adds the same result to ``metrics.json`` and ``report.html``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medgan.data import load_slices
from medgan.errors import CheckpointError, DataError
from medgan.evaluation.membership import (ATTACKS, BOOTSTRAP_ROUNDS, INVERSION_IMAGES, INVERSION_STEPS, AuditSide,
                                          attack_summary, discriminator_scores, distance_scores, inversion_scores,
                                          subsample)
from medgan.inference.inversion import load_discriminator
from medgan.metrics.features import DEFAULT_FEATURES, get_extractor
from medgan.run import RunDir
from medgan.utils import atomic_write_text

DEFAULT_SAMPLES = 1000  # synthetic images drawn from the run for the distance attacks
AUDIT_SEED = 0  # noise seed of the synthetic images, batch order of D and bootstrap seed
LABELS_FILE = "labels.csv"  # a folder's own class table, used when present
INTERPRETATION = ("AUC 0.5: the attack cannot tell the training patients' images from other patients' images (no "
                  "measurable leakage); above 0.5: the run leaks membership. The interval resamples patients; an "
                  "interval above 0.5 is evidence of leakage, an interval covering 0.5 is not evidence of privacy "
                  "(the attacks are not the strongest possible, and few patients give wide intervals).")


def load_side(source: str, config: Any, role: str, progress: bool = True) -> tuple[Any, str]:
    """The slice set of ``source`` read with ``config`` (the audited run's ``DataConfig``), and its description.

    A run directory stands for its own training data; a folder with a ``labels.csv`` is read with those labels.
    """
    if RunDir.is_run(source):
        other = RunDir(source)
        return load_slices(other.read_config().data, progress=progress, skip_blank=True), f"{other.path} (training data)"
    labels = None
    path = Path(source).expanduser()
    if source == config.source:
        labels = config.labels
    elif path.is_dir() and (path / LABELS_FILE).is_file():
        labels = str(path / LABELS_FILE)
    slices = load_slices(replace(config, source=str(source), labels=labels), progress=progress, skip_blank=True)
    if len(slices) == 0:
        raise DataError(f"no {role} images", source)
    return slices, str(source)


def check_disjoint(members: list[str], non_members: list[str], where: str) -> None:
    """Raises DataError when a patient (subject key) is on both sides."""
    shared = sorted(set(members) & set(non_members))
    if shared:
        shown = ", ".join(shared[:3]) + (f" and {len(shared) - 3} more" if len(shared) > 3 else "")
        raise DataError(f"members and non-members share {len(shared)} patient(s) ({shown}); membership inference "
                        "needs disjoint patients", where)


def audit_side(slices: Any, spec: Any) -> AuditSide:
    """An ``AuditSide`` with classes and attributes mapped to the run's order where the names match."""
    labels = None
    if spec.num_classes and slices.labels is not None and set(slices.class_names) <= set(spec.class_names):
        order = torch.tensor([spec.class_names.index(name) for name in slices.class_names])
        labels = order[slices.labels.long()]
    attributes = None
    if spec.num_attributes and slices.attributes is not None and tuple(slices.attribute_names) == spec.attribute_names:
        attributes = spec.standardize(slices.attributes)
    return AuditSide(slices.images.float(), list(slices.subjects), labels, attributes)


def membership_audit(run_dir: str | Path | None, members: Any, non_members: Any, synthetic: torch.Tensor,
                     spec: Any = None, features: str = DEFAULT_FEATURES, seed: int = AUDIT_SEED,
                     rounds: int = BOOTSTRAP_ROUNDS, progress: bool = False,
                     inversion_images: int = INVERSION_IMAGES, inversion_steps: int = INVERSION_STEPS) -> dict:
    """Every attack on members vs non-members; the JSON-ready result (without inputs' descriptions).

    Args:
        run_dir: the run (its discriminator is attacked), or None for the distance attacks only.
        members, non_members: slice sets (``SliceSet``) of disjoint patients.
        synthetic: [N, 1, R, R] images of the run in [-1, 1].
        spec: the run's data spec (classes for the discriminator), read from the run when None.
        features: feature extractor spec for the feature distance.
        seed: seed of the discriminator's batch order and of the bootstrap.
        rounds: bootstrap resamples.
        progress: progress bars.
        inversion_images: images per side of the inversion attack (a seeded subsample; 0: no inversion attack).
        inversion_steps: optimizer steps per start of the inversion attack.
    """
    check_disjoint(list(members.subjects), list(non_members.subjects), "--non-members")
    notes: list[str] = []
    discriminator = None
    if run_dir is not None:
        try:
            discriminator, spec = load_discriminator(run_dir)
        except CheckpointError as error:
            notes.append(f"discriminator attack not available: {error.message}")
    if spec is None and run_dir is not None:
        spec = RunDir(run_dir).load_inference().spec
    sides = [audit_side(slices, spec) if spec is not None else AuditSide(slices.images.float(), list(slices.subjects))
             for slices in (members, non_members)]
    if synthetic.shape[1:] != sides[0].images.shape[1:]:
        raise DataError(f"the run's images are {tuple(synthetic.shape[1:])} but the real images "
                        f"{tuple(sides[0].images.shape[1:])}", run_dir)
    real = torch.cat([side.images for side in sides])
    count = len(sides[0].images)
    scores = distance_scores(real, synthetic.float(), get_extractor(features), progress=progress)
    if discriminator is not None:
        labels = [side.labels for side in sides]
        attributes = [side.attributes for side in sides]
        if spec.num_classes and any(item is None for item in labels):
            notes.append("discriminator attack: classes unknown for some images; each scored with its highest "
                         "logit over the classes")
        joined_labels = torch.cat(labels) if all(item is not None for item in labels) else None
        joined_attributes = torch.cat(attributes) if all(item is not None for item in attributes) else None
        if spec.num_attributes and joined_attributes is None:
            notes.append("discriminator attack not available: the images have no attribute values for this run")
        else:
            scores["discriminator"] = discriminator_scores(discriminator, real, joined_labels, joined_attributes,
                                                           spec.num_classes, seed=seed)
    inverted = None
    if run_dir is not None and inversion_images > 0:
        inverted = _inversion_attack(run_dir, sides, discriminator, (inversion_images, inversion_steps), seed, rounds,
                                     notes)
    for side, name in zip(sides, ("members", "non-members")):
        if side.patients < 2:
            notes.append(f"only {side.patients} patient among the {name}: the bootstrap interval is not meaningful")
    attacks = {}
    for name, values in scores.items():
        attacks[name] = {"score": ATTACKS[name], **attack_summary(values[:count], sides[0].subjects, values[count:],
                                                                  sides[1].subjects, rounds=rounds, seed=seed)}
    if inverted is not None:
        attacks["inversion"] = {"score": ATTACKS["inversion"], **inverted}
    if len(sides[1].images) < 100:
        notes.append(f"{len(sides[1].images)} non-member images: TPR at 1% FPR needs at least 100 (see "
                     "tpr_at_zero_fpr)")
    return {
        "members": {"images": len(sides[0].images), "patients": sides[0].patients},
        "non_members": {"images": len(sides[1].images), "patients": sides[1].patients},
        "synthetic_images": int(synthetic.shape[0]), "features": features, "bootstrap_rounds": rounds,
        "confidence": 0.95, "seed": seed, "attacks": attacks, "notes": notes, "interpretation": INTERPRETATION,
    }


def _inversion_attack(run_dir: str | Path, sides: list[AuditSide], discriminator: Any, budget: tuple[int, int],
                      seed: int, rounds: int, notes: list[str]) -> dict | None:
    """The inversion attack on a seeded subsample of ``images`` per side: its summary with the counts, or None
    (with a note) for runs it cannot invert. ``budget``: (images per side, optimizer steps)."""
    from medgan.inference.inversion import DiscriminatorFeatures
    from medgan.inference.sampling import load_generator

    images, steps = budget
    model = load_generator(run_dir)
    if model.spec.dims != 2:
        notes.append("inversion attack not available: 3D runs are not inverted yet")
        return None
    picked = [subsample(len(side.images), images, seed + offset) for offset, side in enumerate(sides)]
    features = None if discriminator is None else DiscriminatorFeatures(discriminator)
    scores = []
    for side, rows in zip(sides, picked):
        labels = None if side.labels is None else side.labels[torch.as_tensor(rows)]
        scores.append(inversion_scores(model, side.images[torch.as_tensor(rows)], labels, features, steps=steps,
                                       seed=seed))
    subjects = [[side.subjects[int(i)] for i in rows] for side, rows in zip(sides, picked)]
    summary = attack_summary(scores[0], subjects[0], scores[1], subjects[1], rounds=rounds, seed=seed)
    summary["inverted"] = {"members": len(picked[0]), "non_members": len(picked[1]), "steps": steps,
                           "subsample": f"at most {images} images per side, drawn with seed {seed}"}
    return summary


def run_audit(run_dir: str | Path, members: str, non_members: str, out: str | Path | None = None,
              samples: int = DEFAULT_SAMPLES, features: str = DEFAULT_FEATURES, seed: int = AUDIT_SEED,
              rounds: int = BOOTSTRAP_ROUNDS, progress: bool = True, inversion_images: int = INVERSION_IMAGES,
              inversion_steps: int = INVERSION_STEPS) -> dict:
    """``medgan audit``: loads both sides, draws ``samples`` images from the run, attacks, writes ``audit.json``.

    Raises:
        MedganError: a bad run or path, unreadable images, or a patient on both sides (one-line error).
    """
    from medgan.inference.noise import check_sample_count
    from medgan.run import check_output_folder
    from medgan.inference.sampling import generate, load_generator  # imported here: sampling pulls in the training stack

    if out is not None:
        check_output_folder(out, "--out")
    run = RunDir.existing(run_dir)
    loaded = load_generator(run.path)
    check_sample_count(samples, loaded.spec.resolution, "--samples")
    config = run.read_config().data
    member_set, member_text = load_side(str(members), config, "member", progress)
    non_member_set, non_member_text = load_side(str(non_members), config, "non-member", progress)
    check_disjoint(list(member_set.subjects), list(non_member_set.subjects), str(non_members))
    synthetic, _ = generate(run.path, samples, seed=seed, loaded=loaded)
    result = membership_audit(run.path, member_set, non_member_set, synthetic.detach().float().clamp(-1, 1),
                              spec=loaded.spec, features=features, seed=seed, rounds=rounds, progress=progress,
                              inversion_images=inversion_images, inversion_steps=inversion_steps)
    result["run"] = str(run.path)
    result["members"]["source"], result["non_members"]["source"] = member_text, non_member_text
    if out is not None:
        atomic_write_text(Path(out) / "audit.json", json.dumps(result, indent=2, allow_nan=False) + "\n")
    return result


def _number(value: Any, digits: int = 3) -> str:
    return "–" if value is None or (isinstance(value, float) and not np.isfinite(value)) else f"{value:.{digits}f}"


def audit_rows(result: dict) -> list[tuple[str, str, str, str, str]]:
    """(attack, AUC [95% CI], TPR at 1% FPR, TPR at 0.1% FPR, verdict) per attack, for tables."""
    rows = []
    for name, attack in result["attacks"].items():
        rates = attack["tpr_at_fpr"]
        verdict = "leakage" if attack["leakage_detected"] else "no evidence of leakage"
        rows.append((name, f"{_number(attack['auc'])} [{_number(attack['auc_ci_low'])}, "
                           f"{_number(attack['auc_ci_high'])}]", _number(rates.get("0.01")),
                     _number(rates.get("0.001")), verdict))
    return rows


def format_audit(result: dict) -> str:
    """The audit as a plain-text table with the counts and notes."""
    members, non_members = result["members"], result["non_members"]
    lines = [f"members: {members['images']} images of {members['patients']} patients; non-members: "
             f"{non_members['images']} images of {non_members['patients']} patients; "
             f"{result['synthetic_images']} synthetic images",
             f"{'attack':<18} {'AUC [95% CI by patient]':<24} {'TPR@1%FPR':>9} {'TPR@0.1%FPR':>11}  verdict"]
    for name, interval, one, tenth, verdict in audit_rows(result):
        lines.append(f"{name:<18} {interval:<24} {one:>9} {tenth:>11}  {verdict}")
    lines.extend(f"note: {note}" for note in result["notes"])
    return "\n".join(lines)
