"""What ``medgan evaluate`` and ``medgan demo`` do with a noise-to-image run: its samples against real images
(``medgan.evaluation.evaluate``), and per-class sample grids."""

from __future__ import annotations

from pathlib import Path

from medgan.card import CARD_NAME
from medgan.training.tasks.base import EvaluationRequest

EVALUATION_SEED = 0  # noise of the sampled volumes
HELD_OUT_VOLUMES = 16  # held-out cohort subjects a 3D demo is evaluated against


def evaluate_samples(run_dir: str | Path, request: EvaluationRequest) -> str:
    """Fidelity, diversity and memorization of the run's samples against ``request.real`` (a report)."""
    from medgan.errors import ConfigError
    from medgan.evaluation.evaluate import evaluate, format_metrics

    request.refuse(("--direction", "--inputs", "--compare"), "is for modality-translation runs (unpaired, or "
                   "paired with --domain-a)", run_dir)
    if request.real is None:
        raise ConfigError("--real is required: the real images to compare the samples with", run_dir)
    from medgan.inference.sampling import load_generator

    loaded = load_generator(run_dir)
    if loaded.spec.dims == 3:
        return _evaluate_volumes(run_dir, loaded, request)
    metrics = evaluate(request.real, run_dir, request.out, features=request.features, train=request.train,
                       progress=request.progress, max_images=request.max_images, real_images=request.real_images,
                       members=request.members, non_members=request.non_members)
    out = Path(request.out)
    return format_metrics(metrics, f"wrote {out / 'metrics.json'}, {out / 'report.html'} and {CARD_NAME}")


def _evaluate_volumes(run_dir: str | Path, loaded, request: EvaluationRequest) -> str:
    """A 3D run: as many sampled volumes as real ones (at most ``--max-images``), scored by
    ``medgan.evaluation.volumes`` on cubes of the run's side with the run's intensity settings."""
    import tempfile

    import numpy as np

    from medgan.evaluation.volume_inputs import count_volumes
    from medgan.evaluation.volumes import evaluate_volumes, format_volume_metrics

    request.refuse(("--members", "--non-members"), "is for 2D runs (the membership audit scores slices)", run_dir)
    side, data = loaded.spec.resolution, loaded.config.data
    count = count_volumes(request.real)  # headers only: evaluate_volumes reads the volumes once
    count = min(count, request.max_images or count)
    volumes = loaded.generate(count, seed=EVALUATION_SEED)
    with tempfile.TemporaryDirectory(prefix="medgan-volumes-") as folder:
        stack = Path(folder) / "samples.npy"  # model units: read back as they are (no intensity mapping)
        np.save(stack, volumes[:, 0].numpy())
        metrics = evaluate_volumes(request.real, stack, request.out, features=request.features, train=request.train,
                                   resolution=side, data_config=data, progress=request.progress,
                                   max_volumes=request.max_images, real_images=request.real_images)
    out = Path(request.out)
    return format_volume_metrics(metrics, f"wrote {out / 'metrics.json'}, {out / 'report.html'} and {CARD_NAME} "
                                          f"({count} volumes sampled from {run_dir})")


def volume_showcase(run_dir: str | Path, progress: bool = True) -> list[str]:
    """For a 3D run trained on the ``mni152-cohort`` source: ``HELD_OUT_VOLUMES`` held-out subjects written to
    ``held-out/`` (NIfTI, marked synthetic), the run evaluated against them into ``evaluation/``, and four sampled
    volumes as NIfTI in ``samples/volumes/``. Other runs: nothing (an empty list)."""
    from medgan.data.cohort import HELD_OUT, write_mni_cohort
    from medgan.inference.sampling import load_generator, write_samples

    run_dir = Path(run_dir)
    loaded = load_generator(run_dir)
    if loaded.spec.dims != 3:
        return []
    lines = []
    samples = run_dir / "samples" / "volumes"
    write_samples(loaded.generate(4, seed=EVALUATION_SEED), loaded, samples, "nifti")
    lines.append(f"sampled volumes : {samples} (NIfTI, {loaded.spacing[0]:.3g} mm voxels)")
    if loaded.config.data.source == "mni152-cohort":
        held_out = run_dir / "held-out"
        write_mni_cohort(held_out, HELD_OUT_VOLUMES, first=HELD_OUT)
        request = EvaluationRequest(out=run_dir / "evaluation", real=str(held_out), progress=progress)
        lines.insert(0, evaluate_samples(run_dir, request))
        lines.append(f"held-out evaluation: {run_dir / 'evaluation' / 'report.html'} ({HELD_OUT_VOLUMES} held-out "
                     "subjects of the synthetic cohort)")
    return [*lines, f"sample more with: medgan sample --run {run_dir} --n 16 --out {run_dir}/exported"]


def class_grids(run_dir: str | Path) -> list[str]:
    """Sixteen samples of each class of a conditional run as ``samples/class_<name>.png`` (none without classes)."""
    from medgan.inference.sampling import generate, load_generator
    from medgan.visuals import save_grid

    run_dir = Path(run_dir)
    loaded = load_generator(run_dir)
    lines = []
    for index, class_name in enumerate(loaded.class_names):
        images, _ = generate(run_dir, 16, seed=index, class_name=class_name, loaded=loaded)
        path = save_grid(images, run_dir / "samples" / f"class_{class_name}.png", columns=8, scale=2)
        lines.append(f"class {class_name:<13} : {path}")
    return [*lines, f"sample more with: medgan sample --run {run_dir} --n 16 --out {run_dir}/exported"]
