"""Numbers that say whether an attribution map can be trusted (introduced in 06_can_you_trust_it).

Metrics plumbing only: the attribution calls stay in the notebook. Maps of different methods
are compared on a common grid, as rank correlations and overlaps of their strongest cells.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.models as models

from .language import say

# Cells per side: Layer GradCAM's own resolution (ResNet18's layer3 on a 224-pixel photo). Two
# neighbouring cells are 16 pixels apart (the stride, 224 / 14), and ``to_grid`` averages each
# 16 x 16 block of a pixel map into its cell; but what one cell of the layer sees, its receptive
# field, spans far more: 211 x 211 pixels for layer3[1].conv2, most of the photo.
GRID = 14


# --- Words notebook 06 shows, in both editions ------------------------------------------------
# The notebook's dictionaries are keyed by English names (the tests read them); what it prints
# and plots goes through ``term`` and ``yes`` so that the Chinese edition shows Chinese.

TERMS_ZH = {
    # the tests of the verdict
    "infidelity": "不忠实度", "sensitivity": "敏感度", "deletion_auc": "删除 AUC",
    "insertion_auc": "插入 AUC", "ground_truth": "已知答案",
    # deletion and insertion, infidelity's perturbations
    "deletion, zero fill": "删除，零填充", "deletion, blurred fill": "删除，模糊填充",
    "insertion": "插入", "Gaussian noise": "高斯噪声", "square removal": "方块移除",
    # maps beside the five methods, and the baselines
    "IG, 96 steps": "IG，96 步", "SmoothGrad, fresh noise": "SmoothGrad，新噪声",
    "zero (course)": "零（课程）", "black": "黑色", "zero": "零", "blurred": "模糊",
    # how two maps are compared
    "top-20% IoU": "前 20% IoU", "Spearman |map|": "Spearman |图|",
    "Spearman signed": "Spearman 带符号", "SSIM |map|": "SSIM |图|",
    "Spearman with edges": "Spearman 与边缘", "Spearman with zero": "Spearman 与零基线",
    "share on darkest 10%": "最暗 10% 上的比例",
    # EfficientNet-Lite0's randomization stages (ResNet18's are module names)
    "head": "头部", "blocks 15": "块 15", "blocks 11-14": "块 11-14", "blocks 8-10": "块 8-10",
    "blocks 5-7": "块 5-7", "blocks 3-4": "块 3-4", "blocks 1-2": "块 1-2",
    "stem + block 0": "stem + 块 0",
}


def term(name: str) -> str:
    """A name notebook 06 shows (a test, a fill, a map, a comparison) in this edition's
    language: ``name`` itself in English, its entry in ``TERMS_ZH`` (or ``name``) in Chinese."""
    return say(name, TERMS_ZH.get(name, name))


def yes(ok: bool) -> str:
    """"yes" or "no" in this edition's language, for a table's pass/fail column."""
    return say("yes", "是") if ok else say("no", "否")


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

    def cell(v):  # a "|" inside a cell ("Spearman |map|") would start another column
        return (f"{v:.{digits}f}" if isinstance(v, float) else str(v)).replace("|", "\\|")

    lines = ["| " + " | ".join(map(cell, keys)) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(cell(row[k]) for k in keys) + " |" for row in rows]
    return "\n".join(lines)


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


# --- "Better" means beyond the noise ----------------------------------------------------------
# Every score in notebook 06 is a mean and a spread over photos (and seeds); one rule turns two
# such scores into "better": the intervals [mean - spread, mean + spread] must not touch.

LOWER_IS_BETTER = {"infidelity": True, "sensitivity": True, "deletion_auc": True,
                   "insertion_auc": False, "ground_truth": False}


def summary(values) -> dict[str, float]:
    """{"mean", "spread"} of a score's values (over photos, seeds): the spread is the sample
    standard deviation, 0 for a single value."""
    v = np.asarray([float(x) for x in values], dtype=np.float64)
    if v.size == 0 or not np.isfinite(v).all():
        raise ValueError(f"summary needs finite values, got {v.tolist()}")
    return {"mean": float(v.mean()), "spread": float(v.std(ddof=1)) if v.size > 1 else 0.0}


def better(a: dict, b: dict, lower_is_better: bool) -> bool:
    """Whether score ``a`` beats score ``b`` (both from :func:`summary`): a's interval
    [mean - spread, mean + spread] lies wholly on the better side of b's, not touching it."""
    if lower_is_better:
        return a["mean"] + a["spread"] < b["mean"] - b["spread"]
    return a["mean"] - a["spread"] > b["mean"] + b["spread"]


def beats_all(a: dict, references: dict[str, dict], lower_is_better: bool) -> bool:
    """Whether ``a`` beats every reference score by :func:`better`."""
    return all(better(a, r, lower_is_better) for r in references.values())


def decided_pairs(scores: dict[str, dict], names: list[str],
                  lower_is_better: bool) -> list[tuple[str, str]]:
    """Every pair (a, b) of ``names`` in which score a beats score b by :func:`better`."""
    return [(a, b) for a in names for b in names
            if a != b and better(scores[a], scores[b], lower_is_better)]


def interval(score: dict, digits: int = 2) -> str:
    """A score as text: "mean ± spread"."""
    return f"{score['mean']:.{digits}f} ± {score['spread']:.{digits}f}"


# --- Reference maps: what a method must beat --------------------------------------------------

def edge_map(inputs: torch.Tensor) -> torch.Tensor:
    """Adebayo et al.'s edge-detector control: the Sobel gradient magnitude of each image's
    channel mean, as a (B, C, H, W) map (the same in every channel). It looks at no model."""
    gray = inputs.detach().float().mean(dim=1, keepdim=True)
    sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    edges = F.conv2d(F.pad(gray, (1, 1, 1, 1), mode="replicate"),
                     torch.stack([sobel, sobel.T]).unsqueeze(1))
    return edges.pow(2).sum(dim=1, keepdim=True).sqrt().expand_as(inputs).contiguous()


def random_map(inputs: torch.Tensor, seed: int) -> torch.Tensor:
    """A map of standard normal values of the inputs' shape, drawn from ``seed``: it knows
    nothing of the model or the photo."""
    return torch.randn(inputs.shape, generator=torch.Generator().manual_seed(seed))


def region_share(attributions: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """For each map of a (B, C, H, W) batch, the share of its |attribution| (summed over
    channels) that falls inside ``region``, an (H, W) boolean mask."""
    magnitude = attributions.detach().abs().sum(dim=1)
    return magnitude[:, region].sum(dim=1) / magnitude.flatten(1).sum(dim=1)


# --- Faithfulness scores of many maps against the same perturbations --------------------------

def _scores(model, images: torch.Tensor, targets: torch.Tensor, batch: int) -> torch.Tensor:
    outputs = torch.cat([model(images[i:i + batch]) for i in range(0, len(images), batch)])
    return outputs.gather(1, targets[:, None]).squeeze(1)


@torch.no_grad()
def infidelity(model: torch.nn.Module, perturb, inputs: torch.Tensor, targets,
               maps: dict[str, torch.Tensor], n_samples: int, seed: int, batch: int = 8,
               relative: bool = True) -> dict[str, torch.Tensor]:
    """Yeh et al.'s infidelity of each map in ``maps`` (name -> (B, C, H, W) attributions of
    ``inputs``), as ``captum.metrics.infidelity(..., normalize=True)`` computes it, with the
    same ``n_samples`` perturbations for every map; one value per image.

    ``perturb(inputs, generator)`` returns ``(perturbation, inputs - perturbation)``, as
    captum's ``perturb_func`` does. The model runs once per perturbation for all the maps
    (captum would run it again for each map). ``relative`` divides by the infidelity of a map
    that explains nothing (all zeros), the mean squared change of the score: 0 means the map
    predicts every change, 1 that it predicts none."""
    targets = torch.as_tensor(targets).reshape(-1).expand(len(inputs))
    perturbation, perturbed = perturb(inputs.repeat_interleave(n_samples, dim=0),
                                      torch.Generator().manual_seed(seed))
    change = (_scores(model, inputs, targets, batch).repeat_interleave(n_samples)
              - _scores(model, perturbed, targets.repeat_interleave(n_samples), batch)
              ).view(len(inputs), -1)
    result = {}
    for name, attributions in maps.items():
        predicted = (attributions.repeat_interleave(n_samples, dim=0)
                     * perturbation).flatten(1).sum(1)
        predicted = predicted.view(len(inputs), -1)
        fit, size, total = ((predicted * change).sum(1), predicted.pow(2).sum(1),
                            change.pow(2).sum(1))
        unexplained = total - torch.where(size > 0, fit.pow(2) / size.clamp_min(1e-30),
                                          torch.zeros_like(fit))
        result[name] = unexplained / total if relative else unexplained / n_samples
    return result


def sensitivity(explain, inputs: torch.Tensor, targets, attributions: torch.Tensor, radius: float,
                seed: int) -> torch.Tensor:
    """Yeh et al.'s sensitivity for one random nudge per image: the map of ``inputs`` moved by
    noise uniform in [-radius, radius], ``explain(moved, targets)``, against ``attributions``
    (the map of ``inputs`` itself), as ``captum.metrics.sensitivity_max`` with
    ``n_perturb_samples=1`` computes it: |difference| / |map| (Frobenius norms; 0 for a map
    that does not move). Reusing ``attributions`` saves the explanation captum would redo."""
    noise = torch.empty(inputs.shape).uniform_(-radius, radius,
                                               generator=torch.Generator().manual_seed(seed))
    moved = explain(inputs + noise, targets).detach()
    norm = attributions.detach().flatten(1).norm(dim=1)
    return ((moved - attributions.detach()).flatten(1).norm(dim=1)
            / torch.where(norm > 0, norm, torch.ones_like(norm)))


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 7, sigma: float = 1.5) -> float:
    """Structural similarity (Wang et al., 2004) of two 2-D maps, as Adebayo et al. compare a
    map with its randomized version: each map is first scaled to [0, 1] by its own range, then
    means, variances and covariance are taken in a Gaussian window and the index averaged."""
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
