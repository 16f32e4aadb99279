"""The MLP, built from the model config alone: no I/O, no devices."""

from __future__ import annotations

from torch import nn

from mnist_cli.config import ModelConfig

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}


def build_model(cfg: ModelConfig, in_features: int, num_classes: int) -> nn.Sequential:
    """Flatten -> [Linear -> norm -> activation -> dropout] x depth -> Linear, giving logits (B, classes)."""
    layers: list[nn.Module] = [nn.Flatten()]
    fan_in = in_features
    for width in cfg.hidden_widths:
        layers.append(nn.Linear(fan_in, width, bias=cfg.norm != "batch"))
        if cfg.norm == "batch":
            layers.append(nn.BatchNorm1d(width))
        elif cfg.norm == "layer":
            layers.append(nn.LayerNorm(width))
        layers.append(ACTIVATIONS[cfg.activation]())
        if cfg.dropout > 0:
            layers.append(nn.Dropout(cfg.dropout))
        fan_in = width
    layers.append(nn.Linear(fan_in, num_classes))
    model = nn.Sequential(*layers)
    _initialise(model, cfg)
    return model


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _initialise(model: nn.Sequential, cfg: ModelConfig) -> None:
    if cfg.init == "default":
        return
    nonlinearity = "relu" if cfg.activation in ("relu", "gelu", "silu") else "tanh"
    for layer in model:
        if not isinstance(layer, nn.Linear):
            continue
        if cfg.init == "xavier":
            nn.init.xavier_uniform_(layer.weight)
        else:
            nn.init.kaiming_normal_(layer.weight, nonlinearity=nonlinearity)
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)
