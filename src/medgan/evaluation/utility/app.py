"""The ``medgan utility`` application: a class-conditional run and labelled real data in, the three-arm experiment
(``protocol.run_utility``) run, ``metrics.json``, ``utility.html`` and ``judge.pt`` written out.

``judge.pt`` is the real arm's first classifier (trained on the real training patients only) as TorchScript:
``[N, C, R, R]`` images in [-1, 1] (the run's intensity mapping) to class logits in the run's class order, the
judge ``medgan counterfactual --judge`` takes.
"""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from medgan.data import SliceSet, load_slices
from medgan.errors import ConfigError, MedganError
from medgan.evaluation.utility.config import UtilityConfig
from medgan.evaluation.utility.protocol import run_utility, split_real
from medgan.evaluation.utility.report import utility_html
from medgan.evaluation.utility.selection import acceptance_rate, select_consistent
from medgan.run import check_output_folder
from medgan.utils import atomic_write_files


def synthetic_set(run_dir: str | Path, per_class: int, seed: int, loaded: Any = None) -> SliceSet:
    """A labelled SliceSet of ``per_class`` samples of every class of a conditional run.

    Args:
        run_dir: a class-conditional run directory.
        per_class: images generated per class.
        seed: noise seed of the first class; class i uses ``seed + i``.
        loaded: the run's ``medgan.inference.sampling.load_generator`` result, when the caller already has it.

    Raises:
        ConfigError: the run is not class-conditional.
    """
    from medgan.inference.noise import check_sample_count
    from medgan.inference.sampling import generate, load_generator  # imported here: sampling pulls in the training stack

    loaded = loaded if loaded is not None else load_generator(run_dir)
    if not loaded.class_names:
        raise ConfigError("the synthetic run is not class-conditional; train it with --task conditional", run_dir)
    check_sample_count(per_class * len(loaded.class_names), loaded.spec.resolution, "--per-class times the classes")
    images, labels = [], []
    for index, name in enumerate(loaded.class_names):
        batch, _ = generate(run_dir, per_class, seed=seed + index, class_name=name, loaded=loaded)
        images.append(batch)
        labels.append(torch.full((per_class,), index, dtype=torch.int64))
    count = per_class * len(loaded.class_names)
    return SliceSet(images=torch.cat(images), mapping=loaded.mapping, spacing=loaded.spacing,
                    subjects=[f"synthetic-{i}" for i in range(count)], sources=["synthetic"] * count,
                    labels=torch.cat(labels), class_names=loaded.class_names)


JUDGE_NAME = "judge.pt"


def scripted_bytes(model: torch.nn.Module) -> bytes:
    """``model`` (in eval mode, on the CPU, contiguous weights) as the bytes of a TorchScript file."""
    model = model.eval().to("cpu", memory_format=torch.contiguous_format)
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(model), buffer)
    return buffer.getvalue()


def run_utility_app(synthetic_run: str | Path, real: str | None, test: str | None, out: str | Path,
                    config: UtilityConfig = UtilityConfig(), per_class: int = 0,
                    progress: bool = True, select: int = 0, real_labels: str | None = None,
                    test_labels: str | None = None) -> dict[str, Any]:
    """Runs the utility experiment of a conditional run and writes ``out/metrics.json``, ``out/utility.html`` and
    ``out/judge.pt``.

    Args:
        synthetic_run: a class-conditional run directory (the synthetic images are sampled from it).
        real: labelled real data, read with the run's data config; None = the run's own training data.
        test: separate labelled real test data; None or "" = a patient-level split of ``real``.
        out: output folder (created); ``metrics.json``, ``utility.html`` and ``judge.pt`` are written all or
            nothing.
        config: classifier and summary settings; ``config.seed`` also seeds the synthetic samples.
        per_class: synthetic images per class; 0 = as many as the largest real class.
        progress: progress bars.
        select: 0 = the samples as generated; K > 0 = generate K times as many per class and keep those that a
            classifier trained on the real training images (never the test images) assigns to their requested
            class (``selection.select_consistent``); the counts go into the result's ``selection``.
        real_labels: labels CSV of ``real`` (default: the run's ``data.labels``).
        test_labels: labels CSV of ``test`` (default: the run's ``data.labels``).

    Returns:
        ``run_utility``'s result plus ``test_seen_by_generator`` (True when the test patients were split off the
        run's own training data), as written under ``"utility"`` in ``metrics.json``.

    Raises:
        MedganError: not a conditional run, unlabelled real data, unreadable data or an invalid config value.
    """
    from medgan.inference.sampling import load_generator  # imported here: sampling pulls in the training stack

    out = Path(out)
    check_output_folder(out, "--out")  # before the slow part
    config.validate()
    loaded = load_generator(synthetic_run)
    data_config = loaded.config.data
    if real is not None:
        data_config = replace(data_config, source=real, labels=real_labels or data_config.labels)
    real_set = load_slices(data_config, progress=progress)
    test_set = None
    if test:
        test_config = replace(data_config, source=test, labels=test_labels or loaded.config.data.labels)
        test_set = load_slices(test_config, progress=progress)
    if real_set.labels is None:
        raise MedganError("the real data has no class labels (use a labelled source, layout or labels CSV)",
                          data_config.source)
    if test_set is not None and test_set.labels is None:
        raise MedganError("the test data has no class labels (give its labels CSV with --test-labels)", test)
    per_class = per_class or int(real_set.labels.bincount().max())
    selection = None
    if select:
        if test_set is None:  # split here, so that the judge never sees the test patients
            real_set, test_set = split_real(real_set, config.test_fraction, config.seed)
        pool = synthetic_set(synthetic_run, per_class * select, config.seed, loaded=loaded)
        synthetic, selection = select_consistent(real_set, pool, per_class, config, seed=config.seed)
        selection["acceptance"] = acceptance_rate(selection)
    else:
        synthetic = synthetic_set(synthetic_run, per_class, config.seed, loaded=loaded)
    judge: dict[str, Any] = {}

    def keep_judge(arm: str, seed: int, model: torch.nn.Module, metrics: dict[str, Any]) -> None:
        if arm == "real" and not judge:
            judge.update(model=model, seed=seed, balanced_accuracy=metrics["balanced_accuracy"])

    result = run_utility(real_set, test_set, synthetic, config, progress=progress, on_model=keep_judge)
    result["judge"] = {"file": JUDGE_NAME, "arm": "real", "seed": judge["seed"],
                       "balanced_accuracy": judge["balanced_accuracy"],
                       "input": "[N, C, R, R] in [-1, 1] (the run's intensity mapping)",
                       "output": "class logits in class_names order"}
    if selection is not None:
        result["selection"] = selection
    # Without a test set the test patients are split off the run's own training data: the GAN has seen them.
    result["test_seen_by_generator"] = not test and not real
    page = f"<!doctype html><meta charset='utf-8'><title>medgan utility</title><body>{utility_html(result)}</body>"
    atomic_write_files({out / "metrics.json": json.dumps({"utility": result}, indent=2), out / "utility.html": page,
                        out / JUDGE_NAME: scripted_bytes(judge["model"])})
    return result
