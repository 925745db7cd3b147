"""The metrics of the trust notebooks: maps compared on a common grid (rank correlation, overlap
of their strongest cells, structural similarity), deletion and insertion curves, the share of a
map inside a region, and the layers the randomization test resets. Plumbing only: the
attribution calls, and captum's own metrics (infidelity, sensitivity), stay in the notebooks.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.models as models


# Cells per side: Layer GradCAM's own resolution (ResNet18's layer3 on a 224-pixel photo). Two
# neighbouring cells are 16 pixels apart (the stride, 224 / 14), and ``to_grid`` averages each
# 16 x 16 block of a pixel map into its cell; but what one cell of the layer sees, its receptive
# field, spans far more: 211 x 211 pixels for layer3[1].conv2, most of the photo.
GRID = 14


def to_grid(attributions: torch.Tensor, size: int = GRID, absolute: bool = True) -> torch.Tensor:
    """(1, C, H, W) attributions -> (size, size) map: |values| (or signed values) summed over
    channels, then averaged over each cell of a size x size grid."""
    if attributions.dim() != 4 or attributions.shape[0] != 1:
        raise ValueError("to_grid expects attributions of shape (1, C, H, W), "
                         f"got {tuple(attributions.shape)}")
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


def cell_order(grid: torch.Tensor, seed: int) -> torch.Tensor:
    """The cells of a map from the largest value to the smallest, as flat indices; cells of equal
    value (Occlusion's windows cover several cells) in an order drawn from ``seed``, so that no
    method gains from where its ties happen to lie."""
    flat = torch.as_tensor(grid).detach().flatten()
    shuffle = torch.randperm(flat.numel(), generator=torch.Generator().manual_seed(seed))
    return shuffle[torch.argsort(flat[shuffle], descending=True, stable=True)]


def top_cells(grid: torch.Tensor, fraction: float = 0.2, seed: int = 0) -> set[int]:
    """Indices of the round(fraction x cells) largest cells of a map (ties drawn from ``seed``)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    order = cell_order(grid, seed)
    return set(order[:max(1, round(fraction * order.numel()))].tolist())


def top_iou(a: torch.Tensor, b: torch.Tensor, fraction: float = 0.2, seed: int = 0) -> float:
    """Intersection over union of the two maps' top-``fraction`` cells."""
    top_a, top_b = top_cells(a, fraction, seed), top_cells(b, fraction, seed + 1)
    return len(top_a & top_b) / len(top_a | top_b)


def randomization_stages(model: torch.nn.Module) -> list[tuple[str, list[torch.nn.Module]]]:
    """The model's layers in groups, from the classifier down to the first convolution: the
    order in which the cascading randomization test (Adebayo et al., 2018) re-initializes them."""
    if isinstance(model, models.ResNet):
        return [("fc", [model.fc]), ("layer4", [model.layer4]), ("layer3", [model.layer3]),
                ("layer2", [model.layer2]), ("layer1", [model.layer1]),
                ("conv1", [model.conv1, model.bn1])]
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
def cell_curves(model: torch.nn.Module, start: torch.Tensor, end: torch.Tensor,
                orders: list[torch.Tensor], target: int, steps: int = 20, batch: int = 21,
                softmax: bool = False) -> torch.Tensor:
    """The class score (the logit; its probability if ``softmax``) along paths from ``start`` to
    ``end``, both (1, 3, H, W), one path per order: at step i the first i/steps of the grid cells
    in the order show ``end``, the others ``start``. Returns (len(orders), steps + 1) scores.

    Deletion (Petsiuk et al., 2018): start = the photo, end = a filled image, order = most
    important first. Insertion: start = a blurred photo, end = the photo. The two ends are the
    same for every order, so they go through the model once; the other images ``batch`` at a
    time."""
    cells = orders[0].numel()
    side = int(round(cells ** 0.5))
    for order in orders:
        if (side * side != cells or order.numel() != cells
                or sorted(order.tolist()) != list(range(cells))):
            raise ValueError("each order must be a permutation of the cells of a square grid, "
                             f"got {order.numel()} values")
    counts = torch.linspace(0, cells, steps + 1).round().long()[1:-1]
    masks = []
    for order in orders:
        rank = torch.empty(cells, dtype=torch.long)
        rank[order] = torch.arange(cells)  # when each cell switches to `end`
        masks.append((rank[None, :] < counts[:, None]).float())
    masks = F.interpolate(torch.cat(masks).view(-1, 1, side, side), size=start.shape[2:],
                          mode="nearest")

    def score(images):
        output = torch.cat([model(images[i:i + batch]) for i in range(0, len(images), batch)])
        return (F.softmax(output, dim=1) if softmax else output)[:, target]

    ends = score(torch.cat([start, end]))
    inner = score(start * (1 - masks) + end * masks).view(len(orders), steps - 1)
    return torch.cat([ends[0].expand(len(orders), 1), inner, ends[1].expand(len(orders), 1)], dim=1)


def auc(curve: torch.Tensor | np.ndarray) -> float:
    """Area under a curve sampled at evenly spaced points from 0 to 1 (trapezoid rule)."""
    y = np.asarray(torch.as_tensor(curve).detach().cpu(), dtype=np.float64)
    if y.ndim != 1 or y.size < 2:
        raise ValueError(f"auc needs a 1-d curve of at least 2 points, got shape {y.shape}")
    return float((y.sum() - (y[0] + y[-1]) / 2) / (y.size - 1))


def region_share(attributions: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """For each map of a (B, C, H, W) batch, the share of its |attribution| (summed over
    channels) that falls inside ``region``, an (H, W) boolean mask."""
    magnitude = attributions.detach().abs().sum(dim=1)
    return magnitude[:, region].sum(dim=1) / magnitude.flatten(1).sum(dim=1)


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 11, sigma: float = 1.5) -> float:
    """Structural similarity (Wang et al., 2004) of two 2-D maps, as Adebayo et al. compare a
    map with its randomized version: each map is first scaled to [0, 1] by its own range, then
    means, variances and covariance are taken in Wang et al.'s 11 x 11 Gaussian window (sigma
    1.5) and the index averaged."""
    maps = []
    for m in (a, b):
        m = torch.as_tensor(m).detach().double()
        if m.dim() != 2:
            raise ValueError(f"ssim compares 2-d maps, got shape {tuple(m.shape)}")
        span = m.max() - m.min()
        maps.append(((m - m.min()) / span if span > 0 else torch.zeros_like(m))[None, None])
    if maps[0].shape != maps[1].shape:
        raise ValueError("ssim needs maps of the same size, "
                         f"got {tuple(a.shape)} and {tuple(b.shape)}")
    x, y = maps
    g = torch.exp(-(torch.arange(window, dtype=torch.float64) - (window - 1) / 2) ** 2
                  / (2 * sigma ** 2))
    kernel = (g[:, None] * g[None, :] / g.sum() ** 2)[None, None]

    def blur(t):
        return F.conv2d(t, kernel)

    mx, my = blur(x), blur(y)
    vx, vy, cov = blur(x * x) - mx ** 2, blur(y * y) - my ** 2, blur(x * y) - mx * my
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    index = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
    return float(index.mean())
