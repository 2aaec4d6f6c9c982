"""``medgan evaluate``: load real, synthetic and training images, compute every metric, write the report.

Inputs (each resolved to ``[N, 1, R, R]`` float32 in [-1, 1] at one resolution R; see ``medgan.evaluation.inputs``):

* real: an embedded source name (``"mni152"``), a file or folder read by ``medgan.data.load_slices``, or a run
  directory, whose own data config (``config.yaml``) is used.
* synthetic: a run directory (images are generated with ``medgan.inference.sampling.generate``) or a folder of images
  (PNG/TIFF, ``.npy``/``.npz`` stacks, NIfTI/DICOM).
* training images for the memorization audit: ``train`` if given (then the real set is the held-out
  baseline), else the real set itself (leave-one-out baseline).

The metrics come from ``medgan.metrics.suite.compute_metrics``, with 95% intervals beside the headline numbers
(``<key>_interval``, ``medgan.metrics.catalog``; real images resampled by subject where the real set's subjects are
known) and the small-N warning; when a run directory is involved its loss curves, metric history and a latent
interpolation strip are added to the report. ``medgan evaluate --compare`` is ``medgan.evaluation.compare``.

Outputs: ``out/metrics.json``, ``out/report.html`` (self-contained) and ``out/DATA_CARD.json`` (``medgan.card``),
written together: either all are new or none changed (a full disk leaves the previous files, or nothing). The
report shows real images unless ``real_images=False``; a banner at its top says which. With ``real_images=False``
the outputs are the copy to share: they name no user path either (``medgan.evaluation.shareable``).
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medgan.card import CARD_NAME, card_text, evaluation_card
from medgan.errors import ConfigError, MedganError
from medgan.evaluation.inputs import resolve_inputs
from medgan.evaluation.shareable import scrub, shared_name
from medgan.metrics.catalog import METRICS, interval, lookup
from medgan.metrics.features import DEFAULT_FEATURES, get_extractor
from medgan.metrics.suite import SAMPLE_SEED, Artefacts, compute_metrics
from medgan.report.html import render_report
from medgan.run import RunDir, check_output_folder
from medgan.utils import atomic_write_files


def evaluate(real: str | Path, fake: str | Path, out: str | Path, features: str = DEFAULT_FEATURES,
             train: str | Path | None = None, data_config: Any = None, progress: bool = True,
             max_images: int | None = None, real_images: bool = True, members: str | Path | None = None,
             non_members: str | Path | None = None) -> dict:
    """Evaluates synthetic images against real ones and writes ``metrics.json`` and ``report.html``.

    Args:
        real: embedded source name, data path, or run directory (its training data).
        fake: folder of synthetic images, or run directory (images generated from its best checkpoint).
        out: report folder (created).
        features: feature extractor spec (``medgan.metrics.features.get_extractor``).
        train: training images for the memorization audit (default: the real set, leave-one-out baseline).
        data_config: ``medgan.config.DataConfig`` for reading ``real``/``train`` (resolution, axis, windows);
            ignored when ``real`` is a run directory (its own config is used). Default: the synthetic run's data
            config, or defaults at the synthetic images' resolution.
        progress: progress bars.
        max_images: use at most this many images per set (random subset) and generate this many from a run.
        real_images: show real (patient) images in the report; False leaves every one out, the metrics stay,
            and every user path in metrics.json and report.html becomes a label and a short hash.
        members, non_members: images of the run's training patients and of other patients: adds the
            membership-inference audit (``medgan.evaluation.audit``) of the run ``fake`` on its generated images.

    Returns:
        The metrics dict written to ``metrics.json``.

    Raises:
        MedganError: bad paths, unreadable or mismatched images, unknown feature extractor.
    """
    started = time.perf_counter()
    out = Path(out)
    check_output_folder(out, "--out")  # before any slow loading
    extractor = get_extractor(features)  # fail on a bad name before any slow loading
    check_membership_inputs(members, non_members, fake)
    if torch.cuda.is_available():  # features are the only heavy network work; everything else stays on the CPU
        extractor = extractor.to("cuda")
    real_set, fake_set, train_set = resolve_inputs(str(real), str(fake), None if train is None else str(train),
                                                   data_config, max_images, progress)
    input_notes = [note for image_set in (real_set, fake_set, train_set) if image_set for note in image_set.notes]
    for note in input_notes:  # shown now, before the long metric work, and kept in metrics.json and the report
        print(f"note: {note}", file=sys.stderr)
    metrics, artefacts = compute_metrics(real_set.images, fake_set.images, real_set.mapping, extractor,
                                         train=train_set.images if train_set else None, progress=progress,
                                         real_subjects=real_set.subjects)
    metrics["inputs"] = {
        "real": real_set.description, "synthetic": fake_set.description,
        "train": train_set.description if train_set else real_set.description + " (leave-one-out)",
        "real_images": len(real_set.images), "synthetic_images": len(fake_set.images),
        "train_images": len(train_set.images) if train_set else len(real_set.images),
        "resolution": int(real_set.images.shape[-1]), "features": features, "feature_dim": extractor.dim,
        "mapping": real_set.mapping.to_dict() if real_set.mapping is not None else None,
        "blank_images_left_out": {"real": real_set.skipped, "train": train_set.skipped if train_set else 0},
    }
    artefacts.notes.extend(input_notes)  # metrics["notes"] is this list
    if members is not None and non_members is not None:
        metrics["membership_inference"] = membership_section(fake_set.run_dir, str(members), str(non_members),
                                                             fake_set.images, features, progress)
    _add_run_extras(artefacts, fake_set.run_dir or real_set.run_dir, fake_set.run_dir)
    if not real_images:
        shareable_inputs(metrics, (real_set, fake_set, train_set), input_notes,
                         {"real set": real, "synthetic set": fake, "training set": train, "member set": members,
                          "non-member set": non_members})
    metrics["timings_s"]["total"] = time.perf_counter() - started
    write_outputs(out, metrics, artefacts, real_images, card=evaluation_card(fake, metrics))
    return metrics


def shareable_inputs(metrics: dict, sets: tuple[Any, ...], input_notes: list[str],
                     sources: dict[str, str | Path | None]) -> None:
    """Replaces every user path of the evaluated sets in ``metrics`` by its label and digest, in place: the
    metrics of a report to share (``real_images=False``; ``medgan.evaluation.shareable``).

    Args:
        metrics: the metrics with their ``inputs`` section (and the membership audit's, if any).
        sets: the real, synthetic and training ``ImageSet`` (the last may be None).
        input_notes: the notes the sets gave while loading; replaced by their shared versions (counts only).
        sources: label -> the path or source name as given (None when not given).
    """
    real_set, fake_set, train_set = sets
    inputs = metrics["inputs"]
    inputs["real"], inputs["synthetic"] = real_set.shared, fake_set.shared
    inputs["train"] = train_set.shared if train_set else real_set.shared + " (leave-one-out)"
    membership = metrics.get("membership_inference")
    if membership:
        for side, label in (("members", "member set"), ("non_members", "non-member set")):
            membership[side]["source"] = shared_name(sources[label], label)
    shared_notes = [note for image_set in sets if image_set for note in image_set.shared_notes]
    metrics["notes"] = [note for note in metrics.get("notes", []) if note not in input_notes] + shared_notes
    paths: dict[str, str] = {}
    for label, source in sources.items():  # one folder given twice (--real and --members) keeps its first label
        if source is not None and shared_name(source, label) != str(source):
            paths.setdefault(str(source), shared_name(source, label))
    metrics.update(scrub(dict(metrics), paths))


def format_metrics(metrics: dict, written: str) -> str:
    """The lines ``medgan evaluate`` prints for an image-set evaluation: the small-N warning, each headline metric
    with its 95% interval, how the intervals resampled, then what it wrote."""
    lines = []
    width = max(len(info.label) for info in METRICS) + 1
    small = metrics.get("small_n") or {}
    if small.get("message"):
        lines.append(f"warning: {small['message']}")
    for info in METRICS:
        value = lookup(metrics, info.key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            found = interval(metrics, info.key)
            shown = f"{value:.4g}" + (f" [{found['low']:.4g}, {found['high']:.4g}]" if found else "")
            lines.append(f"{info.label:<{width}}: {shown:<28} ({info.better} is better)")
    infinity = lookup(metrics, "distribution.fid_infinity")
    if isinstance(infinity, dict):
        lines.append(f"{'FID-infinity (Chong & Forsyth)':<{width}}: {infinity['value']:<28.4g} (FID(N) ≈ "
                     f"{infinity['value']:.4g} + {infinity['slope']:.4g} / N)")
    lines.append(resampling_line(metrics.get("resampling")))
    return "\n".join([*lines, written])


def resampling_line(resampling: dict | None) -> str:
    """One line saying what the [low, high] intervals are: confidence, N of each set and what was resampled."""
    if not resampling:
        return "intervals: none"
    subjects = resampling.get("real_subjects")
    drawn = f"{subjects} real subjects" if resampling.get("real_resampled") == "subjects" else "real images"
    line = (f"[low, high]: {resampling.get('confidence', 0.95):.0%} intervals, N real {resampling.get('n_real')}, "
            f"synthetic {resampling.get('n_synthetic')}; resampled {drawn} and synthetic images "
            f"({resampling.get('resamples')} resamples)")
    return line + (f"; {resampling['note']}" if resampling.get("note") else "")


def check_membership_inputs(members: Any, non_members: Any, fake: Any) -> None:
    """Both or neither of members / non-members, and then a run directory to audit (before any slow loading)."""
    if (members is None) != (non_members is None):
        raise ConfigError("the membership-inference audit needs both --members and --non-members")
    if members is not None and not RunDir.is_run(fake):
        raise ConfigError("--members/--non-members audit a run: give --fake a run directory", fake)


def membership_section(run_dir: Path, members: str, non_members: str, synthetic: torch.Tensor, features: str,
                       progress: bool) -> dict:
    """The membership-inference audit of ``run_dir`` on its already generated images (see ``evaluation.audit``)."""
    from medgan.evaluation.audit import load_side, membership_audit

    config = RunDir(run_dir).read_config().data
    member_set, member_text = load_side(members, config, "member", progress)
    non_member_set, non_member_text = load_side(non_members, config, "non-member", progress)
    result = membership_audit(run_dir, member_set, non_member_set, synthetic, features=features, progress=progress)
    result["members"]["source"], result["non_members"]["source"] = member_text, non_member_text
    return result


def _add_run_extras(artefacts: Artefacts, run_dir: Path | None, generator_run: Path | None) -> None:
    """Loss curves and metric history of a run, and a latent interpolation strip when a generator is given."""
    if run_dir is None:
        return
    run = RunDir(run_dir)
    artefacts.losses = run.read_losses()
    artefacts.history = run.read_metrics()
    if generator_run is not None:
        try:
            from medgan.inference.sampling import interpolate  # imported here: sampling pulls in the training stack

            strips = interpolate(generator_run, steps=8, rows=3, seed=SAMPLE_SEED)
            artefacts.interpolation = strips.detach().float().cpu()
        except (MedganError, ImportError, AttributeError) as error:
            artefacts.notes.append(f"latent interpolation not available: {error}")


def _json_ready(value: Any) -> Any:
    """Replaces NaN/Inf by None and NumPy scalars by Python numbers, recursively."""
    if isinstance(value, dict):
        return {str(key): _json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(item) for item in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def write_outputs(out: Path, metrics: dict, artefacts: Artefacts, real_images: bool = True,
                  card: dict | None = None) -> None:
    """Writes ``metrics.json``, ``report.html`` and, when given, the data card ``DATA_CARD.json`` into ``out``: all
    rendered first, then written all or nothing."""
    clean = _json_ready(metrics)
    metrics.clear()
    metrics.update(clean)
    files = {
        out / "metrics.json": json.dumps(metrics, indent=2, allow_nan=False) + "\n",
        out / "report.html": render_report(metrics, artefacts, METRICS, real_images=real_images, card=card),
    }
    if card is not None:
        files[out / CARD_NAME] = card_text(card)
    atomic_write_files(files)
