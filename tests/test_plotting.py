"""captum_helpers.plotting: show_image draws what it is given; the walkthrough's colormap."""
import os

os.environ.setdefault("MPLBACKEND", "agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from PIL import Image

from captum_helpers import default_cmap, preprocess, show_image

WHITE = (1.0, 1.0, 1.0, 1.0)
BLUE = (0.0, 0.0, 1.0, 1.0)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture
def pixels() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)


# each case: what show_image is given, and the (H, W, 3) array it should draw
INPUTS = {
    "PIL image": lambda p: (Image.fromarray(p), p),
    "uint8 array": lambda p: (p, p),
    "float array in [0, 1]": lambda p: (p / 255, p / 255),
    "(3, H, W) tensor": lambda p: (torch.from_numpy(p / 255).permute(2, 0, 1), p / 255),
    "(1, 3, H, W) tensor": lambda p: (torch.from_numpy(p / 255).permute(2, 0, 1)[None], p / 255),
}


@pytest.mark.parametrize("make", INPUTS.values(), ids=INPUTS.keys())
def test_show_image_draws_the_input_and_returns_fig_ax(pixels, make):
    img, expected = make(pixels)
    fig, ax = show_image(img, title="a cat")
    assert isinstance(fig, Figure) and isinstance(ax, Axes) and ax.figure is fig
    assert len(ax.images) == 1
    np.testing.assert_allclose(np.asarray(ax.images[0].get_array()), expected)
    assert ax.get_title() == "a cat"
    assert not ax.axison


def test_show_image_draws_into_a_given_axes(pixels):
    fig, axes = plt.subplots(1, 2)
    out_fig, out_ax = show_image(pixels, ax=axes[1])
    assert out_fig is fig and out_ax is axes[1]
    assert len(axes[1].images) == 1 and len(axes[0].images) == 0


def test_show_image_rejects_the_normalized_input_img(pixels):
    transformed_img, input_img = preprocess(Image.fromarray(pixels))
    assert input_img.min() < 0  # normalized values leave [0, 1]
    with pytest.raises(ValueError, match=r"values in \[0, 1\].*transformed_img"):
        show_image(input_img)
    show_image(transformed_img)  # the one to pass instead


@pytest.mark.parametrize("bad", [np.zeros((20, 30)), np.zeros((20, 30, 4)), np.zeros((3, 20, 30))],
                         ids=["grayscale", "RGBA", "channels first array"])
def test_show_image_rejects_arrays_that_are_not_rgb(bad):
    with pytest.raises(ValueError, match=r"RGB image.*shape \(" + ", ".join(map(str, bad.shape))):
        show_image(bad)


def test_default_cmap_is_white_at_zero_and_blue_from_a_quarter():
    assert default_cmap(0.0) == pytest.approx(WHITE)
    for value in [0.25, 0.5, 0.75, 1.0]:
        assert default_cmap(value) == pytest.approx(BLUE, abs=1e-6), value
    red, green, blue, _ = default_cmap(0.125)  # half way to blue: a light blue
    assert red == pytest.approx(0.5, abs=0.02) and green == pytest.approx(0.5, abs=0.02) and blue == 1.0
