"""Seed for circle packing: a jittered grid, then radii grown greedily until circles touch."""

import numpy as np

ROWS = 4  # evo: choices 4 5 6
COLS = 6  # evo: choices 5 6 7
STAGGER = 0.0  # evo: range 0.0 0.5 step 0.05
MARGIN = 0.12  # evo: range 0.02 0.2 step 0.01
JITTER = 0.0  # evo: range 0.0 0.05 step 0.005
SHRINK_ROUNDS = 20  # evo: choices 10 20 50
N = 26


def centers() -> np.ndarray:
    """Grid points row by row (odd rows shifted by STAGGER of a cell), the surplus dropped."""
    rng = np.random.default_rng(0)
    points = []
    for r in range(ROWS + 2):
        for c in range(COLS + 1):
            x = (c + (STAGGER if r % 2 else 0.0)) / max(COLS - 1, 1)
            y = r / max(ROWS - 1, 1)
            points.append((x, y))
    grid = np.array(points)
    grid = grid[(grid <= 1.0 + 1e-12).all(axis=1)][:N]
    while len(grid) < N:  # too few grid points: fill the gaps on a diagonal
        grid = np.vstack([grid, [[len(grid) % 7 / 7 + 0.05, len(grid) % 5 / 5 + 0.05]]])
    grid = MARGIN + (1 - 2 * MARGIN) * grid
    return np.clip(grid + rng.uniform(-JITTER, JITTER, grid.shape), 0.0, 1.0)


def radii(c: np.ndarray) -> np.ndarray:
    """Largest radii with no overlap: start from the wall distance, then halve conflicts repeatedly."""
    r = np.minimum.reduce([c[:, 0], c[:, 1], 1 - c[:, 0], 1 - c[:, 1]])
    d = np.linalg.norm(c[:, None] - c[None], axis=-1) + np.eye(len(c)) * 1e9
    for _ in range(SHRINK_ROUNDS):
        over = (r[:, None] + r[None]) / d
        scale = np.minimum(1.0, 1.0 / over.max(axis=1))
        r = r * scale
    over = (r[:, None] + r[None]) / d  # a last exact fix so that no pair overlaps
    while over.max() > 1.0:
        i, j = np.unravel_index(np.argmax(over), over.shape)
        excess = r[i] + r[j] - d[i, j]
        r[i] -= excess / 2 + 1e-12
        r[j] -= excess / 2 + 1e-12
        r = np.maximum(r, 0.0)
        over = (r[:, None] + r[None]) / d
    return r


def pack() -> tuple[np.ndarray, np.ndarray]:
    c = centers()
    return c, radii(c)
