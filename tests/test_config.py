"""Config: recipes, YAML and override parsing, type conversion, validation with the offending key named."""

import math

import pytest

from medgan.training.tasks import recipe
from medgan.config import (RunConfig, deep_update, from_dict, load_yaml, parse_overrides, save_yaml,
                           to_dict)
from medgan.errors import ConfigError


def test_recipes_differ_where_the_classic_recipe_says():
    default, classic = recipe("medgan"), recipe("dcgan")
    assert default.model.spectral_norm and not classic.model.spectral_norm
    assert classic.loss.adversarial == "nonsaturating" and classic.augment.policy == ()
    assert classic.train.ema == 0.0 and classic.model.generator_channels == 64
    with pytest.raises(ConfigError, match="unknown recipe 'stylegan'"):
        recipe("stylegan")


def test_overrides_parse_values_as_yaml_and_nest_by_dots():
    values = parse_overrides(["train.steps=10", "optim.betas=[0.0, 0.99]", "augment.policy=translation,cutout",
                              "model.spectral_norm=false"])
    assert values == {"train": {"steps": 10}, "optim": {"betas": [0.0, 0.99]},
                      "augment": {"policy": "translation,cutout"}, "model": {"spectral_norm": False}}
    config = from_dict(values)
    assert config.train.steps == 10 and config.optim.betas == (0.0, 0.99)
    assert config.augment.policy == ("translation", "cutout") and config.model.spectral_norm is False
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_overrides(["steps"])


def test_type_conversion_and_rejection():
    config = from_dict({"optim": {"lr_generator": 1}, "train": {"steps": 4.0, "channels_last": "no"}})
    assert config.optim.lr_generator == 1.0 and isinstance(config.optim.lr_generator, float)
    assert config.train.steps == 4 and config.train.channels_last is False
    for values, key in (({"train": {"steps": 2.5}}, "train.steps"), ({"train": {"steps": True}}, "train.steps"),
                        ({"model": {"spectral_norm": "maybe"}}, "model.spectral_norm"),
                        ({"optim": {"betas": [0.5]}}, "optim.betas"), ({"data": {"source": [1]}}, "data.source")):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            from_dict(values)


def test_unknown_keys_and_wrong_sections_name_the_key():
    with pytest.raises(ConfigError, match="unknown config key 'train.stepz'"):
        from_dict({"train": {"stepz": 1}})
    with pytest.raises(ConfigError, match="'train' must be a mapping"):
        from_dict({"train": 5})


@pytest.mark.parametrize("values, key", [
    ({"data": {"resolution": 48}}, "data.resolution"),
    ({"optim": {"lr_generator": 0}}, "optim.lr_generator"),
    ({"optim": {"betas": [1.0, 0.9]}}, "optim.betas"),
    ({"train": {"steps": 0}}, "train.steps"),  # no step limit needs a time budget
    ({"train": {"ema": 1.0}}, "train.ema"),
    ({"augment": {"probability": 1.5}}, "augment.probability"),
])
def test_validation_names_the_offending_key(values, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        from_dict(values)


def test_a_time_budget_without_a_step_limit_is_valid():
    config = from_dict({"train": {"steps": 0, "minutes": 1.5}})
    assert config.train.steps == 0 and math.isclose(config.train.minutes, 1.5)


def test_yaml_round_trip(tmp_path):
    config = from_dict({"optim": {"betas": [0.0, 0.99]}, "augment": {"policy": ["cutout"]}})
    save_yaml(config, tmp_path / "c.yaml")
    assert from_dict(load_yaml(tmp_path / "c.yaml")) == config
    assert to_dict(RunConfig())["optim"]["betas"] == [0.5, 0.999]
    (tmp_path / "bad.yaml").write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping of sections"):
        load_yaml(tmp_path / "list.yaml")


def test_deep_update_merges_nested_sections():
    merged = deep_update({"train": {"steps": 1, "seed": 2}, "task": "a"}, {"train": {"steps": 5}})
    assert merged == {"train": {"steps": 5, "seed": 2}, "task": "a"}


# ---------------------------------------------------------------------------------------------------------------
# the task's own section


def test_a_tasks_section_is_written_under_its_name_typed_and_checked_by_the_task(tmp_path):
    from medgan.training.tasks import resolve_config

    config = resolve_config({"task": "unpaired", "data": {"domain_a": ["phantom-t1"]}, "unpaired": {"cycle": "5"}})
    assert config.options == {"adversarial_weight": 1.0, "modality_dropout": 0.2, "cycle": 5.0, "identity": 0.5,
                              "pool_size": 50}  # every key, typed (the string "5" became 5.0), defaults filled
    save_yaml(config, tmp_path / "c.yaml")
    text = (tmp_path / "c.yaml").read_text()
    assert "\nunpaired:\n" in text and "options" not in text and "cycle" not in text.split("unpaired:")[0]
    assert from_dict(load_yaml(tmp_path / "c.yaml")) == config
    for values, message in (
            ({"unpaired": {"cyclez": 1}}, "unknown config key 'unpaired.cyclez'"),
            ({"unpaired": {"cycle": -1}}, "config key 'unpaired.cycle' must be >= 0"),
            ({"unpaired": {"pool_size": "many"}}, "config key 'unpaired.pool_size' must be an integer"),
            ({"unpaired": 3}, "config section 'unpaired' must be a mapping"),
            ({"paired": {"patch": 32}}, "unknown config key 'paired'"),  # another task's section
            ({"options": {"cycle": 1}}, "unknown config key 'options'")):
        with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
            resolve_config({"task": "unpaired", "data": {"domain_a": ["phantom-t1"]}, **values})


def test_recipes_belong_to_their_tasks():
    from medgan.training.tasks import RECIPES, recipe, resolve_config

    assert RECIPES.get("cyclegan").tasks == ("unpaired",) and recipe("pix2pix").task == "paired"
    classic = {"mode_seeking": 0.0, "mode_seeking_pool": 1, "spectral": 0.0, "spectral_from": 0.0}
    assert recipe("cyclegan").options["pool_size"] == 50 and recipe("dcgan").options == classic
    # A recipe of the noise-to-image family serves both of its tasks, and keeps its section's values.
    assert resolve_config({"task": "conditional"}, "dcgan").options == {**classic, "auxiliary": 1.0}
    with pytest.raises(ConfigError, match="recipe 'pix2pix' configures task paired, not 'unconditional'"):
        resolve_config({"task": "unconditional"}, "pix2pix")
    with pytest.raises(ConfigError, match="unknown task 'cyclegan'"):
        resolve_config({"task": "cyclegan"})


def test_default_keeps_its_grain_settings_for_2d_dcgan_runs_only():
    """The default's settings against grain (bilinear resize-convolution into the image, mode seeking on 4x-pooled
    images, the spectral term) were measured on 2D slices with its dcgan generator without DP: 3D runs, other
    architectures and DP runs get the values of before, the liver demo keeps the ones its figures were measured with, the user's win."""
    from medgan.training.tasks import DEMOS, resolve_config

    def grain(values, recipe="medgan"):
        config = resolve_config(values, recipe)
        return config.model.upsample, config.options["mode_seeking_pool"], config.options["spectral"]

    assert grain({}) == grain({"task": "conditional"}) == ("bilinear-output", 4, 0.5)
    before = ("transposed", 1, 0.0)
    assert grain({"data": {"source": "mni152-cohort", "dims": 3, "resolution": 32}}) == before
    assert grain({"model": {"name": "resnet"}}) == before
    assert grain({"data": {"source": "mni152-cohort", "dims": "3", "resolution": 32}}) == before  # read as 3
    assert grain({"privacy": {"noise": 1.0}}) == grain({"privacy": {"epsilon": 8.0}, "train": {"steps": 10}}) == before
    assert grain({"task": "conditional", **DEMOS.get("liver").values}) == before
    assert grain({}, "standard") == grain({}, "dcgan") == before
    assert grain({"model": {"name": "resnet"}, "unconditional": {"spectral": 0.2}}) == ("transposed", 1, 0.2)
    assert grain({"model": {"upsample": "nearest-output"}}) == ("nearest-output", 4, 0.5)


@pytest.mark.parametrize("argv, task, message", [
    (["--degrade", "lowdose:0.25"], "paired", None),  # selects its task (it was ignored without --task before)
    (["--domain-a", "phantom-t1"], "unpaired", None),
    (["--task", "paired", "--domain-a", "phantom-t1"], "paired", None),  # declared by both; --task decides
    (["--model", "pix2pix", "--degrade", "mask"], "paired", None),
    (["--patch", "32"], None, "--patch is an option of task paired, not of task 'unconditional'"),
    (["--task", "unpaired", "--input", "x"], None, "--input is an option of task paired, not of task 'unpaired'"),
    (["--degrade", "mask", "--domain-a", "a"], None, "select different tasks (paired, unpaired); give --task"),
    (["--domain-a", "a", "--domain-b", "b", "--data", "c"], None, "--data and --domain-b both set data.source"),
])
def test_train_options_belong_to_the_tasks_that_declare_them(argv, task, message):
    from medgan.cli import build_parser, resolve_train_config

    args = build_parser().parse_args(["train", "--out", "x", *argv])
    if message is None:
        assert resolve_train_config(args).task == task
    else:
        with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
            resolve_train_config(args)


def test_a_saved_config_without_a_later_key_keeps_what_it_was_trained_with():
    from medgan.config import saved_config, to_dict

    values = to_dict(from_dict({"model": {"upsample": "nearest-output"}}))
    assert saved_config(values).model.upsample == "nearest-output"
    del values["model"]["upsample"]  # a run saved before the key existed
    assert saved_config(values).model.upsample == "transposed"
    assert "upsample" not in values["model"]  # the caller's mapping is left alone
