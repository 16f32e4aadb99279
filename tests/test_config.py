"""The config schema: defaults, every shipped config, overrides, and errors reported all at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from mnist_cli.config import Config, apply_overrides, load_config, to_yaml, validate
from mnist_cli.errors import ConfigError
from mnist_cli.yaml_files import nearest_key, safe_load

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
CONFIGS = sorted(CONFIG_DIR.glob("*.yaml"))


def test_defaults_are_valid_and_the_recommended_recipe():
    cfg = Config()
    assert cfg.model.hidden_widths == [512, 512]
    assert cfg.data.val_size == 5000
    # `mnist train` without a config and `--config configs/default.yaml` share checkpoints/default/.
    assert load_config(CONFIG_DIR / "default.yaml") == cfg


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_loads_and_documents_its_command(path):
    assert {"default.yaml", "classic-256.yaml", "classic-64x3.yaml", "tiny.yaml"} <= {p.name for p in CONFIGS}
    load_config(path)
    first_lines = path.read_text().splitlines()[:6]
    assert any(f"mnist train --config configs/{path.name}" in line for line in first_lines), first_lines


def test_classic_recipes_match_the_tutorials():
    c256 = load_config(CONFIG_DIR / "classic-256.yaml")
    assert (c256.model.hidden_widths, c256.model.init, c256.train.batch_size, c256.train.epochs) == ([256], "xavier", 64, 10)
    assert c256.data.normalize and c256.train.optimizer == "adam" and c256.train.lr == 1e-3
    for recipe in (c256, load_config(CONFIG_DIR / "classic-64x3.yaml")):
        # The tutorials train with a constant lr and plain cross-entropy, whatever the schema defaults are.
        assert (recipe.train.schedule, recipe.train.label_smoothing, recipe.train.optimizer) == ("none", 0.0, "adam")
    c64 = load_config(CONFIG_DIR / "classic-64x3.yaml")
    assert (c64.model.hidden_widths, c64.train.batch_size, c64.train.epochs, c64.data.normalize) == ([64, 64, 64], 15, 2, False)


def test_set_overrides_parse_yaml_values_and_override_the_file(tmp_path):
    cfg = load_config(None, ["model.width=[8, 16]", "model.depth=2", "train.amp=true", "train.lr=1e-2"])
    assert cfg.model.hidden_widths == [8, 16] and cfg.train.amp is True and cfg.train.lr == 0.01
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  width: 64\ntrain:\n  epochs: 3\n")
    cfg = load_config(path, ["train.epochs=1"])
    assert (cfg.model.width, cfg.train.epochs) == (64, 1)
    # YAML merge keys may still override: only a key written twice by hand is refused.
    path.write_text("model: &base {depth: 1, width: 8}\ntrain:\n  epochs: 2\n")
    assert load_config(path).model.hidden_widths == [8]
    assert safe_load("a: &x {b: 1}\nc:\n  <<: *x\n  b: 2\n") == {"a": {"b": 1}, "c": {"b": 2}}


def test_all_problems_reported_at_once_with_key_paths():
    with pytest.raises(ConfigError) as e:
        validate({"train": {"lr": -1, "optimizer": "adamax", "device": "tpu"}, "model": {"dropout": 1.5}})
    keys = sorted(p.split(":")[0] for p in e.value.problems)
    assert keys == ["model.dropout", "train.device", "train.lr", "train.optimizer"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model: [unclosed", "invalid YAML"),
        ("- a list\n- at top", "expected a mapping of keys at the top, got list"),
        ("key: value: nested", "invalid YAML"),
        ("train:\n  epochs: 1\n  epochs: 3\n", "duplicate key 'epochs'"),  # an error, not last-one-wins
        ("model:\n  depth: 3\n  width: [4, 4]\n", "width lists 2 layers but depth is 3"),
    ],
)
def test_a_bad_file_is_a_config_error(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_bad_set_syntax():
    with pytest.raises(ConfigError, match=r"KEY\.PATH=VALUE"):
        apply_overrides({}, ["model.width"])


def test_resolved_yaml_round_trips(tmp_path):
    cfg = load_config(None, ["model.width=[8]", "model.depth=1", "train.schedule=cosine"])
    path = tmp_path / "resolved.yaml"
    path.write_text(to_yaml(cfg))
    assert load_config(path) == cfg


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        # Keys that begin like pydantic's own location tags (int, list[...], function-after[...]).
        (["internal=1"], "internal: unknown key (known keys: seed, data, model, train)"),
        (["train.interval=3"], "train.interval: unknown key"),
        (["model.list_x=1"], "model.list_x: unknown key"),
        (["model.intt=1"], "model.intt: unknown key (did you mean 'init'?)"),
        (["model.widht=3"], "model.widht: unknown key (did you mean 'width'?)"),
        (["trian={}"], "trian: unknown key (did you mean 'train'?)"),
        (["width=5"], "width: unknown key (did you mean 'model.width'?)"),
        (["model.width=512,256"], "model.width: a list is written in brackets, [512,256] (got '512,256')"),
    ],
)
def test_each_bad_key_or_value_is_one_problem_under_its_own_path_with_a_hint(overrides, expected):
    with pytest.raises(ConfigError) as e:
        load_config(None, overrides)
    assert len(e.value.problems) == 1 and e.value.problems[0].startswith(expected), e.value.problems


def test_a_bad_width_is_reported_under_its_own_key():
    with pytest.raises(ConfigError) as e:
        load_config(None, ["model.width=[1, abc]", "model.depth=2"])
    assert "model.width.1: Input should be a valid integer" in " | ".join(e.value.problems)


def test_nearest_key_finds_the_section_a_key_belongs_to():
    keys = ("width", "model.widht", "train.lr", "nonsense")
    assert [nearest_key(k, Config) for k in keys] == ["model.width", "model.width", "train.lr", None]


def test_an_image_given_as_config_is_not_a_yaml_file_and_a_near_name_is_suggested(tmp_path):
    (tmp_path / "seven.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (tmp_path / "default.yaml").write_text("seed: 1\n")
    with pytest.raises(ConfigError, match=r"not a YAML file: it is not text \(byte 0x89 at 0\)"):
        load_config(tmp_path / "seven.png")
    with pytest.raises(ConfigError) as e:
        load_config(tmp_path / "default.yml")
    assert e.value.problems == [f"no such file (did you mean {tmp_path / 'default.yaml'}?)"]
