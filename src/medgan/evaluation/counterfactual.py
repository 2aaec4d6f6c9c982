"""``medgan counterfactual``: what would this image look like as another class? For a 2D class-conditional run,
each input is inverted (``medgan.evaluation.inversion``; its class searched, as ``medgan invert`` does when no class
is given) and its latent is regenerated as the class ``--to``: the counterfactual. The difference
counterfactual - reconstruction is what the class alone changes, on the generator's own rendering of the image.

Per input ``NAME`` (the slice's stem, as ``medgan invert`` names it), all or nothing:

* the counterfactual in the input's format family, marked SYNTHETIC: ``NAME_counterfactual.nii.gz`` (NIfTI and
  DICOM inputs), ``NAME/NAME_counterfactual_0000.png`` with its ``mapping.json`` (pictures; one folder per input, as
  each input has its own intensity mapping) or ``NAME_counterfactual.npy`` with its sidecar (arrays);
* ``NAME_change`` (counterfactual - reconstruction in physical units: NIfTI, else float32 NPY);
* ``NAME_preview.png``: input | reconstruction | counterfactual | difference (mid grey 0, white +, black -, full
  scale half the mapping's range);
* with ``--steer N`` (needs ``--judge``): the conditioning walks from the found class to ``--to`` in N equal steps
  (the straight line between the two classes' embeddings, ``medgan.networks.common.class_vectors``) until the
  judge's decision differs from its decision on the reconstruction; that image, the minimal counterfactual, is
  written as ``NAME_minimal`` (same format as the counterfactual) where the judge changes its decision on the way;

then ``counterfactual.json`` and ``DATA_CARD.json``.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medgan.data.readers import read_volume
from medgan.errors import ConfigError
from medgan.evaluation.inversion import (
    InversionTarget,
    _stem,
    _write_difference_nifti,
    invert_targets,
    target_from_volume,
)
from medgan.inference import NoiseToImage
from medgan.inference.inversion import InversionConfig

CHANGE_THRESHOLD = 0.05  # a pixel has changed when |difference| > this fraction of the mapping's range
NOTE = "counterfactual of an input image by the run's generator: derived from that image, as private as it is"


def check_model(model: NoiseToImage, to_class: str) -> int:
    """The index of ``to_class``; ConfigError for a 3D run, an unconditional run or an unknown class."""
    if model.spec.dims != 2:
        raise ConfigError("medgan counterfactual is for 2D runs; this run makes volumes (3D is not supported yet)",
                          model.checkpoint)
    if not model.class_names:
        raise ConfigError("this run is not class-conditional: it has no class to change an image into",
                          model.checkpoint)
    return int(model.class_index(to_class))


def load_judge(path: str | Path, model: NoiseToImage) -> torch.jit.ScriptModule:
    """A user's TorchScript classifier ([N, 1, R, R] in [-1, 1] -> [N, classes] logits in the run's class order).

    Raises:
        ConfigError: not loadable TorchScript, it fails on an input of the run's size, or its output width is not
            the run's class count.
    """
    try:
        judge = torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as error:  # noqa: BLE001 - any failure to load is the user's file
        raise ConfigError(f"not a loadable TorchScript classifier ({type(error).__name__})", path) from None
    side = model.spec.resolution
    try:
        with torch.no_grad():
            logits = judge(torch.zeros(2, 1, side, side))
    except Exception as error:  # noqa: BLE001
        raise ConfigError(f"the classifier fails on [2, 1, {side}, {side}] images ({type(error).__name__})",
                          path) from None
    count = len(model.class_names)
    if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (2, count):
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ConfigError(f"the classifier returns {shape} for 2 images; the run has {count} classes "
                          f"({', '.join(model.class_names)}), so [2, {count}] logits are needed", path)
    return judge


def steer(model: NoiseToImage, judge: Any, latents: torch.Tensor, labels: torch.Tensor, recon: torch.Tensor,
          to_index: int, steps: int) -> tuple[list[float | None], torch.Tensor]:
    """Walks each latent's class weights from its found class (its reconstruction ``recon``) to ``to_index`` in
    ``steps`` equal steps.

    Returns:
        (per image the first weight alpha in (0, 1] of the class ``to_index`` at which the judge's decision differs
        from its decision on ``recon``, None where it never does; the images at those alphas [N, C, R, R] in
        [-1, 1], the full counterfactual where the decision never changes).
    """
    count = len(model.class_names)
    start = torch.nn.functional.one_hot(labels, count).float()
    end = torch.nn.functional.one_hot(torch.full_like(labels, to_index), count).float()
    attributes = model.attribute_vector(None)
    images = recon.clone()
    alphas = torch.full((len(labels),), math.nan, dtype=torch.float64)
    with torch.no_grad():
        before = judge(recon[:, :1].float()).argmax(1)
        for step in range(1, steps + 1):
            rendered = model.forward(latents, (1 - step / steps) * start + step / steps * end, attributes).clamp(-1, 1)
            newly = (judge(rendered[:, :1].float()).argmax(1) != before) & alphas.isnan()
            images[newly], alphas[newly] = rendered[newly], step / steps
        images[alphas.isnan()] = rendered[alphas.isnan()]  # never changed: the full counterfactual (alpha 1)
    return [None if math.isnan(a) else a for a in alphas.tolist()], images


def counterfactual_images(model: NoiseToImage, latents: torch.Tensor, labels: torch.Tensor,
                          to_index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(reconstruction, counterfactual) [N, C, R, R] in [-1, 1]: the same latents rendered as the found classes
    and as class ``to_index``."""
    attributes = model.attribute_vector(None)
    with torch.no_grad():
        recon = model.forward(latents, labels, attributes).clamp(-1, 1)
        changed = model.forward(latents, torch.full_like(labels, to_index), attributes).clamp(-1, 1)
    return recon, changed


def changes(target: InversionTarget, recon: torch.Tensor, changed: torch.Tensor) -> tuple[np.ndarray, float, float]:
    """(difference [H, W] in physical units, mean |difference|, changed-area fraction) of one image."""
    mapping = target.mapping
    difference = np.asarray(mapping.to_physical(changed[0, 0].numpy()) - mapping.to_physical(recon[0, 0].numpy()),
                            dtype=np.float32)
    threshold = CHANGE_THRESHOLD * physical_range(target)
    return difference, float(np.abs(difference).mean()), float((np.abs(difference) > threshold).mean())


def physical_range(target: InversionTarget) -> float:
    """The width of the mapping's range in physical units (what [-1, 1] spans)."""
    low, high = (float(target.mapping.to_physical(np.float32(v))) for v in (-1.0, 1.0))
    return abs(high - low)


def judged(judge: Any, images: torch.Tensor, names: tuple[str, ...]) -> list[str]:
    """The judge's predicted class per image."""
    with torch.no_grad():
        return [names[int(i)] for i in judge(images[:, :1].float()).argmax(1)]


def counterfactual_file(run: str | Path, path: str | Path, out: str | Path, to_class: str,
                        config: InversionConfig | None = None, judge_path: str | Path | None = None,
                        progress: bool = True, steer_steps: int = 0) -> dict[str, Any]:
    """``medgan counterfactual``: every input under ``path`` (a file, a DICOM series folder or a folder of images)
    as class ``to_class``; writes the outputs into ``out`` (module docstring). ``steer_steps`` > 0 (with a judge)
    also walks from the found class to ``to_class`` in that many steps until the judge changes its decision.

    Returns:
        The record written as ``counterfactual.json``.

    Raises:
        MedganError: a run without a noise generator, a 3D or unconditional run, an unknown class, a judge that is
            not usable, an unreadable input (one line each, before anything is written).
    """
    from medgan.inference.files import _items
    from medgan.inference.sampling import load_generator
    from medgan.run import check_output_folder

    config = config or InversionConfig()
    config.check()
    if steer_steps < 0 or (steer_steps > 0 and judge_path is None):
        raise ConfigError("--steer takes a number of steps >= 1 and needs --judge (the classifier whose decision "
                          "ends the walk)", judge_path or run)
    check_output_folder(out, "--out")
    model = load_generator(run)
    to_index = check_model(model, to_class)
    judge = None if judge_path is None else load_judge(judge_path, model)
    targets = [target_from_volume(model, read_volume(item, model.config.data.nan_policy)) for item in _items(Path(path))]
    stems = [_stem(t.source, t.slice_index) for t in targets]
    if len(set(stems)) < len(stems):
        raise ConfigError("two inputs would write files of the same name; give them distinct names", path)
    result, quality = invert_targets(model, torch.cat([t.tile for t in targets]), config, None, None, None, progress)
    recon, changed = counterfactual_images(model, result.latents, result.labels, to_index)
    record = counterfactual_record(model, targets, stems, result.labels, quality, recon, changed, to_class, judge)
    record.update(run=str(run), search=config.__dict__, judge=None if judge_path is None else str(judge_path))
    found = None
    if steer_steps > 0:
        alphas, minimal = steer(model, judge, result.latents, result.labels, recon, to_index, steer_steps)
        record["steer"] = steer_record(targets, record["images"], alphas, recon, minimal, steer_steps)
        found = [minimal[k : k + 1] if alpha is not None else None for k, alpha in enumerate(alphas)]
    write_counterfactuals(out, targets, stems, recon, changed, record, run, found)
    return record


def steer_record(targets: list[InversionTarget], images: list[dict[str, Any]], alphas: list[float | None],
                 recon: torch.Tensor, minimal: torch.Tensor, steps: int) -> dict[str, Any]:
    """Adds each image's steering result to its entry; the summary over images."""
    flipped = []
    for k, (target, entry, alpha) in enumerate(zip(targets, images, alphas)):
        entry["steer_alpha"] = alpha
        if alpha is not None:
            _, l1, area = changes(target, recon[k : k + 1], minimal[k : k + 1])
            entry.update(steer_l1_change=l1, steer_changed_area=area)
            flipped.append(entry)
    summary: dict[str, Any] = {
        "steps": steps, "judge_change_rate": len(flipped) / len(images),
        "path": "class weights (1 - alpha) * found class + alpha * --to, alpha = 1/steps .. 1; the walk stops at "
                "the first alpha where the judge's decision differs from its decision on the reconstruction"}
    if flipped:
        summary.update(median_alpha=statistics.median(e["steer_alpha"] for e in flipped),
                       median_changed_area=statistics.median(e["steer_changed_area"] for e in flipped),
                       median_l1_change=statistics.median(e["steer_l1_change"] for e in flipped))
    return summary


def counterfactual_record(model: NoiseToImage, targets: list[InversionTarget], stems: list[str], labels: torch.Tensor,
                          quality: dict[str, np.ndarray], recon: torch.Tensor, changed: torch.Tensor, to_class: str,
                          judge: Any) -> dict[str, Any]:
    """The JSON-ready record: one entry per image and the summaries."""
    names = model.class_names
    before = judged(judge, recon, names) if judge is not None else None
    after = judged(judge, changed, names) if judge is not None else None
    images = []
    for k, (target, stem) in enumerate(zip(targets, stems)):
        _, l1, area = changes(target, recon[k : k + 1], changed[k : k + 1])
        entry = {"name": stem, "input": str(target.source), "slice": target.slice_index,
                 "source_class": names[int(labels[k])], "ssim": float(quality["ssim"][k]),
                 "psnr_db": float(quality["psnr"][k]), "l1_change": l1, "changed_area": area,
                 "unit": target.mapping.unit, "threshold": CHANGE_THRESHOLD * physical_range(target)}
        if judge is not None:
            entry.update(judge_before=before[k], judge_after=after[k])
        images.append(entry)
    record: dict[str, Any] = {
        "to_class": to_class, "classes": list(names), "images": images,
        "median_changed_area": statistics.median(e["changed_area"] for e in images),
        "median_l1_change": statistics.median(e["l1_change"] for e in images),
        "measures": f"SSIM/PSNR: reconstruction vs input (display scale, medgan.metrics.image); l1_change: mean "
                    f"|counterfactual - reconstruction| in physical units; changed_area: fraction of pixels where that "
                    f"difference exceeds {CHANGE_THRESHOLD:.0%} of the intensity mapping's range (threshold, in "
                    f"physical units)",
    }
    if judge is not None:
        record["judge_class_change_rate"] = float(np.mean([b != a for b, a in zip(before, after)]))
        record["judge_to_class_rate"] = float(np.mean([a == to_class for a in after]))
    return record


def write_counterfactuals(out: str | Path, targets: list[InversionTarget], stems: list[str], recon: torch.Tensor,
                          changed: torch.Tensor, record: dict[str, Any], run: str | Path,
                          minimal: list[torch.Tensor | None] | None = None) -> list[Path]:
    """Writes every image's files, ``counterfactual.json`` and ``DATA_CARD.json`` into ``out``, all or nothing;
    ``minimal``: per image the minimal counterfactual of ``--steer`` (None: none found, nothing written)."""
    from medgan.card import CARD_NAME, card_text, export_card, sealed
    from medgan.export.common import all_or_nothing

    out = Path(out)
    card = export_card(run, {"command": "medgan counterfactual", "to_class": record["to_class"], "note": NOTE})
    with all_or_nothing(out) as batch:
        for k, (target, stem) in enumerate(zip(targets, stems)):
            _write_one(batch, out, target, stem, recon[k : k + 1], changed[k : k + 1])
            if minimal is not None and minimal[k] is not None:
                _write_image(out, target, stem, minimal[k], "minimal")
        batch.write_text("counterfactual.json", json.dumps(record, indent=2, allow_nan=False) + "\n")
        batch.write_text(CARD_NAME, card_text(sealed(card)))
        return list(batch.written)


def _write_one(batch: Any, out: Path, target: InversionTarget, stem: str, recon: torch.Tensor,
               changed: torch.Tensor) -> None:
    difference, _, _ = changes(target, recon, changed)
    _write_image(out, target, stem, changed, "counterfactual")
    if target.kind == "nifti":
        _write_difference_nifti(batch, f"{stem}_change.nii.gz", difference, target.spacing,
                                b"medgan counterfactual: counterfactual - reconstruction")
    else:
        with batch.file(f"{stem}_change.npy") as temporary:
            np.save(temporary, difference)
    with batch.file(f"{stem}_preview.png") as temporary:
        temporary.write_bytes(_preview(target, recon, changed))


def _write_image(out: Path, target: InversionTarget, stem: str, image: torch.Tensor, suffix: str) -> None:
    """One generated image [1, C, R, R] as ``NAME_<suffix>`` in the input's format family, marked SYNTHETIC."""
    from medgan.export import write_nifti, write_npy, write_png

    if target.kind == "nifti":
        write_nifti(image, out / f"{stem}_{suffix}.nii.gz", target.mapping, target.spacing, dtype="float32")
    elif target.kind == "png16":
        write_png(image, out / stem, 16, target.mapping, f"{stem}_{suffix}", target.spacing)
    else:
        write_npy(image, out / f"{stem}_{suffix}.npy", target.mapping, target.spacing)


def _preview(target: InversionTarget, recon: torch.Tensor, changed: torch.Tensor) -> bytes:
    """PNG: input | reconstruction | counterfactual | signed difference (0 grey; +-1 at half the mapping's range)."""
    from medgan.visuals import image_grid, png_bytes

    difference = (changed - recon).clamp(-1, 1)  # model units: half the range -> full scale
    row = torch.cat([target.tile[:1, :1], recon[:, :1], changed[:, :1], difference[:, :1]])
    return png_bytes(image_grid(row, columns=4), scale=4)
