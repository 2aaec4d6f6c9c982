"""The registry: decorator registration, lookups, errors that list valid names."""

import pytest

from medgan.errors import ConfigError
from medgan.registry import Registry


def test_register_get_and_list():
    things = Registry("thing")

    @things.register("b")
    def second():
        return 2

    @things.register("a")
    def first():
        return 1

    assert things.get("a") is first and things.get("b")() == 2
    assert things.names() == ["a", "b"] and list(things) == ["a", "b"] and "a" in things and "c" not in things


def test_unknown_names_list_the_valid_ones_and_duplicates_are_bugs():
    things = Registry("thing")
    things.register("one")(object())
    with pytest.raises(ConfigError, match="unknown thing 'two'; choose one of: one"):
        things.get("two")
    with pytest.raises(ValueError, match="registered twice"):
        things.register("one")(object())
