"""Numbers that say whether an attribution map can be trusted (introduced in 06_can_you_trust_it).

Metrics plumbing only: the attribution calls stay in the notebook. Maps of different methods
are compared on a common grid, as rank correlations and overlaps of their strongest cells.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.models as models

GRID = 14  # cells per side: Layer GradCAM's own resolution, 16 x 16 pixels per cell at 224


def to_grid(attributions: torch.Tensor, size: int = GRID, absolute: bool = True) -> torch.Tensor:
    """(1, C, H, W) attributions -> (size, size) map: |values| (or signed values) summed over
    channels, then averaged over each cell of a size x size grid."""
    if attributions.dim() != 4 or attributions.shape[0] != 1:
        raise ValueError(f"to_grid expects attributions of shape (1, C, H, W), got {tuple(attributions.shape)}")
    values = attributions.detach().float()
    values = values.abs() if absolute else values
    return F.adaptive_avg_pool2d(values.sum(dim=1, keepdim=True), size)[0, 0]


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n; tied values share the mean of the ranks they span."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    _, group, counts = np.unique(values, return_inverse=True, return_counts=True)
    sums = np.bincount(group, weights=ranks)
    return sums[group] / counts[group]


def spearman(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    """Spearman rank correlation of two maps of the same size (1: same order, 0: unrelated).

    A constant map has no order; its correlation with anything is reported as 0."""
    a, b = (np.asarray(torch.as_tensor(m).detach().cpu(), dtype=np.float64).ravel() for m in (a, b))
    if a.shape != b.shape:
        raise ValueError(f"spearman needs maps of the same size, got {a.size} and {b.size} values")
    ra, rb = _ranks(a) - (a.size + 1) / 2, _ranks(b) - (b.size + 1) / 2
    norm = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    return float((ra * rb).sum() / norm) if norm > 0 else 0.0


def top_cells(grid: torch.Tensor, fraction: float = 0.2) -> set[int]:
    """Indices of the round(fraction x cells) largest cells of a map (ties broken by position)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    flat = torch.as_tensor(grid).detach().flatten()
    k = max(1, round(fraction * flat.numel()))
    return set(torch.argsort(flat, descending=True, stable=True)[:k].tolist())


def top_iou(a: torch.Tensor, b: torch.Tensor, fraction: float = 0.2) -> float:
    """Intersection over union of the two maps' top-``fraction`` cells."""
    top_a, top_b = top_cells(a, fraction), top_cells(b, fraction)
    return len(top_a & top_b) / len(top_a | top_b)


def markdown_table(rows: list[dict], digits: int = 2) -> str:
    """A list of dicts with the same keys -> a Markdown table; floats rounded to ``digits``."""
    if not rows:
        raise ValueError("markdown_table needs at least one row")
    keys = list(rows[0])
    cell = lambda v: f"{v:.{digits}f}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(cell(row[k]) for k in keys) + " |" for row in rows]
    return "\n".join(lines)


def randomization_stages(model: torch.nn.Module) -> list[tuple[str, list[torch.nn.Module]]]:
    """The model's layers in groups, from the classifier down to the first convolution: the
    order in which the cascading randomization test (Adebayo et al., 2018) re-initializes them."""
    if isinstance(model, models.ResNet):
        return [("fc", [model.fc]), ("layer4", [model.layer4]), ("layer3", [model.layer3]),
                ("layer2", [model.layer2]), ("layer1", [model.layer1]), ("conv1", [model.conv1, model.bn1])]
    blocks = model._blocks  # EfficientNet-Lite0: groups of blocks that share a resolution
    groups = [("blocks 15", [15]), ("blocks 11-14", range(11, 15)), ("blocks 8-10", range(8, 11)),
              ("blocks 5-7", range(5, 8)), ("blocks 3-4", range(3, 5)), ("blocks 1-2", range(1, 3))]
    return ([("_fc", [model._fc]), ("head", [model._conv_head, model._bn1])]
            + [(name, [blocks[i] for i in ids]) for name, ids in groups]
            + [("stem + block 0", [model._conv_stem, model._bn0, blocks[0]])])


def reinitialize(modules: list[torch.nn.Module], seed: int) -> int:
    """Give every layer inside ``modules`` fresh random weights, as PyTorch initializes a new
    layer (batch norm statistics reset too); seeded. Returns how many layers were reset."""
    torch.manual_seed(seed)
    layers = [m for module in modules for m in module.modules() if hasattr(m, "reset_parameters")]
    for layer in layers:
        layer.reset_parameters()
    return len(layers)


@torch.no_grad()
def cell_curve(model: torch.nn.Module, start: torch.Tensor, end: torch.Tensor, order: torch.Tensor,
               target: int, steps: int = 20, batch: int = 21, softmax: bool = False) -> torch.Tensor:
    """The class score (the logit; its probability if ``softmax``) along a path from ``start`` to ``end``, both (1, 3, H, W): at step i
    the first i/steps of the grid cells in ``order`` show ``end``, the others ``start``.

    Deletion (Petsiuk et al., 2018): start = the photo, end = a blank image, order = most
    important first. Insertion: start = a blurred photo, end = the photo. Returns steps + 1
    scores."""
    cells = order.numel()
    side = int(round(cells ** 0.5))
    if side * side != cells or sorted(order.tolist()) != list(range(cells)):
        raise ValueError(f"order must be a permutation of the cells of a square grid, got {cells} values")
    counts = torch.linspace(0, cells, steps + 1).round().long()
    rank = torch.empty(cells, dtype=torch.long)
    rank[order] = torch.arange(cells)  # when each cell switches to `end`
    masks = (rank[None, :] < counts[:, None]).float().view(-1, 1, side, side)
    masks = F.interpolate(masks, size=start.shape[2:], mode="nearest")
    scores = []
    for i in range(0, steps + 1, batch):
        m = masks[i:i + batch]
        output = model(start * (1 - m) + end * m)
        scores.append((F.softmax(output, dim=1) if softmax else output)[:, target])
    return torch.cat(scores)


def auc(curve: torch.Tensor | np.ndarray) -> float:
    """Area under a curve sampled at evenly spaced points from 0 to 1 (trapezoid rule)."""
    y = np.asarray(torch.as_tensor(curve).detach().cpu(), dtype=np.float64)
    if y.ndim != 1 or y.size < 2:
        raise ValueError(f"auc needs a 1-d curve of at least 2 points, got shape {y.shape}")
    return float((y.sum() - (y[0] + y[-1]) / 2) / (y.size - 1))
