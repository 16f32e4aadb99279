"""Hypothesis throws random configs, overrides, image bytes and checkpoint fields at the CLI: success or exit 2, never more."""

from __future__ import annotations

import itertools

import pytest
import torch
import yaml
from conftest import encoded, invoke, sign, write_config
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from mnist_cli.config import Config

# Pillow warns about the damaged files it is fed here; the warnings are expected, the exit codes are what is tested.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
RUNS = itertools.count()
# derandomize: the examples are a function of the test, so a failure repeats (every random draw seeded).
FUZZ = settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])


def assert_success_or_clean_error(r) -> None:
    assert r.exit_code in (0, 2), (r.exit_code, r.output, r.exception)
    if r.exit_code == 2:
        # Pillow may also print a UserWarning about a damaged file; the error itself is one line.
        assert isinstance(r.exception, SystemExit) and "\nerror: " in "\n" + r.stderr, (r.output, r.exception)


@pytest.fixture(autouse=True)
def keep_torch_threads():
    """A fuzzed train.threads must not leave the test process with hundreds of threads."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    from torchvision import datasets

    monkeypatch.setattr(datasets.MNIST, "mirrors", ["http://127.0.0.1:9/"])


# --- configs ----------------------------------------------------------------------------------------------------

KNOWN = {section: list(Config.model_fields[section].annotation.model_fields) for section in ("data", "model", "train")}
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["relu", "adam", "cosine", "cpu", "cuda:1", "mps", "batch", "skip", "stop", "1e400", "0x10", "~", ""]),
)
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8
)
# Relative paths only: the tests run as whoever runs them, possibly root, and must not create folders elsewhere.
roots = st.none() | st.text(st.characters(blacklist_characters="/~\\"), min_size=1, max_size=10)


@st.composite
def config_mappings(draw) -> dict:
    """Mostly real keys with odd values, some unknown keys, sometimes a wrong shape."""
    raw: dict = {}
    for section, keys in KNOWN.items():
        if draw(st.booleans()):
            chosen = draw(st.lists(st.sampled_from(keys), max_size=4, unique=True))
            raw[section] = {k: draw(roots if k == "root" else values) for k in chosen}
            if draw(st.integers(0, 5)) == 0:
                raw[section][draw(st.text(max_size=8))] = draw(values)
    if draw(st.booleans()):
        raw["seed"] = draw(values)
    if draw(st.integers(0, 6)) == 0:
        raw[draw(st.text(max_size=8))] = draw(values)
    return raw


YAML_ODDITIES = [
    "train: &t {epochs: 1, lr: 0.01}\nmodel: *t\n",  # an alias where another section belongs
    "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
    "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ntrain: {epochs: *d}\n",  # billion laughs, lists
    "a: &a {x: 1, y: 1}\nb: &b {p: *a, q: *a, r: *a, s: *a}\nc: &c {p: *b, q: *b, r: *b, s: *b}\n"
    "d: &d {p: *c, q: *c, r: *c, s: *c}\ne: &e {p: *d, q: *d, r: *d, s: *d}\nf: &f {p: *e, q: *e, r: *e, s: *e}\n"
    "g: &g {p: *f, q: *f, r: *f, s: *f}\nh: &h {p: *g, q: *g, r: *g, s: *g}\nmodel: *h\n",  # billion laughs, mappings
    "model: &m {width: 8, inner: *m}\n",  # a mapping that contains itself
    "train: &t [1, *t]\n",  # a list that contains itself
    "train: !!python/object/apply:os.system [touch pwned]\n",
    "model: {width: 8}\nmodel: {width: 16}\n",
    "\ufeffseed: 1\n",
    "seed: 1\n\tmodel: 2\n",
    "[" * 5000 + "]" * 5000 + "\n",
    "- just\n- a list\n",
    "train:\n  epochs: 99999999999999999999999999999\n  lr: .inf\n  batch_size: -0\n",
    "model:\n  width: [1e309, -1, 65537]\n  depth: 3\n",
    "seed: \U0001f4a5\ndata: {dataset: МНИСТ}\n",
    "train: {device: 'cuda:99999999999999999999'}\n",
    'data: {root: "\\0"}\n',
    "",
    "\x00\x01\x02",
]


@FUZZ
@given(config_mappings())
@example({"model": {"depth": 64, "width": 65536}})
@example({"train": {"batch_size": 65536, "eval_batch_size": 1 << 20}})
def test_random_configs_train_or_exit_2(tmp_path, raw):
    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    assert_success_or_clean_error(invoke("train", "-c", path, "--dry-run", "--out", tmp_path / "out"))


@pytest.mark.parametrize("text", YAML_ODDITIES)
def test_yaml_oddities_exit_cleanly(tmp_path, text):
    (tmp_path / "odd.yaml").write_bytes(text.encode("utf-8", "surrogatepass"))
    assert_success_or_clean_error(invoke("train", "-c", tmp_path / "odd.yaml", "--dry-run", "--out", tmp_path / "out"))
    assert not (tmp_path / "pwned").exists()


@FUZZ
@given(st.lists(st.text(max_size=30) | st.sampled_from(["train.lr=1e999", "model=", "=1", "a.b=[", "seed=&a [*a]"]), max_size=4))
def test_random_overrides_exit_cleanly(tmp_path, overrides):
    args = [a for o in overrides for a in ("--set", o)]
    assert_success_or_clean_error(invoke("train", *args, "--dry-run", "--out", tmp_path / "out"))


@settings(FUZZ, max_examples=8)
@example({"depth": 1, "width": 1, "activation": "gelu", "norm": "batch", "dropout": 0.0}, {"batch_size": 1})  # found by this test
@given(
    st.fixed_dictionaries(
        {
            "depth": st.integers(0, 3),
            "width": st.integers(1, 24),
            "activation": st.sampled_from(["relu", "gelu", "silu", "tanh", "sigmoid"]),
            "norm": st.sampled_from(["none", "batch", "layer"]),
            "dropout": st.sampled_from([0.0, 0.5]),
        }
    ),
    st.fixed_dictionaries(
        {
            "optimizer": st.sampled_from(["adam", "adamw", "sgd"]),
            "lr": st.sampled_from([1e-3, 0.1, 10.0]),
            "schedule": st.sampled_from(["none", "cosine", "onecycle"]),
            "batch_size": st.integers(1, 700),
            "save_every_steps": st.integers(0, 3),
            "on_nan": st.sampled_from(["stop", "skip"]),
        }
    ),
)
def test_random_valid_configs_really_train_or_stop_cleanly(tmp_path, model, train):
    cfg = write_config(tmp_path / "v.yaml", model=model, train={**train, "epochs": 1})
    out = tmp_path / f"out{next(RUNS)}"
    assert_success_or_clean_error(invoke("train", "-c", cfg, "--out", out, "-q"))


# --- images -----------------------------------------------------------------------------------------------------


SEEDS = [
    encoded(Image.new("L" if fmt != "PNG" else "RGBA", (28, 28), 200), fmt)
    for fmt in ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")
]


@st.composite
def mutated_images(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        i = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip":
            data[i] = draw(st.integers(0, 255))
        elif action == "cut":
            del data[i:]
            if not data:
                break
        else:
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
    return bytes(data)


@FUZZ
@given(st.binary(max_size=300) | mutated_images())
@example(b"")
@example(b"\x89PNG\r\n\x1a\n")
def test_random_image_bytes_predict_or_exit_2(trained_checkpoint, tmp_path, data):
    (tmp_path / "img.png").write_bytes(data)
    assert_success_or_clean_error(invoke("predict", tmp_path / "img.png", "-m", trained_checkpoint, "--json"))


# --- checkpoint fields ------------------------------------------------------------------------------------------

plain = st.recursive(
    scalars | st.builds(torch.zeros, st.integers(0, 3)) | st.just(torch.tensor(float("nan"))),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
FIELDS = ["config", "classes", "normalization", "model_state", "input_shape", "metrics", "epoch", "format_version", "versions"]


@FUZZ
@given(st.sampled_from(FIELDS), plain, st.booleans())
def test_random_checkpoint_fields_eval_or_exit_2(trained_checkpoint, tmp_path, field, value, nested):
    ckpt = torch.load(trained_checkpoint, weights_only=True)
    target = ckpt[field] if nested and isinstance(ckpt.get(field), dict) and ckpt[field] else ckpt
    key = next(iter(target)) if target is not ckpt else field
    target[key] = value
    torch.save(sign(ckpt), tmp_path / "f.pt")
    assert_success_or_clean_error(invoke("eval", tmp_path / "f.pt", "--json"))
