"""The worked projects behind ``medgan demo``: each trains a task's recipe on embedded data (no download) and
then writes what its task shows first (``Task.showcase``): sample grids per class, or a held-out evaluation
against classic baselines. The demos themselves are registered by the tasks (``medgan.training.tasks.DEMOS``).
"""

from __future__ import annotations

import time
from pathlib import Path

from medgan.config import RunConfig, deep_update
from medgan.training.tasks import DEMOS, TASKS, resolve_config


def demo_config(name: str, minutes: float | None = None, overrides: dict | None = None) -> RunConfig:
    """The resolved config of demo ``name``: the task's recipe, the demo's values, a time budget, ``overrides``.

    Args:
        name: a registered demo (``DEMOS``).
        minutes: training budget (default: the demo's own).
        overrides: further nested config values (e.g. ``{"paired": {"adversarial_weight": 0.0}}`` for a pure-L1
            run of an image-to-image demo).
    """
    demo = DEMOS.get(name)
    minutes = demo.minutes if minutes is None else minutes
    data = {"source": demo.source, **demo.values.get("data", {})}
    train = {**demo.values.get("train", {}), "minutes": minutes, "steps": 0}
    return resolve_config(deep_update({**demo.values, "task": demo.task, "data": data, "train": train},
                                      overrides or {}))


def run_demo(name: str, out: str | Path | None = None, minutes: float | None = None, progress: bool = True) -> Path:
    """Trains demo ``name`` into ``out`` (default ``./medgan-demo-<name>``) and writes its outputs.

    Args:
        name: a registered demo (``DEMOS``).
        out: the run directory.
        minutes: training budget (default: the demo's own).
        progress: progress bars.

    Returns:
        The run directory.
    """
    from medgan.metrics import training_score
    from medgan.run import check_output_folder
    from medgan.training.loop import train

    demo = DEMOS.get(name)
    out = Path(out or f"medgan-demo-{name}")
    check_output_folder(out, "--out")
    config = demo_config(name, minutes)
    print(f"medgan demo ({name}): training the {config.task} recipe on {demo.what} for {config.train.minutes:g} "
          "minutes")
    started = time.monotonic()
    result = train(config, out, progress=progress, scorer=training_score)
    print(result.summary())
    for line in TASKS.get(config.task).showcase(out, progress):
        print(line)
    print(f"demo finished in {time.monotonic() - started:.0f} s")
    return out
