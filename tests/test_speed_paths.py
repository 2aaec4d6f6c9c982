"""Speed paths: the automatic training thread count (given fake loads) and the fast sampling copy (same images)."""

import pytest
import torch
from torch import nn

from medgan.training.tasks import recipe
from medgan.inference.noise import inference_copy
from medgan.networks import build_generator
from medgan.training import threads as threads_module
from medgan.training.threads import OtherLoad, TrainingThreads, busy_cpu_seconds, pick_threads


@pytest.mark.parametrize("cores, other, ceiling, expected", [
    (2, 0.0, 2, 2),  # idle machine: every core
    (2, 0.3, 2, 2),  # light background work: still both
    (2, 0.67, 2, 1),  # one busy competitor seen while sharing 2 cores with 2 training threads
    (2, 1.0, 2, 1),  # one busy competitor
    (2, 7.5, 2, 1),  # an overloaded machine: never fewer than one thread
    (16, 4.0, 8, 8),  # never more than the caller's (torch's) thread count
    (16, 10.2, 16, 6),
    (1, 0.0, 4, 1),  # never more than the cores this process may use
])
def test_pick_threads(cores, other, ceiling, expected):
    assert pick_threads(cores, other, ceiling) == expected


def test_busy_cpu_seconds_reads_proc_stat_over_the_allowed_cpus(tmp_path):
    stat = tmp_path / "stat"
    ticks = threads_module.os.sysconf("SC_CLK_TCK")
    stat.write_text(f"cpu  {5 * ticks} 0 0 {9 * ticks} 0 0 0 0 0 0\n"
                    f"cpu0 {2 * ticks} 0 {ticks} {4 * ticks} {ticks} 0 0 0 0 0\n"
                    f"cpu1 {ticks} {ticks} 0 {5 * ticks} 0 0 0 {ticks} 0 0\n"
                    "intr 12345 0 0\n")
    assert busy_cpu_seconds({0}, stat) == pytest.approx(3.0)  # user + system; idle and iowait are not busy
    assert busy_cpu_seconds({1}, stat) == pytest.approx(3.0)  # user + nice + steal
    assert busy_cpu_seconds(None, stat) == pytest.approx(6.0)
    assert busy_cpu_seconds(None, tmp_path / "missing") is None


def test_other_load_subtracts_this_process(monkeypatch):
    load = OtherLoad()
    load.last = (100.0, 10.0, 50.0)  # wall, own CPU, busy CPU of all allowed cores
    monkeypatch.setattr(load, "_reading", lambda: (102.0, 11.5, 54.0))
    assert load() == pytest.approx(54.0 / 2 - 50.0 / 2 - 1.5 / 2)  # 2.0 cores busy, 0.75 of them this process


def test_automatic_threads_follow_the_load_and_are_restored(monkeypatch):
    monkeypatch.setattr(threads_module, "available_cores", lambda: 4)
    loads = iter([0.0, 2.0, 3.6, 0.2])
    before = torch.get_num_threads()
    torch.set_num_threads(4)
    try:
        with TrainingThreads(0, load=lambda: next(loads), every=0.0) as chosen:  # the first look: idle
            seen = [torch.get_num_threads()] + [chosen.update() for _ in range(3)]
            assert chosen.changes == 3
        assert seen == [4, 2, 1, 4]
        assert torch.get_num_threads() == 4
        with TrainingThreads(3, load=lambda: 9.0, every=0.0) as fixed:  # a fixed count ignores the load
            assert fixed.update() == 3
        assert torch.get_num_threads() == 4
    finally:
        torch.set_num_threads(before)


def test_automatic_threads_look_once_then_wait_for_the_next_check(monkeypatch):
    monkeypatch.setattr(threads_module, "available_cores", lambda: 2)
    before = torch.get_num_threads()
    calls = []
    try:
        torch.set_num_threads(2)
        with TrainingThreads(0, load=lambda: calls.append(1) or 1.0, every=3600.0) as chosen:
            assert torch.get_num_threads() == 1  # a busy competitor seen before the first step
            chosen.update()
        assert calls == [1] and torch.get_num_threads() == 2
        torch.set_num_threads(1)  # one thread allowed: nothing to measure
        with TrainingThreads(0, load=lambda: calls.append(1) or 0.0) as chosen:
            assert chosen.update() == 1
        assert calls == [1]
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("values, automatic", [
    ({"steps": 4}, False),  # a few steps (the tests' runs) keep torch's count: exactly reproducible
    ({"steps": 5000}, True),
    ({"steps": 0, "minutes": 8.0}, True),  # a time budget (demos)
    ({"steps": 50, "cpu_minutes": 1.0}, True),
    ({"steps": 5000, "threads": 2}, True),  # a fixed count is always applied
])
def test_which_runs_choose_their_threads(values, automatic):
    from medgan.config import from_dict

    chosen = TrainingThreads.for_run(from_dict({"train": values}).train)
    assert chosen.automatic is automatic and chosen.requested == values.get("threads", 0)


def trained_statistics(generator: nn.Module, latent_dim: int, classes: int = 0) -> nn.Module:
    """Moves BatchNorm running statistics and scales away from their initial values, then switches to eval."""
    torch.manual_seed(0)
    for module in generator.modules():
        if isinstance(module, nn.BatchNorm2d):
            nn.init.uniform_(module.weight, 0.5, 1.5)
            nn.init.uniform_(module.bias, -0.2, 0.2)
    with torch.no_grad():
        for _ in range(3):
            generator(torch.randn(16, latent_dim) * 2 + 0.5, torch.arange(16) % classes if classes else None)
    return generator.eval()


@pytest.mark.parametrize("name", ["medgan", "dcgan", "resnet"])
def test_inference_copy_makes_the_same_images(name):
    model = recipe("medgan").model if name == "resnet" else recipe(name).model
    if name == "resnet":
        from dataclasses import replace

        model = replace(model, name="resnet", upsample="transposed")  # as the recipe fits itself to --model resnet
    generator = trained_statistics(build_generator(model, 32, 1, 0, 0), model.latent_dim)
    fast = inference_copy(generator)
    z = torch.randn(8, model.latent_dim)
    with torch.no_grad():
        expected, got = generator(z), fast(z)
    assert torch.allclose(got, expected, atol=1e-5)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules()) or name == "resnet"
    assert generator.training is False and any(isinstance(m, nn.BatchNorm2d) for m in generator.modules())


def test_noise_to_image_samples_match_the_plain_generator(tmp_path):
    from medgan.inference.noise import NoiseToImage

    config = recipe("dcgan")
    generator = trained_statistics(build_generator(config.model, 32, 1, 3, 0), config.model.latent_dim, 3)

    class Spec:
        class_names = ("a", "b", "c")
        attribute_names = ()
        channels, resolution = 1, 32

    loaded = NoiseToImage(generator, config, Spec(), tmp_path / "model.pt")
    images = loaded.generate(70, seed=5)  # two forward passes (64 + 6)
    noise = torch.randn(70, config.model.latent_dim, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = generator(noise, torch.arange(70) % 3)
    assert images.shape == (70, 1, 32, 32) and images.is_contiguous()
    assert torch.allclose(images, expected, atol=1e-5)
    assert torch.equal(loaded.generate(70, seed=5), images)
