"""Batch augmentation on the training device: one random affine (plus optional elastic warp) per image, as tensor ops
on whole batches (airbench, beautiful_mnist); the draws come from the device's generator, which training seeds per step."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from mnist_cli.config import AugmentConfig


def augment(images: torch.Tensor, cfg: AugmentConfig, background: float = 0.0) -> torch.Tensor:
    """float (B, H, W) -> the same, each image warped by its own random transform; what moves in from outside the
    frame is `background` (an empty pixel after normalisation). With every magnitude at 0 the input is returned as is."""
    if not cfg.enabled or len(images) == 0:
        return images
    b, h, w = images.shape
    grid = F.affine_grid(_random_affine(b, h, cfg, images.device), [b, 1, h, w], align_corners=False)  # (B, H, W, 2)
    if cfg.elastic_alpha > 0:
        grid = grid + _smooth_displacement(b, h, w, cfg, images.device)
    warped = F.grid_sample((images - background).unsqueeze(1), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return warped.squeeze(1) + background


def _uniform(n: int, bound: float, device: torch.device) -> torch.Tensor:
    """n draws from U(-bound, bound)."""
    return (torch.rand(n, device=device) * 2 - 1) * bound


def _random_affine(b: int, side: int, cfg: AugmentConfig, device: torch.device) -> torch.Tensor:
    """(B, 2, 3) matrices mapping output coordinates to input coordinates, in [-1, 1] units."""
    angle = _uniform(b, math.radians(cfg.rotate), device)
    shear = _uniform(b, math.radians(cfg.shear), device)
    scale = 1 + _uniform(b, cfg.scale, device)
    # affine_grid maps output -> input, so a shift of +s pixels samples from -s; units are half-widths.
    shift = _uniform(2 * b, 2 * cfg.shift / side, device).view(b, 2)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    tan = torch.tan(shear)
    rows = [torch.stack([cos, -sin + cos * tan, shift[:, 0]], 1), torch.stack([sin, cos + sin * tan, shift[:, 1]], 1)]
    return torch.stack(rows, 1)


def _smooth_displacement(b: int, h: int, w: int, cfg: AugmentConfig, device: torch.device) -> torch.Tensor:
    """A smooth random field (B, H, W, 2): noise on a coarse grid, upsampled bilinearly; alpha in pixels."""
    n = cfg.elastic_grid
    coarse = _uniform(b * 2 * n * n, 2 * cfg.elastic_alpha / h, device).view(b, 2, n, n)
    field = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True)
    return field.permute(0, 2, 3, 1)
