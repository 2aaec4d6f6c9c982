"""Hardening: report.html embeds real (patient) images; it says so visibly at its top, and
``medgan evaluate --no-real-images`` leaves every real image out (the metrics stay) and says that instead."""

import json
import re

import pytest

from medgan.cli import main

REAL_FIGURES = ('data-figure="real-grid"', 'alt="training #')


@pytest.fixture(scope="module")
def reports(tmp_path_factory, tiny_brain, tiny_run):
    """One small evaluation written twice: with real images (default) and with --no-real-images."""
    root = tmp_path_factory.mktemp("privacy")
    outs = {}
    for name, extra in (("with", []), ("without", ["--no-real-images"])):
        outs[name] = root / name
        argv = ["evaluate", "--real", str(tiny_brain), "--fake", str(tiny_run), "--out", str(outs[name]),
                "--max-images", "12", "--quiet", *extra]
        assert main(argv) == 0
    return outs


def banner(page):
    """The text of the first element after <main>: the privacy notice must come before any section."""
    body = page.split("<main>", 1)[1]
    match = re.match(r'\s*<p class="privacy[^"]*"[^>]*>([^<]+)</p>', body)
    assert match, body[:300]
    return match.group(1)


def test_a_report_with_real_images_says_so_at_its_top(reports):
    page = (reports["with"] / "report.html").read_text()
    notice = banner(page)
    assert "real patient images" in notice and "do not share it as is" in notice and "--no-real-images" in notice
    assert all(marker in page for marker in REAL_FIGURES)


def test_no_real_images_leaves_every_real_image_out_and_says_so(reports):
    with_real = (reports["with"] / "report.html").read_text()
    without = (reports["without"] / "report.html").read_text()
    notice = banner(without)
    assert "Real images are left out" in notice and "real patient images" not in notice
    assert not any(marker in without for marker in REAL_FIGURES)
    # The real grid and one training tile per gallery pair are gone; every other image stays.
    pairs = with_real.count('alt="training #')
    assert pairs >= 1
    assert without.count("<img") == with_real.count("<img") - 1 - pairs
    assert without.count("data:image/png;base64,") == with_real.count("data:image/png;base64,") - 1 - pairs


def test_no_real_images_keeps_the_metrics(reports):
    with_real = json.loads((reports["with"] / "metrics.json").read_text())
    without = json.loads((reports["without"] / "metrics.json").read_text())
    for metrics in (with_real, without):
        metrics.pop("timings_s")
    for key in ("real", "synthetic", "train"):  # the shareable copy names no data location (test_hardening_newer)
        assert without["inputs"].pop(key) != with_real["inputs"].pop(key)
    assert without == with_real


def test_near_copies_are_left_out_of_a_shareable_report():
    """A synthetic image the audit flags as a near copy shows a patient: no real images means not it either."""
    import numpy as np
    import torch

    from medgan.metrics.catalog import METRICS
    from medgan.metrics.memorization import MemorizationAudit, NearestNeighbours
    from medgan.metrics.suite import Artefacts
    from medgan.report.html import render_report

    fake = torch.linspace(-1, 1, 4 * 16 * 16).reshape(4, 1, 16, 16)
    real = -fake
    nearest = NearestNeighbours(ssim_index=np.arange(4), ssim=np.array([0.99, 0.2, 0.3, 0.1]),
                                feature_index=np.arange(4), feature_distance=np.zeros(4))
    audit = MemorizationAudit(synthetic=nearest, baseline=nearest, baseline_kind="leave-one-out", threshold=0.95)
    artefacts = Artefacts(real=real, fake=fake, train=real, audit=audit)
    shared = render_report({"memorization": audit.summary()}, artefacts, METRICS, real_images=False)
    private = render_report({"memorization": audit.summary()}, artefacts, METRICS, real_images=True)
    assert "1 near copies of training images left out" in shared and "near copy<br>not shown" in shared
    assert 'alt="synthetic #0"' in private and 'alt="synthetic #0"' not in shared
    assert 'alt="synthetic #1"' in shared
