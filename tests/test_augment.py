"""Batch augmentation: shapes, seeded determinism, identity when off, and that it reaches training."""

from __future__ import annotations

import pytest
import torch
from conftest import write_config

from mnist_cli.augment import augment
from mnist_cli.config import AugmentConfig, validate
from mnist_cli.errors import ConfigError

SQUARE = torch.zeros(64, 28, 28)
SQUARE[:, 10:18, 10:18] = 1.0  # an 8x8 square: a shift of 3 px keeps it inside the frame


@pytest.mark.parametrize(
    "cfg", [{"rotate": 15}, {"elastic_alpha": 2}, {"rotate": 10, "shift": 2, "scale": 0.1, "shear": 5, "elastic_alpha": 1.5}]
)
def test_each_image_gets_its_own_warp_of_the_same_shape_and_a_seed_repeats_them(cfg):
    torch.manual_seed(3)
    y = augment(SQUARE, AugmentConfig(**cfg))
    assert y.shape == SQUARE.shape and y.dtype == SQUARE.dtype
    assert not torch.equal(y, SQUARE) and not torch.equal(y[0], y[1])
    torch.manual_seed(3)
    assert torch.equal(y, augment(SQUARE, AugmentConfig(**cfg)))


def test_off_is_the_identity_a_shift_conserves_the_image_and_borders_are_the_background():
    assert not AugmentConfig().enabled and augment(SQUARE, AugmentConfig()) is SQUARE
    torch.manual_seed(0)
    assert torch.allclose(augment(SQUARE, AugmentConfig(shift=3)).sum((1, 2)), SQUARE.sum((1, 2)), atol=1e-3)
    empty = torch.full((4, 28, 28), -0.4242)
    assert torch.allclose(augment(empty, AugmentConfig(rotate=30, shift=4), -0.4242), empty, atol=1e-5)


def test_augment_keys_validate_with_their_path_and_compile_defaults_off():
    with pytest.raises(ConfigError) as e:
        validate({"data": {"augment": {"rotate": -1, "scal": 0.1}}})
    problems = sorted(e.value.problems)
    assert problems[0].startswith("data.augment.rotate:")
    assert problems[1] == "data.augment.scal: unknown key (did you mean 'scale'?)"
    assert validate({}).train.compile is False


def test_training_with_augmentation_is_seeded_and_leaves_labels_alone(tmp_path):
    from mnist_cli.config import load_config
    from mnist_cli.training.loop import train

    aug = {"rotate": 8, "shift": 1.5, "scale": 0.1, "elastic_alpha": 1}
    cfg = load_config(write_config(tmp_path / "c.yaml", data={"val_size": 100, "augment": aug}))
    a, b = train(cfg, tmp_path / "a"), train(cfg, tmp_path / "b")
    assert a.val_accuracy == b.val_accuracy and a.test_loss == b.test_loss
    assert a.test_accuracy > 0.9, a  # labels still match their (warped) images
