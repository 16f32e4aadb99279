"""A trained model as one ONNX or TorchScript file: raw inputs in (28x28 grayscale as 0-255 floats), probabilities out,
the normalisation and softmax inside the graph and the classes and input spec in the file's metadata."""

from __future__ import annotations

import io
import json
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from mnist_cli.data.catalog import DatasetInfo
from mnist_cli.data.datasets import Normalization
from mnist_cli.disk import atomic_write
from mnist_cli.errors import MnistError, SaveError
from mnist_cli.inference.trained import load_trained

Format = Literal["onnx", "torchscript"]
INPUT, OUTPUT = "input", "probabilities"  # the graph's input and output names
ONNX_EXTRA = 'ONNX export needs the onnx and onnxscript packages: pip install "mnist-cli[export]"'


@dataclass(frozen=True)
class InputSpec:
    """What the exported model takes: float32 (batch, *shape), values low..high, laid out as `layout` says."""

    shape: list[int]  # one example, without the batch dimension: [28, 28], [8, 8], [2]
    low: float
    high: float
    layout: str
    dtype: str = "float32"


@dataclass(frozen=True)
class Exported:
    """One written export: where, in what format, what it takes and what its outputs mean."""

    path: Path
    format: Format
    input: InputSpec
    classes: list[str]
    model: str  # '784-64-10, test accuracy 94.99%'

    def as_dict(self) -> dict:
        return {**asdict(self), "path": str(self.path)}

    def metadata(self) -> dict[str, str]:
        """The file's metadata (ONNX metadata_props, TorchScript extra files): JSON strings under plain keys."""
        return {"classes": json.dumps(self.classes), "input": json.dumps(asdict(self.input)), "model": self.model}


def input_spec(info: DatasetInfo) -> InputSpec:
    """The raw input of a dataset, as its examples come (MNIST's 0-255 pixels, the 8x8 digits' 0-16 counts, 0/1 pairs)."""
    if info.kind == "table":
        return InputSpec(list(info.input_shape), 0.0, info.scale, "the two inputs (a, b) of the truth table, each 0 or 1")
    side, name = info.image_side, info.name
    if info.scale == 255:
        layout = (
            f"{side}x{side} grayscale pixels, 0-255, light ink on black as in {name} (the digit fitted in 20x20 and "
            "centred by mass: what `mnist predict --save-inputs` writes)"
        )
    else:  # scikit-learn's digits: `mnist predict --save-inputs` writes these counts stretched to 0-255
        layout = f"{side}x{side} counts of inked pixels per 4x4 block of a 32x32 bitmap, 0-{info.scale:g}, as in {name}"
    return InputSpec([side, side], 0.0, info.scale, layout)


class WithPreprocessing(nn.Module):
    """Raw inputs (B, *shape) -> probabilities (B, classes): training's own normalisation (not folded into the first
    layer, so probabilities match PyTorch's to float32 rounding), the network, a softmax."""

    def __init__(self, model: nn.Module, norm: Normalization):
        super().__init__()
        self.model = model
        self.scale = 1.0 / (norm.scale * norm.std)
        self.shift = norm.mean / norm.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(x * self.scale - self.shift), dim=1)


def export_checkpoint(checkpoint: Path, fmt: Format, output: Path | None = None) -> Exported:
    """Load `checkpoint` as `mnist eval` does and write it as `fmt` to `output`, or as `tiny-best.onnx` (run-checkpoint)
    in `output` when a folder, else here: not in the run folder, where `mnist train` would take it for a stranger's."""
    if fmt == "onnx":
        try:
            import onnx  # noqa: F401
            import onnxscript  # noqa: F401  # torch.onnx's exporter builds the graph with it
        except ImportError:
            raise MnistError(ONNX_EXTRA) from None
    trained = load_trained(checkpoint, "cpu")
    name = f"{trained.path.resolve().parent.name}-{trained.path.stem}.{fmt}"  # .onnx, .torchscript
    path = Path(output or name)
    path = path / name if path.is_dir() else path
    if path.resolve() == trained.path.resolve():
        raise SaveError(f"cannot export to {path}: it is the checkpoint being exported")
    spec = input_spec(trained.dataset)
    exported = Exported(path, fmt, spec, trained.classes, trained.describe())
    wrapped = WithPreprocessing(trained.model, trained.normalization).eval()
    example = torch.zeros(2, *spec.shape)  # 2, not 1: torch.export would take a batch of one for a constant
    data = (_onnx if fmt == "onnx" else _torchscript)(wrapped, example, exported.metadata())
    atomic_write(path, lambda f: f.write(data))
    return exported


def _onnx(model: nn.Module, example: torch.Tensor, metadata: dict[str, str]) -> bytes:
    import onnx

    program = torch.onnx.export(
        model,
        (example,),
        dynamo=True,  # torch 2.9+'s exporter (torch.export + onnxscript); the TorchScript-based one is deprecated
        input_names=[INPUT],
        output_names=[OUTPUT],
        dynamic_shapes=({0: torch.export.Dim("batch")},),
        verbose=False,
    )
    proto = program.model_proto
    onnx.helper.set_model_props(proto, metadata)
    return proto.SerializeToString()


def _torchscript(model: nn.Module, example: torch.Tensor, metadata: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # torch 2.14 marks torch.jit deprecated; the format is what C++ libtorch loads
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.script(model)
        torch.jit.save(scripted, buffer, _extra_files=metadata)
    return buffer.getvalue()
