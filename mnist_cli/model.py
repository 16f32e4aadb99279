"""The MLP, built from the model config alone: no I/O, no devices. Its layers have names a report can use."""

from __future__ import annotations

import itertools
from collections import OrderedDict

import torch
from torch import nn

from mnist_cli.config import ModelConfig

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}
NORMS: dict[str, type[nn.Module]] = {"batch": nn.BatchNorm1d, "layer": nn.LayerNorm}


class HiddenLayer(nn.Sequential):
    """linear -> norm -> act -> dropout, holding only the parts that are on: at batch 15 each Identity called cost ~5 us
    of a ~500 us step."""

    def __init__(self, fan_in: int, width: int, cfg: ModelConfig):
        parts = {
            "linear": nn.Linear(fan_in, width, bias=cfg.norm != "batch"),  # batch norm's shift replaces the bias
            "norm": NORMS[cfg.norm](width) if cfg.norm in NORMS else None,
            "act": ACTIVATIONS[cfg.activation](),
            "dropout": nn.Dropout(cfg.dropout) if cfg.dropout > 0 else None,
        }
        super().__init__(OrderedDict((name, m) for name, m in parts.items() if m is not None))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for part in self:
            x = part.forward(x)  # not part(x): see MLP
        return x


class MLP(nn.Module):
    """Flatten -> hidden[0..depth-1] -> output, giving logits (B, classes).

    The forward pass calls each layer's and part's `forward`, not the module: the module calls cost ~20 us of a ~550 us
    step at batch 15. Hooks on them therefore do not run; hooks on the MLP do, except in the training steps that
    training/backprop.py computes by hand."""

    def __init__(self, cfg: ModelConfig, in_features: int, num_classes: int):
        super().__init__()
        widths = [in_features, *cfg.hidden_widths]
        self.hidden = nn.ModuleList(HiddenLayer(a, b, cfg) for a, b in itertools.pairwise(widths))
        self.output = nn.Linear(widths[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for layer in self.hidden:
            x = layer.forward(x)
        return self.output.forward(x)

    def linears(self) -> list[nn.Linear]:
        """Every Linear, input to output: hidden[0].linear, ..., output."""
        return [layer.linear for layer in self.hidden] + [self.output]


def build_model(cfg: ModelConfig, in_features: int, num_classes: int) -> MLP:
    """The configured MLP, initialised as `cfg.init` says."""
    model = MLP(cfg, in_features, num_classes)
    nonlinearity = "relu" if cfg.activation in ("relu", "gelu", "silu") else "tanh"
    for layer in model.linears() if cfg.init != "default" else []:
        if cfg.init == "uniform01":
            nn.init.uniform_(layer.weight, 0.0, 1.0)  # the XOR tutorial's np.random.rand
        elif cfg.init == "xavier":
            nn.init.xavier_uniform_(layer.weight)
        else:
            nn.init.kaiming_normal_(layer.weight, nonlinearity=nonlinearity)
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)
    return model


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def parameter_count(cfg: ModelConfig, in_features: int, num_classes: int) -> int:
    """Trainable parameters of the configured model, counted on the meta device: no memory, no RNG draws."""
    with torch.device("meta"):
        return count_parameters(build_model(cfg, in_features, num_classes))


def architecture(in_features: int, hidden_widths: list[int], num_classes: int) -> str:
    """'784-512-512-10': the sizes of the layers, input to output."""
    return "-".join(str(n) for n in (in_features, *hidden_widths, num_classes))


def legacy_key_map(cfg: ModelConfig) -> dict[str, str]:
    """Format-1 state-dict keys -> this module's names. Format 1 saved an anonymous Sequential of the same layers in
    the same order (Flatten, then per layer Linear, [norm], act, [dropout], then the output Linear)."""
    with torch.device("meta"):
        model = MLP(cfg, 1, 1)
    layers = [(n, m) for n, m in model.named_modules() if not m._modules and not isinstance(m, nn.ModuleList)]
    return {f"{i}.{key}": f"{name}.{key}" for i, (name, layer) in enumerate(layers, start=1) for key in layer.state_dict()}
