"""captum_helpers.plotting: show_image draws what it is given; the walkthrough's colormap;
the share of attribution inside a box, and the box drawn where those pixels are."""
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
from captum_helpers.plotting import ROCKET_BOX, draw_box, share_in_box

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
    assert (red == pytest.approx(0.5, abs=0.02) and green == pytest.approx(0.5, abs=0.02)
            and blue == 1.0)


def test_share_in_box_of_an_even_map_is_the_box_area():
    top, left, bottom, right = ROCKET_BOX
    even = torch.ones(1, 3, 224, 224)
    assert share_in_box(even, ROCKET_BOX) == pytest.approx((bottom - top) * (right - left) / 224**2)


def test_share_in_box_sums_channels_then_drops_negative_pixels():
    attr = torch.zeros(1, 3, 10, 10)
    attr[0, :, 1, 1] = 1.0            # inside: +3 over the channels
    attr[0, 0, 8, 8], attr[0, 1, 8, 8] = 2.0, 1.0  # outside: +3
    attr[0, 0, 5, 5], attr[0, 1, 5, 5] = 4.0, -5.0  # outside, -1 after summing: ignored
    attr[0, :, 2, 2] = -10.0          # inside, negative: ignored
    assert share_in_box(attr, (0, 0, 4, 4)) == pytest.approx(0.5)
    assert share_in_box(attr, (0, 0, 9, 9)) == pytest.approx(1.0)  # bottom/right are excluded
    assert share_in_box(attr, (0, 0, 8, 8)) == pytest.approx(0.5)


@pytest.mark.parametrize("attr, box, message", [
    (torch.ones(3, 10, 10), (0, 0, 4, 4), r"shape \(1, C, H, W\), got \(3, 10, 10\)"),
    (torch.ones(2, 3, 10, 10), (0, 0, 4, 4), r"got \(2, 3, 10, 10\)"),
    (torch.ones(1, 1, 10, 10), (0, 0, 4, 11),
     r"box \(0, 0, 4, 11\) is not .* inside a 10 x 10 map"),
    (torch.ones(1, 1, 10, 10), (5, 0, 5, 4), r"box \(5, 0, 5, 4\)"),
    (-torch.ones(1, 1, 10, 10), (0, 0, 4, 4), "no positive part"),
], ids=["no batch", "batch of two", "box too wide", "empty box", "all negative"])
def test_share_in_box_rejects_what_it_cannot_measure(attr, box, message):
    with pytest.raises(ValueError, match=message):
        share_in_box(attr, box)


def test_draw_box_outlines_exactly_the_pixels_share_in_box_counts():
    image = np.zeros((12, 16))
    fig, ax = plt.subplots()
    ax.imshow(image)
    outline = draw_box(ax, (2, 3, 7, 11))
    assert outline in ax.patches
    corners = outline.get_bbox()
    # pixel columns 3..10 and rows 2..6 span 2.5..10.5 and 1.5..6.5 in imshow's coordinates
    assert (corners.x0, corners.x1, corners.y0, corners.y1) == (2.5, 10.5, 1.5, 6.5)
