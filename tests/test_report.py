"""The HTML report renders in headless Chromium: the page loads and every embedded image decodes."""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from medgan.config import DataConfig
from medgan.evaluation.evaluate import write_outputs
from medgan.metrics.features import OfflineFeatures
from medgan.metrics.suite import compute_metrics

suite_module = importlib.import_module("medgan.metrics.suite")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars")
# Injected into a copy of the report only: counts images that finished decoding once the page has loaded.
PROBE = ("<script>window.addEventListener('load', () => { const images = Array.from(document.images); "
         "document.body.setAttribute('data-images', images.length); "
         "document.body.setAttribute('data-decoded', images.filter(i => i.complete && i.naturalWidth > 0).length); "
         "});</script>")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """A full report (grids, interpolation, curves, histogram, memorization) from MNI slices and noisy copies."""
    from medgan.data import load_slices

    out = tmp_path_factory.mktemp("report")
    slices = load_slices(DataConfig(), progress=False)
    generator = torch.Generator().manual_seed(0)
    fake = (slices.images[torch.randint(len(slices.images), (100,), generator=generator)]
            + 0.04 * torch.randn(100, 1, 64, 64, generator=generator)).clamp(-1, 1)
    fake[:3] = slices.images[10:13]  # a few planted copies for the gallery
    with pytest.MonkeyPatch.context() as patch:  # fewer random pairs: a quicker report, same content
        for name, value in (("SIMILARITY_PAIRS", 60), ("DIVERSITY_PAIRS", 100), ("KID_SUBSETS", 10),
                            ("INTERVAL_RESAMPLES", 30)):
            patch.setattr(suite_module, name, value)
        patch.setenv("MEDGAN_CACHE_DIR", str(out / "cache"))  # never the user's cache
        metrics, artefacts = compute_metrics(slices.images, fake, slices.mapping, OfflineFeatures())
    metrics["inputs"] = {"real": "mni152", "synthetic": "test images", "real_images": len(slices.images),
                         "synthetic_images": len(fake), "resolution": 64, "features": "offline", "feature_dim": 64,
                         "mapping": slices.mapping.to_dict()}
    artefacts.interpolation = slices.images[20:44]
    artefacts.losses = [{"step": step, "loss_d": 1.0 / (1 + step), "loss_g": 1.0 + step / 100}
                        for step in range(0, 100, 10)]
    artefacts.history = [{"step": step, "fid": 50.0 / (1 + step)} for step in (20, 40, 60)]
    write_outputs(out, metrics, artefacts)
    return out / "report.html"


def chromium(*arguments: str, profile: Path, timeout: float = 60.0) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *arguments],
                          capture_output=True, text=True, timeout=timeout, check=False)


def test_report_is_self_contained(report):
    page = report.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r'src="(?!data:image/png;base64,)', page)  # every image is embedded
    assert "<script" not in page and "<link" not in page
    for figure in ("real-grid", "synthetic-grid", "interpolation", "training-curves", "intensity-histogram",
                   "nearest-distribution", "nearest-gallery", "spectrum"):
        assert f'data-figure="{figure}"' in page, figure
    assert 'data-warning="small-n"' in page  # 112 real images: the small-N warning box
    assert re.search(r'<td>FID</td><td class="value">[0-9.]+ <span class="interval">\[[0-9.]+, [0-9.]+\]</span>', page)
    assert "FID" in page and "Better" in page and "How each number is computed" in page


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium(report, tmp_path):
    probe = tmp_path / "probe.html"
    probe.write_text(report.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    dom = chromium("--virtual-time-budget=10000", "--dump-dom", probe.as_uri(), profile=tmp_path / "profile-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    images = int(re.search(r'data-images="(\d+)"', dom.stdout).group(1))
    decoded = int(re.search(r'data-decoded="(\d+)"', dom.stdout).group(1))
    assert images >= 20  # 6 figures plus 16 gallery tiles
    assert decoded == images
    assert "medgan evaluation report" in dom.stdout

    screenshot = tmp_path / "report.png"
    shot = chromium(f"--screenshot={screenshot}", "--window-size=1280,2400", report.as_uri(),
                    profile=tmp_path / "profile-shot")
    assert shot.returncode == 0 and screenshot.is_file(), shot.stderr[-2000:]
    picture = np.asarray(Image.open(screenshot).convert("L"), dtype=np.float64)
    assert picture.shape == (2400, 1280)
    assert picture.std() > 20  # not a blank page: header, tables and figures
    assert (picture[:60] < 80).mean() > 0.5  # the dark header bar is drawn at the top
