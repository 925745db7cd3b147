"""Unit tests of captum_helpers.trust against hand-computed values and tiny models."""
import copy

import numpy as np
import pytest
import torch
import torchvision

from captum import metrics
from captum.attr import Saliency

from captum_helpers.trust import (LOWER_IS_BETTER, auc, beats_all, better, cell_curves,
                                  decided_pairs, edge_map, infidelity, interval, markdown_table,
                                  random_map, randomization_stages, region_share, reinitialize,
                                  sensitivity, spearman, ssim, summary, to_grid, top_cells, top_iou)


@pytest.mark.parametrize("a, b, expected", [
    # no ties: 1 - 6 * sum(d^2) / (n (n^2 - 1)) with d = (0, -1, 1, -1, 1): 1 - 24 / 120
    ([10, 20, 30, 40, 50], [1, 3, 2, 5, 4], 0.8),
    # ties share their mean rank: ranks (1, 2.5, 2.5, 4) against (1, 2, 3, 4) give
    # 4.5 / sqrt(4.5 * 5)
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
    """Class 1's score is the mean of the top-left 2x2 cell of a 4x4 grid (8x8 input); class 0's
    is 0."""

    def forward(self, x):
        corner = x[:, :, :2, :2].mean(dim=(1, 2, 3))
        return torch.stack([torch.zeros_like(corner), corner], dim=1)


def test_cell_curve_follows_the_cells_in_order():
    start, end = torch.ones(1, 3, 8, 8), torch.zeros(1, 3, 8, 8)
    corner_first = torch.tensor([0] + list(range(1, 16)))
    corner_last = torch.tensor(list(range(1, 16)) + [0])
    # deleting the only cell the model uses first: the score is gone after the first step
    first = cell_curves(CornerScore(), start, end, [corner_first], target=1, steps=16, batch=5)[0]
    assert first.tolist() == [1.0] + [0.0] * 16
    last = cell_curves(CornerScore(), start, end, [corner_last], target=1, steps=16, batch=5)[0]
    assert last.tolist() == [1.0] * 16 + [0.0]
    assert auc(first) < auc(last)


def test_cell_curve_switches_the_right_share_of_pixels():
    mean_score = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                     torch.nn.Linear(3, 2))
    with torch.no_grad():
        mean_score[2].weight.copy_(torch.tensor([[0.0, 0, 0], [1 / 3, 1 / 3, 1 / 3]]))
        mean_score[2].bias.zero_()
    order = torch.randperm(16, generator=torch.Generator().manual_seed(0))
    curve = cell_curves(mean_score, torch.zeros(1, 3, 8, 8), torch.ones(1, 3, 8, 8), [order],
                        target=1, steps=4)[0]
    assert torch.allclose(curve, torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0]))
    probabilities = cell_curves(mean_score, torch.zeros(1, 3, 8, 8), torch.ones(1, 3, 8, 8),
                                [order], target=1, steps=4, softmax=True)[0]
    assert torch.allclose(probabilities, torch.sigmoid(curve))  # softmax of (0, s) at class 1


def test_cell_curves_share_the_ends_and_follow_each_order():
    start, end = torch.ones(1, 3, 8, 8), torch.zeros(1, 3, 8, 8)
    orders = [torch.tensor([0] + list(range(1, 16))), torch.tensor(list(range(1, 16)) + [0])]
    calls = []
    model = CornerScore()
    model.register_forward_hook(lambda m, i, o: calls.append(len(i[0])))
    curves = cell_curves(model, start, end, orders, target=1, steps=16, batch=10)
    assert curves.tolist() == [[1.0] + [0.0] * 16, [1.0] * 16 + [0.0]]
    assert sum(calls) == 2 + 2 * 15, "the two ends once, then each order's inner steps"
    assert torch.equal(curves[1],
                       cell_curves(CornerScore(), start, end, orders[1:], target=1, steps=16)[0])


@pytest.mark.parametrize("order", [torch.arange(15), torch.tensor([0] * 16)])
def test_cell_curve_rejects_an_order_that_is_no_permutation_of_a_square_grid(order):
    with pytest.raises(ValueError, match="permutation"):
        cell_curves(CornerScore(), torch.ones(1, 3, 8, 8), torch.zeros(1, 3, 8, 8), [order],
                    target=1)


def test_markdown_table():
    rows = [{"pair": "IG – Occlusion", "Spearman": 0.123456, "n": 3},
            {"pair": "x", "Spearman": -1.0, "n": 4}]
    assert markdown_table(rows, digits=3).splitlines() == [
        "| pair | Spearman | n |", "|---|---|---|", "| IG – Occlusion | 0.123 | 3 |",
        "| x | -1.000 | 4 |"]
    # a "|" in a header or a cell is escaped: unescaped, "Spearman |map|" split the header into
    # more columns than the rule below it, and the website showed the table as raw text
    piped = markdown_table([{"Spearman |map|": "a|b"}]).splitlines()
    assert piped == ["| Spearman \\|map\\| |", "|---|", "| a\\|b |"]


def _parameter_ids(modules):
    return {id(p) for m in modules for p in m.parameters()}


def _check_stages_cover_the_model(model):
    stages = randomization_stages(model)
    seen = [_parameter_ids(modules) for _, modules in stages]
    assert all(seen), "every stage has weights to randomize"
    assert sum(len(s) for s in seen) == len(set().union(*seen)), "no weight in two stages"
    assert set().union(*seen) == {id(p) for p in model.parameters()}, (
        "the last stage leaves nothing trained")
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
    for (name, before), after, again in zip(model.named_parameters(), first.parameters(),
                                            second.parameters()):
        assert torch.equal(after, again), f"{name}: same seed, same weights"
        if id(after) not in redrawn:
            assert torch.equal(before, after), f"{name} should keep its weights"
        elif after.dim() > 1:
            # convolution and linear weights (a fresh batch norm is 1s and 0s again)
            assert not torch.equal(before, after), f"{name} was not re-drawn"


def test_summary_is_the_mean_and_the_sample_standard_deviation():
    # sqrt(((-1)^2 + 0 + 1^2) / (3 - 1))
    assert summary([1.0, 2.0, 3.0]) == {"mean": 2.0, "spread": 1.0}
    assert summary(torch.tensor([0.5])) == {"mean": 0.5, "spread": 0.0}
    assert interval(summary([1.0, 2.0, 3.0])) == "2.00 ± 1.00"
    with pytest.raises(ValueError, match="finite"):
        summary([1.0, float("nan")])
    with pytest.raises(ValueError, match="finite"):
        summary([])


@pytest.mark.parametrize("a, b, lower, expected", [
    ({"mean": 1.0, "spread": 0.2}, {"mean": 2.0, "spread": 0.3}, True, True),    # 1.2 < 1.7
    ({"mean": 1.0, "spread": 0.5}, {"mean": 2.0, "spread": 0.5}, True, False),   # 1.5 touches 1.5
    ({"mean": 1.0, "spread": 0.6}, {"mean": 2.0, "spread": 0.5}, True, False),   # overlap
    ({"mean": 2.0, "spread": 0.0}, {"mean": 1.0, "spread": 0.0}, True, False),   # worse
    # higher is better: 1.7 > 1.2
    ({"mean": 2.0, "spread": 0.3}, {"mean": 1.0, "spread": 0.2}, False, True),
    # no noise: any gap counts
    ({"mean": 1.01, "spread": 0.0}, {"mean": 1.0, "spread": 0.0}, False, True),
])
def test_better_needs_intervals_that_do_not_touch(a, b, lower, expected):
    assert better(a, b, lower) is expected


def test_beats_all_needs_every_reference():
    refs = {"Random": {"mean": 0.2, "spread": 0.05}, "Constant": {"mean": 0.2, "spread": 0.0}}
    assert beats_all({"mean": 0.9, "spread": 0.1}, refs, lower_is_better=False)
    refs["Edge detector"] = {"mean": 0.85, "spread": 0.0}
    assert not beats_all({"mean": 0.9, "spread": 0.1}, refs, lower_is_better=False)
    assert LOWER_IS_BETTER == {"infidelity": True, "sensitivity": True, "deletion_auc": True,
                               "insertion_auc": False, "ground_truth": False}


def test_edge_map_is_the_sobel_magnitude_of_the_channel_mean():
    image = torch.zeros(1, 3, 6, 6)
    image[:, :, :, 3:] = 3.0  # a vertical step between columns 2 and 3
    edges = edge_map(image)
    assert edges.shape == image.shape and torch.equal(edges[:, 0], edges[:, 2])
    # Sobel x across the step: (1 + 2 + 1) * 3 on both sides of it, nothing elsewhere
    assert torch.allclose(edges[0, 0, 2:4, 2:4], torch.full((2, 2), 12.0))
    assert edges[0, 0, :, [0, 1, 4, 5]].abs().max() == 0


def test_random_map_repeats_with_its_seed_and_differs_between_seeds():
    x = torch.zeros(2, 3, 4, 4)
    assert torch.equal(random_map(x, 1), random_map(x, 1))
    assert not torch.equal(random_map(x, 1), random_map(x, 2))


def test_region_share_of_known_maps():
    region = torch.zeros(4, 4, dtype=torch.bool)
    region[:2, :2] = True  # a quarter of the image
    maps = torch.ones(2, 3, 4, 4)
    maps[1, :, :2, :2] = -3.0  # the second map puts 3x the weight inside, with the other sign
    assert torch.allclose(region_share(maps, region), torch.tensor([0.25, 12 / (12 + 12)]))


class _Tiny(torch.nn.Module):
    """A small nonlinear classifier of 3 x 8 x 8 inputs, fixed weights."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4 * 64, 3)

    def forward(self, x):
        return self.fc(torch.tanh(self.conv(x)).flatten(1))


def _noise(inputs, generator):
    noise = 0.1 * torch.randn(inputs.shape, generator=generator)
    return noise, inputs - noise


def test_infidelity_gives_captums_numbers_for_every_map():
    model, targets = _Tiny().eval(), [0, 2]
    inputs = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    maps = {"gradient": Saliency(model).attribute(inputs, target=targets, abs=False),
            "random": random_map(inputs, 3)}
    ours = infidelity(model, _noise, inputs, targets, maps, n_samples=16, seed=5, batch=7,
                      relative=False)
    for name, attributions in maps.items():
        generator = torch.Generator().manual_seed(5)  # the same noise, drawn in the same order
        theirs = metrics.infidelity(model, lambda x: _noise(x, generator), inputs, attributions,
                                    target=targets, n_perturb_samples=16, normalize=True)
        assert torch.allclose(ours[name], theirs, rtol=1e-4), name


def test_relative_infidelity_is_0_for_a_perfect_map_and_1_for_none():
    linear = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 2))
    inputs = torch.randn(3, 3, 2, 2, generator=torch.Generator().manual_seed(0))
    # the exact gradient of class 1
    weights = linear[1].weight[1].detach().view(1, 3, 2, 2).expand_as(inputs)
    maps = {"exact": weights, "none": torch.zeros_like(inputs), "half": 0.5 * weights}
    scores = infidelity(linear, _noise, inputs, 1, maps, n_samples=8, seed=0)
    assert torch.allclose(scores["exact"], torch.zeros(3), atol=1e-5)
    assert torch.allclose(scores["half"], torch.zeros(3), atol=1e-5), (
        "normalize=True fits the scale")
    assert torch.equal(scores["none"], torch.ones(3))


def test_sensitivity_gives_captums_numbers():
    model, targets = _Tiny().eval(), [0, 2]
    inputs = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    saliency = Saliency(model)
    explain = lambda x, target: saliency.attribute(x, target=target, abs=False)  # noqa: E731
    ours = sensitivity(explain, inputs, targets, explain(inputs, targets), radius=0.2, seed=4)
    generator = torch.Generator().manual_seed(4)
    theirs = metrics.sensitivity_max(
        explain, inputs, target=targets, n_perturb_samples=1,
        perturb_func=lambda x, r: x + torch.empty(x.shape).uniform_(-r, r, generator=generator),
        perturb_radius=0.2)
    assert torch.allclose(ours, theirs, rtol=1e-5)
    assert (ours > 0).all()
    assert torch.equal(sensitivity(lambda x, t: torch.ones_like(x), inputs, targets,
                                   torch.ones_like(inputs), 0.2, 0),
                       torch.zeros(2)), "a map that ignores the input does not move"


def test_ssim_of_known_pairs():
    x = torch.rand(20, 20, generator=torch.Generator().manual_seed(0))
    assert ssim(x, x) == pytest.approx(1.0)
    assert ssim(x, 5 * x + 2) == pytest.approx(1.0), "each map is scaled by its own range"
    assert ssim(x, 1 - x) < -0.9
    assert abs(ssim(x, torch.rand(20, 20, generator=torch.Generator().manual_seed(1)))) < 0.2
    assert ssim(x, x.T) == pytest.approx(ssim(x.T, x))
    with pytest.raises(ValueError, match="same size"):
        ssim(x, x[:10])


def test_decided_pairs_lists_only_comparisons_beyond_the_noise():
    scores = {"a": {"mean": 1.0, "spread": 0.1}, "b": {"mean": 2.0, "spread": 0.1},
              "c": {"mean": 1.5, "spread": 0.6}}
    assert decided_pairs(scores, ["a", "b", "c"], lower_is_better=True) == [("a", "b")]
    assert decided_pairs(scores, ["a", "b", "c"], lower_is_better=False) == [("b", "a")]
