"""IncrementalOcclusion (captum_helpers/incremental.py): captum's Occlusion, computed only where
each patch changes the network. It must return captum's attributions (to 1e-4 of their range)
on small and real models with random weights, windows that overlap, windows cut by the border,
channel windows, strides larger than a layer's and per-pixel baselines; fall back to captum,
saying so once, where it cannot; and count the convolution work it does by the rule a hand
count follows."""
from __future__ import annotations

import warnings

import pytest
import torch
import torchvision
from captum.attr import Occlusion
from torch import nn

from captum_helpers import IncrementalOcclusion
from captum_helpers import incremental

TOLERANCE = 1e-4  # of the attribution's range


def both(model, x, **kwargs):
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the incremental path, not a fallback
        got = IncrementalOcclusion(model).attribute(x, **kwargs)
    want = Occlusion(model).attribute(x, perturbations_per_eval=16, **kwargs)
    return got, want


def assert_same(got, want):
    assert got.shape == want.shape
    spread = (want.max() - want.min()).item()
    assert spread > 0, "a map that is flat everywhere tests nothing"
    assert (got - want).abs().max().item() <= TOLERANCE * spread


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
        nn.MaxPool2d(3, 2, 1), nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2), nn.ReLU6(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 5))


class Residual(nn.Module):
    """A block with a skip connection, as ResNets and MBConv blocks have."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.stem = nn.Conv2d(3, 4, 5, stride=2, padding=2)
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = x + self.conv(x)
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


@pytest.mark.parametrize("shape, window, strides", [
    ((3, 20, 20), (3, 5, 5), (3, 3, 3)),  # windows that overlap
    ((3, 21, 19), (1, 6, 7), (1, 5, 4)),  # one channel at a time, cut by the border
    ((3, 16, 16), (3, 4, 4), (3, 4, 4)),  # side by side, strides larger than the layers'
    ((3, 17, 23), (3, 17, 5), (3, 1, 5)),  # as tall as the photo
])
def test_equals_captum_on_a_small_network(shape, window, strides):
    torch.manual_seed(2)
    x = torch.rand(1, *shape)
    assert_same(*both(small_net(), x, target=1, sliding_window_shapes=window, strides=strides,
                      baselines=0.0))


def test_equals_captum_with_a_skip_connection_a_baseline_tensor_and_two_photos():
    torch.manual_seed(3)
    x, baseline = torch.rand(2, 3, 18, 18), torch.rand(1, 3, 18, 18)
    got, want = both(Residual(), x, target=[0, 2], sliding_window_shapes=(3, 6, 6),
                     strides=(3, 4, 4), baselines=baseline)
    assert_same(got, want)


def test_equals_captum_on_resnet18_with_random_weights():
    torch.manual_seed(4)
    model = torchvision.models.resnet18()
    x = torch.rand(1, 3, 64, 64)
    assert_same(*both(model, x, target=7, sliding_window_shapes=(3, 15, 15), strides=(3, 8, 8),
                      baselines=0))


def test_equals_captum_on_efficientnet_lite0(lite0):
    """EfficientNet-Lite0: depthwise convolutions, TensorFlow's asymmetric "same" padding,
    ReLU6 and skip connections."""
    torch.manual_seed(5)
    x = torch.rand(1, 3, 64, 64)
    assert_same(*both(lite0, x, target=285, sliding_window_shapes=(3, 20, 20),
                      strides=(3, 11, 11), baselines=0))


class Doubled(nn.Module):
    """A layer the incremental path does not know: an upsampling."""

    def __init__(self) -> None:
        super().__init__()
        self.up, self.conv = nn.Upsample(scale_factor=2), nn.Conv2d(3, 2, 3)

    def forward(self, x):
        return self.conv(self.up(x)).mean((2, 3))


def test_what_it_cannot_do_goes_to_captum_with_one_warning(monkeypatch):
    monkeypatch.setattr(incremental, "_warned", set())
    torch.manual_seed(6)
    model, x = Doubled().eval(), torch.rand(1, 3, 8, 8)
    explainer = IncrementalOcclusion(model)
    with pytest.warns(UserWarning, match="computed by captum's Occlusion instead") as said:
        got = explainer.attribute(x, target=1, sliding_window_shapes=(3, 2, 2), strides=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once: not again
        again = explainer.attribute(x, target=1, sliding_window_shapes=(3, 2, 2), strides=2)
    want = Occlusion(model).attribute(x, target=1, sliding_window_shapes=(3, 2, 2), strides=2,
                                      perturbations_per_eval=incremental.PATCHES)
    assert len(said) == 1 and "Upsample" in str(said[0].message)
    assert torch.equal(got, want) and torch.equal(again, want)


def test_the_convolution_work_follows_the_hand_count():
    """One 3 x 3 convolution (padding 1) on a 12 x 12 photo, windows of 4 at strides of 4: 9
    patches starting at rows and columns 0, 4, 8. A patch at row 4 changes output rows 3 to 8
    (its rows widened by the kernel's reach of 1): 6 rows; at row 0, rows 0 to 4 (5), at row 8,
    7 to 11 (5). Every patch computes a window of the largest size, 6 x 6 outputs, each of
    2 channels from 3 x 3 x 3 inputs: 9 x 36 x 2 x 27 = 17,496 multiply-adds, against
    (9 + 1) x 144 x 2 x 27 = 77,760 for captum's 9 occluded copies and the photo."""
    torch.manual_seed(7)
    model = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    explainer = IncrementalOcclusion(model.eval())
    explainer.attribute(torch.rand(1, 3, 12, 12), target=0, sliding_window_shapes=(3, 4, 4),
                        strides=(3, 4, 4))
    assert (explainer.macs, explainer.full_macs) == (17_496, 77_760)
