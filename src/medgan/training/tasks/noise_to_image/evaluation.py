"""What ``medgan evaluate`` and ``medgan demo`` do with a noise-to-image run: its samples against real images
(``medgan.evaluation.evaluate``), and per-class sample grids."""

from __future__ import annotations

from pathlib import Path

from medgan.card import CARD_NAME
from medgan.training.tasks.base import EvaluationRequest


def evaluate_samples(run_dir: str | Path, request: EvaluationRequest) -> str:
    """Fidelity, diversity and memorization of the run's samples against ``request.real`` (a report)."""
    from medgan.errors import ConfigError
    from medgan.evaluation.evaluate import evaluate, format_metrics

    request.refuse(("--direction", "--inputs", "--compare"), "is for modality-translation runs (unpaired, or "
                   "paired with --domain-a)", run_dir)
    if request.real is None:
        raise ConfigError("--real is required: the real images to compare the samples with", run_dir)
    metrics = evaluate(request.real, run_dir, request.out, features=request.features, train=request.train,
                       progress=request.progress, max_images=request.max_images, real_images=request.real_images,
                       members=request.members, non_members=request.non_members)
    out = Path(request.out)
    return format_metrics(metrics, f"wrote {out / 'metrics.json'}, {out / 'report.html'} and {CARD_NAME}")


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
