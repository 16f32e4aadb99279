"""Folder names made of settings: readable, distinct for distinct settings, safe on every file system."""

from __future__ import annotations

import pytest

from mnist_cli.naming import MAX_NAME_CHARS, settings_name


def test_readable_names_for_ordinary_settings():
    assert settings_name({"model.width": 512, "train.epochs": 3}) == "model.width=512,train.epochs=3"
    assert settings_name({"depth": 2, "width": [256, 128]}) == "depth=2,width=[256,128]"
    assert settings_name({"model.activation": "relu", "train.amp": True}) == "model.activation=relu,train.amp=true"
    assert settings_name({}) == "defaults"


@pytest.mark.parametrize("value", ["/tmp/a b", "../up", ".hidden", "x" * 300, "a:b*c?d", "é", "1\n2", "CON"])
def test_unsafe_or_long_values_become_safe_distinct_names(value):
    name = settings_name({"data.root": value})
    assert len(name) <= MAX_NAME_CHARS
    assert "/" not in name and "\\" not in name and "\n" not in name and not name.startswith(".")
    assert name != settings_name({"data.root": value + "!"})


def test_similar_values_that_sanitise_alike_stay_apart():
    assert settings_name({"k": "a b"}) != settings_name({"k": "a_b"}) != settings_name({"k": "a:b"})
