"""Batch augmentation: shapes, seeded determinism, identity when off, and that it reaches training."""

from __future__ import annotations

import pytest
import torch
from conftest import write_config

from mnist_cli.augment import augment
from mnist_cli.config import AugmentConfig, validate
from mnist_cli.errors import ConfigError

ALL_ON = AugmentConfig(rotate=10, shift=2, scale=0.1, shear=5, elastic_alpha=1.5)


@pytest.fixture(autouse=True)
def seeded() -> None:
    torch.manual_seed(0)  # every warp here is a random draw


def square_batch(n: int = 8) -> torch.Tensor:
    x = torch.zeros(n, 28, 28)
    x[:, 10:18, 10:18] = 1.0
    return x


def test_disabled_is_the_identity():
    x = square_batch()
    assert not AugmentConfig().enabled
    assert augment(x, AugmentConfig()) is x


@pytest.mark.parametrize(
    "cfg", [AugmentConfig(rotate=15), AugmentConfig(elastic_alpha=2), ALL_ON], ids=["rotate", "elastic", "all"]
)
def test_keeps_shape_and_dtype_and_changes_the_images(cfg):
    x = square_batch()
    y = augment(x, cfg)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert not torch.equal(x, y)
    assert not torch.equal(y[0], y[1]), "each image gets its own transform"


def test_same_seed_same_warps():
    x = square_batch()
    torch.manual_seed(3)
    a = augment(x, ALL_ON)
    torch.manual_seed(3)
    b = augment(x, ALL_ON)
    assert torch.equal(a, b)


def test_a_shift_inside_the_frame_conserves_the_image():
    x = square_batch(64)
    y = augment(x, AugmentConfig(shift=3))
    # Shifts are uniform in +-3 px; the 8x8 square stays inside the frame, so its mass is conserved.
    assert torch.allclose(y.sum((1, 2)), x.sum((1, 2)), atol=1e-3)


def test_borders_are_filled_with_the_background_value():
    background = -0.4242
    x = torch.full((4, 28, 28), background)
    y = augment(x, AugmentConfig(rotate=30, shift=4), background)
    assert torch.allclose(y, x, atol=1e-5)


def test_augment_keys_validate_with_their_path():
    with pytest.raises(ConfigError) as e:
        validate({"data": {"augment": {"rotate": -1, "scal": 0.1}}})
    problems = sorted(e.value.problems)
    assert problems[0].startswith("data.augment.rotate:")
    assert problems[1] == "data.augment.scal: unknown key (did you mean 'scale'?)"


def test_compile_key_defaults_off():
    assert validate({}).train.compile is False


def test_training_with_augmentation_is_seeded_and_leaves_labels_alone(tmp_path):
    from mnist_cli.config import load_config
    from mnist_cli.training.loop import train

    aug = {"rotate": 8, "shift": 1.5, "scale": 0.1, "elastic_alpha": 1}
    cfg = load_config(write_config(tmp_path / "c.yaml", data={"val_size": 100, "augment": aug}))
    a, b = train(cfg, tmp_path / "a"), train(cfg, tmp_path / "b")
    assert a.val_accuracy == b.val_accuracy and a.test_loss == b.test_loss
    assert a.test_accuracy > 0.9, a  # labels still match their (warped) images
