"""Fine-tuning: a new run starts from a trained model's weights (train.init_from), loaded as a stranger's checkpoint.

The run keeps the starting model's normalisation: its weights expect inputs scaled that way, and constants computed
from a few of one's own images would shift every input the model has learned to read.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from mnist_cli.data.datasets import Normalization
from mnist_cli.errors import CheckpointError
from mnist_cli.model import MLP

if TYPE_CHECKING:
    from mnist_cli.inference.trained import TrainedModel

OUTPUT_LAYER = "output."  # the state-dict prefix of the class layer, re-initialised when the classes differ


def initial_weights(
    model: MLP, path: Path | str, classes: list[str], resume_from: dict | None = None
) -> tuple[tuple[str, ...], Normalization]:
    """Copy the checkpoint's weights into `model` (all but the output layer when its classes are not `classes`);
    returns notes for the user and the normalisation to train with. A resumed run (`resume_from`) keeps its own."""
    if resume_from is not None:
        norm = resume_from["normalization"]
        return (), Normalization(float(norm["mean"]), float(norm["std"]), float(resume_from["input_scale"]))
    trained, kept = matching_weights(model, path, classes)
    ours = model.state_dict()
    with torch.no_grad():
        for key, value in kept.items():
            ours[key].copy_(value)
    note = f"starting from the weights of {path} ({trained.describe()})"
    if trained.classes != classes:
        note = (
            f"starting from the weights of {path}; its classes ({', '.join(trained.classes)}) are not this run's "
            f"({', '.join(classes)}), so the output layer starts afresh"
        )
    return (note,), trained.normalization


def matching_weights(model: MLP, path: Path | str, classes: list[str]) -> tuple[TrainedModel, dict[str, torch.Tensor]]:
    """The checkpoint and the weights of it `model` takes (all but the output layer when the classes differ); refuses,
    naming the first layer, a checkpoint whose architecture is not `model`'s. `model` may live on the meta device."""
    from mnist_cli.inference.trained import load_trained

    trained = load_trained(path, "cpu")  # load_checkpoint's checks: weights_only, digest, shapes against its config
    theirs, ours = trained.model.state_dict(), model.state_dict()
    if trained.classes != classes:
        theirs, ours = ({k: v for k, v in d.items() if not k.startswith(OUTPUT_LAYER)} for d in (theirs, ours))
    for key in [*ours, *(k for k in theirs if k not in ours)]:  # input to output: the first layer that differs
        mine, other = ours.get(key), theirs.get(key)
        if mine is None or other is None or mine.shape != other.shape:
            raise CheckpointError(
                f"train.init_from {path}: layer {key} differs ({_shape(other)} there, {_shape(mine)} in this run's model); "
                "fine-tuning needs the same model settings and input size"
            )
    return trained, theirs


def _shape(t: torch.Tensor | None) -> str:
    return "absent" if t is None else "x".join(map(str, t.shape))
