"""Prepared cohorts (medgan prepare): the cache holds what the in-memory pipeline makes, training streams from it,
and stale, unfinished, truncated or foreign caches are one-line errors (or a resumed preparation)."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import TINY, assert_one_error_line, write_tiny_brain
from medgan.config import DataConfig
from medgan.data import load_slices
from medgan.data.cache import CachedTiles, open_cache, prepare_cache, read_manifest
from medgan.data.cache.tiles import STEP, decode, encode
from medgan.errors import DataError


@pytest.fixture
def cohort(tmp_path) -> Path:
    folder = tmp_path / "cohort"
    folder.mkdir()
    for index in range(4):
        write_tiny_brain(folder / f"subject{index}.nii.gz", seed=index)
    return folder


def test_the_16_bit_encoding_loses_less_than_half_a_step():
    tiles = np.linspace(-1, 1, 100_001, dtype=np.float32).reshape(-1, 1, 1, 1)
    stored, encoding = encode(tiles)
    assert stored.dtype == np.uint16 and encoding == "unit16"
    assert np.abs(decode(stored, encoding) - tiles).max() <= STEP / 2 + 1e-7
    labels, kind = encode(np.array([0.0, 2.0, 3.0], dtype=np.float32))  # values beyond [-1, 1] stay exact
    assert kind == "float32" and decode(labels, kind).tolist() == [0.0, 2.0, 3.0]


def test_a_cache_holds_what_the_in_memory_pipeline_makes(cohort, tmp_path):
    config = DataConfig(source=str(cohort), resolution=32, min_foreground=0.05)
    done = prepare_cache(config, tmp_path / "cache", workers=1, progress=False)
    memory, cached = load_slices(config, progress=False), load_slices(DataConfig(source=str(tmp_path / "cache"),
                                                                               resolution=32), progress=False)
    assert (done.subjects, done.tiles, done.written) == (4, len(memory), 4)
    assert isinstance(cached.images, CachedTiles) and cached.images.shape == memory.images.shape
    assert float((cached.images[:] - memory.images).abs().max()) <= STEP / 2 + 1e-6
    assert (cached.subjects, cached.sources) == (memory.subjects, memory.sources)
    assert cached.mapping == memory.mapping and cached.spacing == memory.spacing  # median MR mapping, as in memory
    rows = torch.tensor([5, 0, 9])
    assert torch.allclose(cached.images[rows], memory.images[rows], atol=STEP)
    assert torch.allclose(cached.subset([3, 1]).images[:], memory.images[[3, 1]], atol=STEP)
    manifest = read_manifest(tmp_path / "cache")
    assert manifest["preprocessing"]["resolution"] == 32 and len(manifest["source_files"]) == 4
    assert all(len(entry["sha256"]) == 64 for entry in manifest["source_files"].values())


def test_an_interrupted_preparation_resumes_and_a_changed_source_is_refused(cohort, tmp_path):
    config = DataConfig(source=str(cohort), resolution=32, min_foreground=0.05)
    cache = tmp_path / "cache"
    prepare_cache(config, cache, workers=1, progress=False)
    (cache / "manifest.json").unlink()  # as if killed before the end: two subjects written, two not
    for folder in sorted((cache / "subjects").iterdir())[2:]:
        for file in folder.iterdir():
            file.unlink()
        folder.rmdir()
    with pytest.raises(DataError, match="never finished"):
        open_cache(cache)
    assert prepare_cache(config, cache, workers=1, progress=False).written == 2  # the other two were kept
    assert len(open_cache(cache)) == len(load_slices(config, progress=False))
    source = cohort / "subject1.nii.gz"
    source.write_bytes(source.read_bytes() + b"\0")
    with pytest.raises(DataError, match="subject1.nii.gz changed since this cache was prepared"):
        open_cache(cache)
    assert prepare_cache(config, cache, workers=1, progress=False).written == 1  # only the changed subject


def test_truncated_foreign_and_mismatched_caches_are_refused(cohort, tmp_path):
    config = DataConfig(source=str(cohort), resolution=32, min_foreground=0.05)
    cache = tmp_path / "cache"
    prepare_cache(config, cache, workers=1, progress=False)
    with pytest.raises(DataError, match="holds 32 px tiles, the run asks for 64"):
        open_cache(cache, DataConfig(source=str(cache), resolution=64))
    array = cache / "subjects" / "000002" / "images.npy"
    os.truncate(array, array.stat().st_size - 100)
    with pytest.raises(DataError, match="truncated or corrupt"):
        open_cache(cache)
    manifest = json.loads((cache / "manifest.json").read_text())
    (cache / "manifest.json").write_text(json.dumps({**manifest, "medgan": "0.0.1"}))
    with pytest.raises(DataError, match="prepared by medgan 0.0.1"):
        open_cache(cache)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="holds no medgan cache"):
        prepare_cache(config, tmp_path / "other", progress=False)


def test_prepare_and_train_from_the_cache_through_the_cli(cohort, tmp_path, capsys):
    from medgan.cli import main
    from medgan.run import RunDir

    cache = tmp_path / "cache"
    assert main(["prepare", "--data", str(cohort), "--out", str(cache), "--resolution", "32", "--set",
                 "data.min_foreground=0.05", "--workers", "2", "--quiet"]) == 0
    assert "prepared" in capsys.readouterr().out
    assert main(["info", str(cache)]) == 0
    described = capsys.readouterr().out
    assert "prepared cohort" in described and "4 subjects" in described
    run = tmp_path / "run"
    assert main(["train", "--data", str(cache), "--out", str(run), "--steps", "2", *TINY]) == 0
    saved = RunDir(run).read_config().data
    assert saved.source == str(cache) and saved.min_foreground == 0.05 and saved.resolution == 32  # the cache's
    code = main(["train", "--data", str(cache), "--out", str(tmp_path / "bad"), "--steps", "2", *TINY,
                 "--set", "data.window=brain"])
    assert_one_error_line(code, capsys, "data.window is 'brain' here but the cache was prepared with 'abdomen'")
    assert not (tmp_path / "bad").exists()
    assert main(["evaluate", "--real", str(cache), "--fake", str(run), "--out", str(tmp_path / "eval"),
                 "--max-images", "8", "--quiet"]) == 0
    code = main(["prepare", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "new-cache"), "--quiet"])
    assert_one_error_line(code, capsys, "missing", "no such file or folder")
    assert not (tmp_path / "new-cache").exists()  # bad input leaves nothing behind


def test_paired_and_conditional_data_train_from_a_cache(cohort, tmp_path):
    from medgan.training.loop import train
    from medgan.training.tasks import resolve_config

    paired = DataConfig(source="mni152", resolution=32, degrade="downsample:2")
    prepare_cache(paired, tmp_path / "paired", progress=False)
    data = load_slices(DataConfig(source=str(tmp_path / "paired"), resolution=32), progress=False)
    assert isinstance(data.aligned["input"], CachedTiles) and data.degradation
    config = resolve_config({"task": "paired", "data": {"source": str(tmp_path / "paired")},
                             "model": {"generator_channels": 8, "discriminator_channels": 8, "depth": 2},
                             "train": {"steps": 2, "batch_size": 4, "eval_every": 0, "threads": 1}})
    assert config.data.degrade == "downsample:2"  # the cache's options are the run's
    train(config, tmp_path / "paired-run", progress=False)
    labels = cohort / "labels.csv"
    labels.write_text("file,label,age\n" + "".join(f"subject{i}.nii.gz,{'ab'[i % 2]},{50 + i}\n" for i in range(4)))
    prepare_cache(DataConfig(source=str(cohort), resolution=32, min_foreground=0.05, labels=str(labels)),
                  tmp_path / "labelled", workers=1, progress=False)
    labelled = open_cache(tmp_path / "labelled")
    assert labelled.class_names == ("a", "b") and labelled.attribute_names == ("age",)
    assert labelled.labels.tolist() == [int(s[-1]) % 2 for s in labelled.subjects]
    config = resolve_config({"task": "conditional", "data": {"source": str(tmp_path / "labelled")},
                             "model": {"generator_channels": 4, "discriminator_channels": 4, "latent_dim": 8},
                             "train": {"steps": 2, "batch_size": 4, "eval_every": 0, "threads": 1}})
    train(config, tmp_path / "conditional-run", progress=False)


def test_a_folder_of_many_volumes_prepares_itself_once_for_training(cohort, tmp_path, monkeypatch, capsys):
    from medgan.data.cache import auto
    from medgan.training.tasks import TASKS, resolve_config

    monkeypatch.setattr(auto, "AUTO_SUBJECTS", 3)
    monkeypatch.setenv("MEDGAN_CACHE", str(tmp_path / "home-cache"))
    config = resolve_config({"data": {"source": str(cohort), "resolution": 32, "min_foreground": 0.05}})
    first = TASKS.get(config.task).load_data(config, progress=False)
    assert "prepared 4 subjects" in capsys.readouterr().err and isinstance(first.images, CachedTiles)
    assert len(list((tmp_path / "home-cache" / "cohorts").iterdir())) == 1
    again = TASKS.get(config.task).load_data(config, progress=False)  # from the cache: nothing prepared
    assert capsys.readouterr().err == "" and again.subjects == first.subjects
    small = resolve_config({"data": {"source": str(cohort), "resolution": 32, "min_foreground": 0.05}})
    monkeypatch.setattr(auto, "AUTO_SUBJECTS", 5)  # fewer volumes than that: read into memory as before
    assert isinstance(TASKS.get(small.task).load_data(small, progress=False).images, torch.Tensor)


def test_unpaired_modalities_and_private_runs_train_from_caches(tmp_path):
    """Each unpaired domain from its own cache, several input modalities in one paired cache, DP from a cache."""
    from medgan.training.loop import train
    from medgan.training.tasks import resolve_config

    tiny = {"model": {"generator_channels": 4, "discriminator_channels": 4, "depth": 2, "latent_dim": 8},
            "train": {"steps": 2, "batch_size": 4, "eval_every": 0, "threads": 1}}
    for name in ("phantom-t1", "phantom-ct"):
        prepare_cache(DataConfig(source=name, resolution=32), tmp_path / name, progress=False)
    unpaired = resolve_config({"task": "unpaired", "data": {"source": str(tmp_path / "phantom-ct"),
                                                            "domain_a": [str(tmp_path / "phantom-t1")]}, **tiny})
    assert train(unpaired, tmp_path / "unpaired-run", progress=False).steps == 2
    modalities = DataConfig(source="phantom-ct", domain_a=("phantom-t1", "phantom-t2"), resolution=32)
    prepare_cache(modalities, tmp_path / "modalities", progress=False)
    assert set(open_cache(tmp_path / "modalities").aligned) == {"input", "input2"}
    paired = resolve_config({"task": "paired", "data": {"source": str(tmp_path / "modalities")}, **tiny})
    assert paired.data.domain_a == ("phantom-t1", "phantom-t2")
    train(paired, tmp_path / "paired-run", progress=False)
    private = resolve_config({**tiny, "data": {"source": str(tmp_path / "phantom-t1")}, "privacy": {"noise": 1.0},
                              "model": {**tiny["model"], "minibatch_std": False}})
    assert train(private, tmp_path / "private-run", progress=False).steps == 2


def test_a_demo_trains_from_a_prepared_cache(tmp_path):
    from dataclasses import replace

    from medgan.demos import demo_config
    from medgan.training.loop import train

    config = demo_config("brain")
    prepare_cache(config.data, tmp_path / "cache", progress=False)
    config = demo_config("brain", overrides={"data": {"source": str(tmp_path / "cache")}})
    config = replace(config, train=replace(config.train, steps=2, minutes=0.0, eval_every=0, batch_size=8))
    assert train(config, tmp_path / "run", progress=False).steps == 2
