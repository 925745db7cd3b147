"""Small additions to ``captum.attr.visualization`` (introduced in 02_integrated_gradients):
the walkthrough's colormap, a photo viewer, and a box to ask "object or background?"."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.colors import LinearSegmentedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from PIL import Image

from .images import to_hwc

# The walkthrough's colormap, which notebook 02 builds in a cell (tests/test_lessons.py keeps
# the two equal): white for no attribution, saturating to blue at a quarter of the scale.
default_cmap = LinearSegmentedColormap.from_list(
    "custom blue", [(0, "#ffffff"), (0.25, "#0000ff"), (1, "#0000ff")], N=256
)


def show_image(
    img: Image.Image | torch.Tensor | np.ndarray,
    title: str | None = None,
    ax: Axes | None = None,
) -> tuple[Figure, Axes]:
    """Draw a photo without axes and return ``(fig, ax)``, like captum's visualizers.

    Stands in for ``viz.visualize_image_attr(None, img, method="original_image")``, which
    raises in captum 0.8 (AxisError) and 0.9 (AttributeError). Accepts a PIL image, a
    (3, H, W) or (1, 3, H, W) tensor in [0, 1], or an (H, W, 3) array.
    """
    if isinstance(img, torch.Tensor):
        img = to_hwc(img)
    array = np.asarray(img)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"show_image expects an RGB image, got an array of shape {array.shape}")
    if array.dtype != np.uint8 and (array.min() < 0 or array.max() > 1):
        raise ValueError(
            "show_image expects values in [0, 1]: pass transformed_img, "
            "not the normalized input_img"
        )
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 6))
    else:
        fig = ax.figure
    ax.imshow(array)
    ax.axis("off")
    if title:
        ax.set_title(title)
    return fig, ax


Box = tuple[int, int, int, int]  # (top, left, bottom, right) in pixels, bottom and right excluded
# The rocket with its service tower in the 224 x 224 crop of img/rocket.jpg, read off the photo.
ROCKET_BOX: Box = (64, 100, 208, 132)


def share_in_box(attributions: torch.Tensor, box: Box) -> float:
    """Share of the positive attribution that lies inside ``box`` (introduced in 02).

    ``attributions`` of shape (1, C, H, W) are summed over channels per pixel, as captum's
    heat maps do; pixels whose sum is negative count as zero. A map that credits every
    pixel alike gives the box's share of the area: compare with that.
    """
    if attributions.dim() != 4 or attributions.shape[0] != 1:
        raise ValueError("share_in_box expects attributions of shape (1, C, H, W), "
                         f"got {tuple(attributions.shape)}")
    top, left, bottom, right = box
    height, width = attributions.shape[2:]
    if not (0 <= top < bottom <= height and 0 <= left < right <= width):
        raise ValueError(f"box {box} is not (top, left, bottom, right) "
                         f"inside a {height} x {width} map")
    positive = attributions.detach().sum(dim=1)[0].clamp(min=0)
    total = positive.sum()
    if total <= 0:
        raise ValueError("the attributions have no positive part to share out")
    return float(positive[top:bottom, left:right].sum() / total)


def draw_box(ax: Axes, box: Box, color: str = "orange") -> Rectangle:
    """Outline ``box`` on an image drawn in ``ax`` and return the rectangle (introduced in 02)."""
    top, left, bottom, right = box
    # imshow centres pixel i on i, so its edges are at i - 0.5 and i + 0.5
    outline = Rectangle((left - 0.5, top - 0.5), right - left, bottom - top,
                        fill=False, edgecolor=color, linewidth=2)
    ax.add_patch(outline)
    return outline
