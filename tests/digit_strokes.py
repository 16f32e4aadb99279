"""Real MNIST digits turned into pen strokes, for drawing them on the `mnist serve` page with a pointer.

A digit's bright pixels are thinned to a one-pixel skeleton (Zhang-Suen), and the skeleton is walked into
polylines: each polyline is one stroke a hand would draw, in 28x28 pixel coordinates (x, y).
"""

from __future__ import annotations

import numpy as np

Stroke = list[tuple[float, float]]
NEIGHBOURS = [(-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1)]  # P2..P9, clockwise from north


def skeleton(mask: np.ndarray) -> np.ndarray:
    """bool (H, W) -> bool (H, W): Zhang & Suen's thinning (CACM 1984), down to one-pixel-wide lines."""
    img = np.pad(mask.astype(np.uint8), 1)
    changed = True
    while changed:
        changed = False
        for step in (0, 1):
            remove = []
            for y, x in zip(*np.nonzero(img), strict=True):
                p = [int(img[y + dy, x + dx]) for dy, dx in NEIGHBOURS]
                transitions = sum(p[i] == 0 and p[(i + 1) % 8] == 1 for i in range(8))
                if not (2 <= sum(p) <= 6 and transitions == 1):
                    continue
                p2, p4, p6, p8 = p[0], p[2], p[4], p[6]
                if (step == 0 and p2 * p4 * p6 == 0 and p4 * p6 * p8 == 0) or (
                    step == 1 and p2 * p4 * p8 == 0 and p2 * p6 * p8 == 0
                ):
                    remove.append((y, x))
            for y, x in remove:
                img[y, x] = 0
            changed = changed or bool(remove)
    return img[1:-1, 1:-1].astype(bool)


def strokes(digit: np.ndarray, threshold: int = 100) -> list[Stroke]:
    """uint8 (28, 28) MNIST digit -> its skeleton as strokes of (x, y) pixel centres, longest first."""
    todo = {(int(y), int(x)) for y, x in zip(*np.nonzero(skeleton(digit >= threshold)), strict=True)}
    drawn: set[tuple[int, int]] = set()

    def near(p: tuple[int, int], pool: set[tuple[int, int]]) -> list[tuple[int, int]]:
        # 4-neighbours first, so a walk follows the line rather than cutting its corners
        order = [(-1, 0), (0, 1), (1, 0), (0, -1), (-1, 1), (1, 1), (1, -1), (-1, -1)]
        return [(p[0] + dy, p[1] + dx) for dy, dx in order if (p[0] + dy, p[1] + dx) in pool]

    out: list[list[tuple[int, int]]] = []
    while todo:
        # Start where the line ends (fewest undrawn neighbours), joined to what is drawn so branches connect.
        start = min(todo, key=lambda p: (len(near(p, todo)), p))
        path = [*near(start, drawn)[:1], start]
        todo.discard(start)
        while nxt := near(path[-1], todo):
            path.append(nxt[0])
            todo.discard(nxt[0])
        closing = [p for p in near(path[-1], drawn | set(path[:-2])) if p not in path[-3:]]
        path += closing[:1]  # close a loop (0, 6, 8, 9) instead of leaving a gap
        drawn.update(path)
        out.append(path)
    out.sort(key=len, reverse=True)
    return [[(x + 0.5, y + 0.5) for y, x in path] for path in out if len(path) >= 2 or len(out) == 1]


def place(stroke_list: list[Stroke], scale: float, offset: tuple[float, float]) -> list[Stroke]:
    """Strokes in 28x28 pixels -> canvas pixels: scaled by `scale` px per MNIST pixel, shifted by `offset` (x, y)."""
    return [[(offset[0] + x * scale, offset[1] + y * scale) for x, y in s] for s in stroke_list]
