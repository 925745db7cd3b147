"""Small additions to ``captum.attr.visualization`` (introduced in 02_integrated_gradients)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.colors import LinearSegmentedColormap
from matplotlib.figure import Figure
from PIL import Image

from .images import to_hwc

# The walkthrough's colormap: white for no attribution, saturating to blue at a quarter of the max.
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
    raises AxisError in captum 0.8. Accepts a PIL image, a (3, H, W) or (1, 3, H, W) tensor
    in [0, 1], or an (H, W, 3) array.
    """
    if isinstance(img, torch.Tensor):
        img = to_hwc(img)
    array = np.asarray(img)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"show_image expects an RGB image, got an array of shape {array.shape}")
    if array.dtype != np.uint8 and (array.min() < 0 or array.max() > 1):
        raise ValueError(
            "show_image expects values in [0, 1]: pass transformed_img, not the normalized input_img"
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
