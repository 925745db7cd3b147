"""Unit tests of captum_helpers.trust against hand-computed values and tiny models."""
import copy

import numpy as np
import pytest
import torch
import torchvision

from captum_helpers.trust import (auc, cell_curve, markdown_table, randomization_stages, reinitialize,
                                  spearman, to_grid, top_cells, top_iou)


@pytest.mark.parametrize("a, b, expected", [
    # no ties: 1 - 6 * sum(d^2) / (n (n^2 - 1)) with d = (0, -1, 1, -1, 1): 1 - 24 / 120
    ([10, 20, 30, 40, 50], [1, 3, 2, 5, 4], 0.8),
    # ties share their mean rank: ranks (1, 2.5, 2.5, 4) against (1, 2, 3, 4) give 4.5 / sqrt(4.5 * 5)
    ([1, 2, 2, 3], [1, 2, 3, 4], 4.5 / np.sqrt(22.5)),
    ([1, 2, 3, 4], [4, 3, 2, 1], -1.0),
    ([3, 3, 3, 3], [1, 2, 3, 4], 0.0),  # a constant map has no order
])
def test_spearman_matches_hand_ranked_examples(a, b, expected):
    assert spearman(torch.tensor(a, dtype=torch.float32), np.array(b)) == pytest.approx(expected)


def test_spearman_sees_only_the_order():
    x = torch.randn(14, 14, generator=torch.Generator().manual_seed(0))
    assert spearman(x, torch.exp(3 * x)) == pytest.approx(1.0)
    assert spearman(x, -x ** 3) == pytest.approx(-1.0)


def test_spearman_rejects_maps_of_different_sizes():
    with pytest.raises(ValueError, match="same size"):
        spearman(torch.zeros(14, 14), torch.zeros(7, 7))


def test_top_iou_of_known_masks():
    a = torch.arange(10.0).view(2, 5)  # top 20% = the 2 largest: cells 9 and 8
    b = torch.tensor([0, 1, 2, 3, 4, 5, 6, 9, 8, 7.0]).view(2, 5)  # top 2: cells 7 and 8
    assert top_cells(a, 0.2) == {8, 9}
    assert top_cells(b, 0.2) == {7, 8}
    assert top_iou(a, b, 0.2) == pytest.approx(1 / 3)  # {8} of {7, 8, 9}
    assert top_iou(a, a, 0.2) == 1.0
    assert top_iou(a, -a, 0.2) == 0.0


@pytest.mark.parametrize("fraction", [0, -0.1, 1.5])
def test_top_cells_rejects_fractions_outside_0_1(fraction):
    with pytest.raises(ValueError, match="fraction"):
        top_cells(torch.zeros(4, 4), fraction)


@pytest.mark.parametrize("curve, expected", [
    (torch.linspace(0, 1, 11), 0.5),  # y = x
    (torch.full((5,), 0.3), 0.3),
    (torch.tensor([1.0, 0.0]), 0.5),
    (torch.linspace(0, 1, 1001) ** 2, 1 / 3),  # y = x^2, trapezoid error ~1e-7
])
def test_auc_of_known_curves(curve, expected):
    assert auc(curve) == pytest.approx(expected, abs=1e-6)


def test_auc_needs_a_curve():
    with pytest.raises(ValueError, match="at least 2 points"):
        auc(torch.tensor([1.0]))


def test_to_grid_sums_channels_then_averages_cells():
    attributions = torch.zeros(1, 3, 28, 28)
    attributions[0, :, :14, :14] = -1.0  # top-left quarter, all three channels
    attributions[0, 0, 14:, 14:] = 2.0  # bottom-right quarter, one channel
    attributions[0, 1, 14, 14] = 4.0  # one pixel of the bottom-right quarter
    expected = torch.tensor([[3.0, 0.0], [0.0, 2.0 + 4.0 / 196]])
    assert torch.allclose(to_grid(attributions, size=2), expected)
    expected[0, 0] = -3.0
    assert torch.allclose(to_grid(attributions, size=2, absolute=False), expected)


def test_to_grid_rejects_a_bare_image():
    with pytest.raises(ValueError, match=r"\(1, C, H, W\)"):
        to_grid(torch.zeros(3, 224, 224))


class CornerScore(torch.nn.Module):
    """Class 1's score is the mean of the top-left 2x2 cell of a 4x4 grid (8x8 input); class 0's is 0."""

    def forward(self, x):
        corner = x[:, :, :2, :2].mean(dim=(1, 2, 3))
        return torch.stack([torch.zeros_like(corner), corner], dim=1)


def test_cell_curve_follows_the_cells_in_order():
    start, end = torch.ones(1, 3, 8, 8), torch.zeros(1, 3, 8, 8)
    corner_first = torch.tensor([0] + list(range(1, 16)))
    corner_last = torch.tensor(list(range(1, 16)) + [0])
    # deleting the only cell the model uses first: the score is gone after the first step
    first = cell_curve(CornerScore(), start, end, corner_first, target=1, steps=16, batch=5)
    assert first.tolist() == [1.0] + [0.0] * 16
    last = cell_curve(CornerScore(), start, end, corner_last, target=1, steps=16, batch=5)
    assert last.tolist() == [1.0] * 16 + [0.0]
    assert auc(first) < auc(last)


def test_cell_curve_switches_the_right_share_of_pixels():
    mean_score = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(3, 2))
    with torch.no_grad():
        mean_score[2].weight.copy_(torch.tensor([[0.0, 0, 0], [1 / 3, 1 / 3, 1 / 3]]))
        mean_score[2].bias.zero_()
    order = torch.randperm(16, generator=torch.Generator().manual_seed(0))
    curve = cell_curve(mean_score, torch.zeros(1, 3, 8, 8), torch.ones(1, 3, 8, 8), order, target=1, steps=4)
    assert torch.allclose(curve, torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0]))
    probabilities = cell_curve(mean_score, torch.zeros(1, 3, 8, 8), torch.ones(1, 3, 8, 8), order,
                               target=1, steps=4, softmax=True)
    assert torch.allclose(probabilities, torch.sigmoid(curve))  # softmax of (0, s) at class 1


@pytest.mark.parametrize("order", [torch.arange(15), torch.tensor([0] * 16)])
def test_cell_curve_rejects_an_order_that_is_no_permutation_of_a_square_grid(order):
    with pytest.raises(ValueError, match="permutation"):
        cell_curve(CornerScore(), torch.ones(1, 3, 8, 8), torch.zeros(1, 3, 8, 8), order, target=1)


def test_markdown_table():
    rows = [{"pair": "IG – Occlusion", "Spearman": 0.123456, "n": 3}, {"pair": "x", "Spearman": -1.0, "n": 4}]
    assert markdown_table(rows, digits=3).splitlines() == [
        "| pair | Spearman | n |", "|---|---|---|", "| IG – Occlusion | 0.123 | 3 |", "| x | -1.000 | 4 |"]


def _parameter_ids(modules):
    return {id(p) for m in modules for p in m.parameters()}


def _check_stages_cover_the_model(model):
    stages = randomization_stages(model)
    seen = [_parameter_ids(modules) for _, modules in stages]
    assert all(seen), "every stage has weights to randomize"
    assert sum(len(s) for s in seen) == len(set().union(*seen)), "no weight in two stages"
    assert set().union(*seen) == {id(p) for p in model.parameters()}, "the last stage leaves nothing trained"
    return [name for name, _ in stages]


def test_resnet18_stages_run_from_the_classifier_down():
    names = _check_stages_cover_the_model(torchvision.models.resnet18())
    assert names == ["fc", "layer4", "layer3", "layer2", "layer1", "conv1"]


def test_efficientnet_lite0_stages_run_from_the_classifier_down(lite0):
    names = _check_stages_cover_the_model(lite0)
    assert names[0] == "_fc" and names[-1] == "stem + block 0" and len(names) == 9


def test_reinitialize_changes_only_the_given_layers_and_repeats_with_its_seed():
    model = torchvision.models.resnet18()
    first, second = copy.deepcopy(model), copy.deepcopy(model)
    for twin in (first, second):
        # fc; layer4[0]: 2 convolutions, 2 batch norms, the downsample's convolution and batch norm;
        # layer4[1]: 2 convolutions, 2 batch norms
        assert reinitialize([twin.fc, twin.layer4], seed=3) == 1 + 6 + 4
    redrawn = _parameter_ids([first.fc, first.layer4])
    for (name, before), after, again in zip(model.named_parameters(), first.parameters(), second.parameters()):
        assert torch.equal(after, again), f"{name}: same seed, same weights"
        if id(after) not in redrawn:
            assert torch.equal(before, after), f"{name} should keep its weights"
        elif after.dim() > 1:  # convolution and linear weights (a fresh batch norm is 1s and 0s again)
            assert not torch.equal(before, after), f"{name} was not re-drawn"
