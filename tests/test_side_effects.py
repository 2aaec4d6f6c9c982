"""Importing or calling the library changes no process-wide state: environment variables, the matplotlib
backend, torch's thread count and the umask stay as the caller set them (only ``medgan.cli.main`` may set
process options). Checked in a fresh interpreter, since this test process has long imported everything."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

# Runs in a fresh interpreter: sets distinctive process state, imports every medgan module, calls the plotting
# and file-writing functions, then prints what changed (and every os.umask call medgan made) as JSON.
SCRIPT = textwrap.dedent(
    """
    import importlib, json, os, pkgutil, stat, sys, tempfile
    from pathlib import Path

    import matplotlib
    matplotlib.use("svg")  # a headless backend that is not Agg, as a notebook's would be
    import numpy as np
    import torch

    torch.set_num_threads(3)
    os.umask(0o027)
    umask_calls = []
    real_umask = os.umask

    def recording_umask(mask):
        umask_calls.append(oct(mask))
        return real_umask(mask)

    os.umask = recording_umask  # even a set-and-restore is a race with other threads
    environment = dict(os.environ)

    import medgan

    failed = []
    for module in pkgutil.walk_packages(medgan.__path__, "medgan."):
        if module.name.endswith("__main__"):  # running it would start the CLI
            continue
        try:
            importlib.import_module(module.name)
        except ImportError as error:  # a missing optional dependency, not a side effect
            failed.append(f"{module.name}: {error}")

    from medgan.export import export
    from medgan.report import plots
    from medgan.visuals import save_grid, save_loss_curve

    images = torch.linspace(-1, 1, 2 * 8 * 8).reshape(2, 1, 8, 8)
    out = Path(tempfile.mkdtemp())
    log = out / "losses.jsonl"
    log.write_text("".join(json.dumps({"step": s, "loss_d": 1.0 / s, "loss_g": s}) + "\\n" for s in (1, 2, 3)))
    save_loss_curve(log, out / "losses.png")
    grid = save_grid(images, out / "grid.png")
    plots.training_curves_png([{"step": 1, "loss_d": 1.0, "loss_g": 2.0}], [{"step": 1, "fid": 3.0}])
    plots.histogram_png({"centres": [0.0, 1.0], "real": [0.5, 0.5], "synthetic": [0.4, 0.6]}, "HU")
    export(images, out / "png", "png")
    # MONAI's import writes KMP_* and CUBLAS_WORKSPACE_CONFIG into the environment: calls that use it must not.
    from medgan.metrics.image import ssim
    from medgan.networks.translation import PatchDiscriminator, UNetTranslator
    ssim(torch.zeros(2, 1, 16, 16), torch.ones(2, 1, 16, 16))
    UNetTranslator(1, 1, channels=4, depth=2)(images)
    PatchDiscriminator(2, channels=4)
    import medgan.cli
    medgan.cli.build_parser()

    umask = real_umask(0o022)
    print(json.dumps({
        "environment": {key: [environment.get(key), os.environ.get(key)]
                        for key in set(environment) | set(os.environ)
                        if environment.get(key) != os.environ.get(key)},
        "backend": matplotlib.get_backend(),
        "threads": torch.get_num_threads(),
        "umask": oct(umask),
        "umask_calls": umask_calls,
        "modes": {path.name: oct(stat.S_IMODE(path.stat().st_mode)) for path in (grid, out / "png" / "mapping.json")},
        "import_errors": failed,
    }))
    """
)


@pytest.fixture(scope="module")
def changes() -> dict:
    """What the script saw change, run without the OMP_WAIT_POLICY that conftest sets for this process."""
    environment = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=environment, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_every_module_imports(changes):
    assert changes["import_errors"] == []


def test_environment_is_unchanged(changes):
    assert changes["environment"] == {}


def test_matplotlib_backend_is_unchanged(changes):
    assert changes["backend"] == "svg"


def test_torch_thread_count_is_unchanged(changes):
    assert changes["threads"] == 3


def test_umask_is_never_set(changes):
    assert changes["umask"] == oct(0o027)
    assert changes["umask_calls"] == []


def test_written_files_get_ordinary_permissions_under_the_umask(changes):
    # 0o666 less the caller's umask 0o027, as for any file the program creates (not mkstemp's private 0o600).
    assert changes["modes"] == {"grid.png": oct(0o640), "mapping.json": oct(0o640)}
