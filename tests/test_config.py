"""Config: recipes, YAML and override parsing, type conversion, validation with the offending key named."""

import math

import pytest

from medgan.config import (RunConfig, deep_update, from_dict, load_yaml, parse_overrides, recipe, save_yaml,
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
