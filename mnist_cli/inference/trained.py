"""A trained model ready to use: the one way eval, predict, report, serve, the bench and the tests load a checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mnist_cli.checkpoint import FORMAT_1_INPUT, config_from_checkpoint, load_checkpoint
from mnist_cli.config import Config
from mnist_cli.data.catalog import DatasetInfo, dataset_info
from mnist_cli.data.datasets import Normalization
from mnist_cli.errors import CheckpointError, first_line
from mnist_cli.model import MLP, architecture, build_model, count_parameters


@dataclass(frozen=True)
class TrainedModel:
    """A checkpoint's network in eval mode on `device`, with everything needed to feed it and name its answers."""

    path: Path
    model: MLP
    normalization: Normalization
    classes: list[str]
    config: Config
    metrics: dict[str, Any]  # the saved epoch's metrics; best.pt adds test_accuracy and test_loss
    epoch: int
    device: torch.device

    @property
    def dataset(self) -> DatasetInfo:
        """What the model was trained on: input shape, raw scale, kind (images or a truth table)."""
        return dataset_info(self.config.data.dataset)

    @property
    def in_features(self) -> int:
        """The first layer's inputs, read from the weights."""
        return self.model.linears()[0].in_features

    @property
    def parameters(self) -> int:
        return count_parameters(self.model)

    @property
    def architecture(self) -> str:
        """'784-512-512-10'."""
        return architecture(self.in_features, self.config.model.hidden_widths, len(self.classes))

    @property
    def test_accuracy(self) -> float | None:
        """From the run's result.json beside a best.pt, or from the checkpoint (earlier releases stored it there)."""
        value = self.metrics.get("test_accuracy")
        if value is None and self.path.name == "best.pt":
            from mnist_cli.record import read_result

            result = read_result(self.path.parent)
            value = result.test_accuracy if result else None
        return float(value) if isinstance(value, int | float) else None

    def describe(self) -> str:
        """'784-64-10, test accuracy 94.99%': what the model is, in a few words."""
        acc = self.test_accuracy
        return self.architecture + (f", test accuracy {acc:.2%}" if acc is not None else ", not yet tested")


def load_trained(path: Path | str, device: torch.device | str = "cpu") -> TrainedModel:
    """Load and check a checkpoint and rebuild its model on `device` (eval mode)."""
    path, device = Path(path), torch.device(device)
    ckpt = load_checkpoint(path)
    cfg = config_from_checkpoint(ckpt, path)
    norm, metrics, epoch = ckpt["normalization"], ckpt.get("metrics"), ckpt.get("epoch")
    return TrainedModel(
        path=path,
        model=_rebuild(ckpt, cfg, path).to(device),
        normalization=Normalization(float(norm["mean"]), float(norm["std"]), float(ckpt.get("input_scale", FORMAT_1_INPUT[1]))),
        classes=list(ckpt["classes"]),
        config=cfg,
        metrics=dict(metrics) if isinstance(metrics, dict) else {},
        epoch=epoch if isinstance(epoch, int) else 0,
        device=device,
    )


def _rebuild(ckpt: dict[str, Any], cfg: Config, path: Path) -> MLP:
    """The stored architecture with the stored weights, on the CPU in eval mode."""
    num_classes, in_features = len(ckpt["classes"]), dataset_info(cfg.data.dataset).in_features
    # Compare shapes on the meta device first: a stored config can describe a model too large to allocate.
    with torch.device("meta"):
        shapes = build_model(cfg.model, in_features, num_classes).state_dict()
    expected = {k: tuple(v.shape) for k, v in shapes.items()}
    found = {k: tuple(v.shape) for k, v in ckpt["model_state"].items()}
    if expected != found:
        differ = sorted(k for k in expected.keys() | found.keys() if expected.get(k) != found.get(k))
        raise CheckpointError(f"{path}: weights do not match the stored architecture ({', '.join(differ[:3])} differ)")
    # Bytes the model will take against bytes the file holds, before anything is allocated: a tensor that claims a
    # shape without storing its elements (load_checkpoint refuses views) must not make us allocate gigabytes.
    need = sum(v.numel() * v.element_size() for v in shapes.values())
    storages = {v.untyped_storage().data_ptr(): v.untyped_storage().nbytes() for v in ckpt["model_state"].values()}
    held = sum(storages.values())  # each stored buffer once, however many tensors view it
    if held < need or any(v.dtype != shapes[k].dtype for k, v in ckpt["model_state"].items()):
        raise CheckpointError(f"{path}: weights do not match the stored architecture ({held:,} bytes stored, {need:,} needed)")
    model = build_model(cfg.model, in_features, num_classes)
    try:
        model.load_state_dict(ckpt["model_state"])
    except (RuntimeError, TypeError, AttributeError) as e:
        raise CheckpointError(f"{path}: weights do not match the stored architecture ({first_line(e)})") from None
    return model.eval()
