"""Evaluation separates a real trained run from the same run stopped early (real training, tiny models)."""

import pytest

from medgan.config import from_dict
from medgan.training.tasks import recipe
from medgan.evaluation.evaluate import evaluate
from medgan.training.loop import train


@pytest.mark.usefixtures("one_thread")
def test_evaluate_orders_a_trained_run_before_an_early_one(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDGAN_CACHE_DIR", str(tmp_path / "cache"))
    base = from_dict({"data": {"source": "mni152", "resolution": 32},
                      "model": {"generator_channels": 16, "discriminator_channels": 16, "latent_dim": 32},
                      "train": {"steps": 5, "log_every": 50, "sample_every": 10**6, "checkpoint_every": 10**6,
                                "eval_every": 0, "ema_start": 20}}, base=recipe("medgan"))
    train(base, tmp_path / "early", progress=False)
    train(from_dict({"train": {"steps": 200}}, base=base), tmp_path / "trained", progress=False)
    scores = {}
    for name in ("early", "trained"):
        metrics = evaluate("mni152", str(tmp_path / name), tmp_path / f"report-{name}", progress=False,
                           max_images=200, data_config=base.data)
        scores[name] = metrics["distribution"]["fid"]
        assert (tmp_path / f"report-{name}" / "report.html").is_file()
    assert scores["trained"] < 0.7 * scores["early"], scores
