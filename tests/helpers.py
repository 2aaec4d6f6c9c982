"""Small builders shared by the training and CLI tests."""

import contextlib
import io
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F

TINY = [
    "--resolution", "32", "--batch-size", "8",
    "--set", "model.generator_channels=4", "--set", "model.discriminator_channels=4",
    "--set", "model.latent_dim=8", "--set", "train.log_every=1", "--set", "train.sample_every=2",
    "--set", "train.checkpoint_every=2", "--set", "train.ema_start=1", "--quiet",
]


def write_tiny_brain(path: Path, seed: int = 0) -> Path:
    """A 32 x 32 x 12 NIfTI 'head': an ellipsoid skull ring with a brighter core, 2 mm voxels."""
    rng = np.random.default_rng(seed)
    x, y, z = np.meshgrid(np.linspace(-1, 1, 32), np.linspace(-1, 1, 32), np.linspace(-1, 1, 12), indexing="ij")
    radius = np.sqrt((x / 0.85) ** 2 + (y / 0.95) ** 2 + (z / 1.3) ** 2)
    volume = np.where(radius < 0.95, 300.0, 0.0) + np.where(radius < 0.8, 400.0, 0.0) + rng.normal(0, 5, x.shape)
    volume = np.clip(volume, 0, None).astype(np.float32)
    nib.save(nib.Nifti1Image(volume, np.diag([2.0, 2.0, 2.0, 1.0])), str(path))
    return path


def blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of [N, C, H, W] images with replicate padding (a degradation for metric tests)."""
    radius = int(3 * sigma + 0.5)
    kernel = torch.exp(-torch.arange(-radius, radius + 1.0) ** 2 / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    images = F.conv2d(F.pad(images, (radius, radius, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
    return F.conv2d(F.pad(images, (0, 0, radius, radius), mode="replicate"), kernel.view(1, 1, -1, 1))


def listing(folder: Path) -> list[str]:
    """Every path below ``folder``, relative and sorted: compare before/after to see that nothing was left behind."""
    return sorted(str(path.relative_to(folder)) for path in Path(folder).rglob("*"))


def assert_one_error_line(code: int, capsys, *fragments: str) -> str:
    """Asserts the bad-input contract of a ``medgan.cli.main`` call: exit 2 and exactly one stderr line
    ``error: ...`` containing every fragment, no traceback. Returns the line."""
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def cli(*args) -> subprocess.CompletedProcess:
    """``medgan.cli.main`` in this process, with its exit status and what it printed: the code path of the console
    script (main turns every user error into one line and exit 2) without the seconds a new interpreter spends
    importing torch. The contract in a real process is tested once per kind of command (``test_cli``,
    ``test_cli_surface``, ``test_translate``, ``test_hardening_options``)."""
    from medgan.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(arg) for arg in args])
        except SystemExit as stop:  # argparse
            code = stop.code
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())
