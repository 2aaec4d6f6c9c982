"""The worked projects behind ``medgan demo``: each trains a task's recipe on embedded data (no download)
and writes what a user looks at first: sample grids per class, or a held-out evaluation against classic
baselines for image-to-image demos.
"""

from __future__ import annotations

import time
from pathlib import Path

from medgan.config import RunConfig, deep_update, from_dict, recipe
from medgan.training.tasks import TASKS

DEMOS = {
    # name: (source, task, what the grid shows, config values on top of the task's recipe, default minutes)
    "brain": ("mni152", "unconditional", "axial T1 brain MRI slices (MNI152 template)", {}, 8.0),
    # Lesion classes differ by tens of HU around a 105 HU enhanced liver: the portal liver window (L90 W200)
    # spreads them over twice the grey levels of the abdomen window; the AC-GAN head makes G answer for them;
    # and D's augmentation leaves intensities alone (CT numbers are calibrated: a cyst is water density), so
    # only translation and cutout. Measured in 4-minute runs (judge trained on real ROIs, chance 0.33): 0.32 with
    # 24 ROIs per class in the abdomen window, 0.60 with 60 per class in the portal window, 0.58-0.88 adding
    # the AC head, 0.89 adding the AC head without brightness/contrast augmentation.
    # The ROIs keep the classic flips, rotation/zoom, D width 32 and mode-seeking weight 0.075 that every liver
    # figure in README was measured with (the default changed them after the MNI benchmark, and dropped flips of
    # CT; on lesion ROIs, small crops inside the liver, a mirror shows no impossible anatomy, and the changes are
    # not measured enough).
    "liver": ("ct-lesions", "conditional", "liver lesion CT ROIs per class (simulated phantom)",
              {"data": {"window": "liver-portal", "flip": True, "rotate_degrees": 5.0, "scale": 0.05},
               "model": {"auxiliary_classifier": True, "discriminator_channels": 32},
               "loss": {"mode_seeking": 0.075}, "augment": {"policy": ["translation", "cutout"]}}, 8.0),
    # The phantom renders every training slice at quarter and routine dose (true pairs: the same anatomy,
    # independent noise); G trains on 96 px patches and denoises whole 256 x 256 slices of held-out patients.
    "denoise": ("ct-phantom", "paired", "quarter-dose -> routine-dose CT, 256 x 256 (simulated phantom)",
                {"data": {"degrade": "lowdose:0.25", "resolution": 256, "patch": 96}}, 6.5),
    # x4: anti-aliased downsampling and bicubic upsampling make the input; a slab of axial positions is held out.
    "superres": ("mni152", "paired", "x4 super-resolution of T1 MRI slices, 128 x 128 (MNI152 template)",
                 {"data": {"degrade": "downsample:4", "resolution": 128, "patch": 64}}, 7.0),
    # Unpaired MR -> CT: T1 + T2 (stacked, with availability channels) and CT of disjoint halves of the training
    # patients (data.disjoint), so no pair is ever seen; the wide window keeps air (-1000 HU) and cortical bone
    # (900 HU). Identity loss is off: it needs one modality on each side. Evaluated on held-out patients' true pairs.
    # No identity start (MR intensities are no CT estimate: fat is bright on T1, dark on CT), batch 4 and a constant
    # learning rate: held-out body MAE 101-106 HU with the start off vs 217 HU with it on, at 400-1,500 steps.
    "mr2ct": ("phantom-ct", "unpaired", "T1 + T2 MR -> CT without pairs, 64 x 64 (simulated phantom)",
              {"data": {"domain_a": ["phantom-t1", "phantom-t2"], "window": "body-wide", "resolution": 64},
               "model": {"residual": False}, "loss": {"identity": 0.0}, "optim": {"schedule": "constant"},
               "train": {"batch_size": 4}}, 7.5),
    # Unpaired contrast phases: unenhanced -> portal-venous CT (virtual contrast enhancement), disjoint patients.
    "phases": ("phantom-ct", "unpaired", "unenhanced -> portal-venous CT without pairs, 64 x 64 (simulated phantom)",
               {"data": {"domain_a": ["phantom-ct-unenhanced"], "resolution": 64}}, 6.0),
}


def demo_config(name: str, minutes: float | None = None, overrides: dict | None = None) -> RunConfig:
    """The resolved config of demo ``name``: the task's recipe, the demo's values, a time budget, ``overrides``.

    Args:
        name: a key of ``DEMOS``.
        minutes: training budget (default: the demo's own).
        overrides: further nested config values (e.g. ``{"loss": {"adversarial_weight": 0.0}}`` for a pure-L1
            run of an image-to-image demo).
    """
    source, task, _, values, default_minutes = DEMOS[name]
    minutes = default_minutes if minutes is None else minutes
    data = {"source": source, **values.get("data", {})}
    train = {**values.get("train", {}), "minutes": minutes, "steps": 0}
    merged = deep_update({**values, "task": task, "data": data, "train": train}, overrides or {})
    return from_dict(merged, base=recipe(TASKS.get(task).default_recipe))


def run_demo(name: str, out: str | Path | None = None, minutes: float | None = None, progress: bool = True) -> Path:
    from medgan.metrics import training_score
    from medgan.run import check_output_folder
    from medgan.training.loop import train

    """Trains demo ``name`` into ``out`` (default ``./medgan-demo-<name>``) and writes its outputs.

    Args:
        name: a key of ``DEMOS``.
        out: the run directory.
        minutes: training budget (default: the demo's own).
        progress: progress bars.

    Returns:
        The run directory.
    """
    what = DEMOS[name][2]
    out = Path(out or f"medgan-demo-{name}")
    check_output_folder(out, "--out")
    config = demo_config(name, minutes)
    print(f"medgan demo ({name}): training the {config.task} recipe on {what} for {config.train.minutes:g} minutes")
    started = time.monotonic()
    result = train(config, out, progress=progress, scorer=training_score)
    print(result.summary())
    _demo_outputs(out, progress)
    print(f"demo finished in {time.monotonic() - started:.0f} s")
    return out


def _demo_outputs(out: Path, progress: bool) -> None:
    """Per-class grids of a conditional run, or the held-out evaluation of a paired run."""
    from medgan.evaluation.paired import evaluate_paired, format_paired_table, is_paired_run
    from medgan.evaluation.translation_eval import evaluate_translation, is_translation_run
    from medgan.evaluation.translation_report import format_translation_table
    from medgan.inference.sampling import generate, load_generator
    from medgan.visuals import save_grid

    if is_translation_run(out):  # modalities (unpaired, or paired with input modalities): on held-out true pairs
        print(format_translation_table(evaluate_translation(out, out / "evaluation", progress=progress)))
        print(f"held-out evaluation: {out / 'evaluation' / 'report.html'}; translate your own images with: "
              f"medgan translate --run {out} --input IMAGES --out DIR [--direction b2a]")
        return
    if is_paired_run(out):
        metrics = evaluate_paired(out, None, out / "evaluation", progress=progress)
        print(format_paired_table(metrics))
        print(f"held-out evaluation: {out / 'evaluation' / 'report.html'}; translate your own images with: "
              f"medgan translate --run {out} --input IMAGES --out DIR")
        return
    loaded = load_generator(out)
    for index, class_name in enumerate(loaded.class_names):
        images, _ = generate(out, 16, seed=index, class_name=class_name, loaded=loaded)
        path = save_grid(images, out / "samples" / f"class_{class_name}.png", columns=8, scale=2)
        print(f"class {class_name:<13} : {path}")
    print(f"sample more with: medgan sample --run {out} --n 16 --out {out}/exported")


