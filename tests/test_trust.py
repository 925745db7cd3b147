"""Unit tests of captum_helpers.trust against hand-computed values and tiny models: the
metrics, the reference maps, and the paired rule with its false-alarm rate."""
import copy

import numpy as np
import pytest
import torch
import torchvision

from captum_helpers.trust import (MIN_ITEMS, Score, Table, auc, beats, beats_all, cell_curves,
                                  cell_order, constant_map, edge_map, false_alarm_rate,
                                  improvement, random_map, randomization_stages, reference_maps,
                                  region_share, reinitialize, rule_table, spearman, ssim, to_grid,
                                  top_cells, top_iou, verdicts)


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


def test_table_shows_html_with_its_values_escaped_and_booleans_as_words():
    table = Table([{"map": "IG <b>", "Spearman |map|": 0.123456, "passes": True},
                   {"map": "x", "Spearman |map|": -1.0, "passes": False}], caption="6 photos")
    shown = table._repr_html_()
    assert "<caption>6 photos</caption>" in shown and "<th>Spearman |map|</th>" in shown
    assert "<td>IG &lt;b&gt;</td><td>0.123</td><td>yes</td>" in shown
    assert "<td>-1.000</td><td>no</td>" in shown
    assert table.rows[0]["passes"] is True
    with pytest.raises(ValueError, match="at least one row"):
        Table([])


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


def test_score_is_the_mean_and_the_sample_standard_deviation():
    # sqrt(((-1)^2 + 0 + 1^2) / (3 - 1))
    score = Score.of([1.0, 2.0, 3.0])
    assert (score.mean, score.sd, str(score)) == (2.0, 1.0, "2.00 ± 1.00")
    assert Score.of(torch.tensor([0.5])).sd == 0.0
    for bad in ([1.0, float("nan")], []):
        with pytest.raises(ValueError, match="finite"):
            Score.of(bad)


def test_the_rule_compares_item_by_item():
    """Photo-to-photo variation is not noise for a paired comparison: the method is 0.05 better
    on every photo, while the photos' own scores spread far wider."""
    reference = [0.2, 0.9, 0.5, 0.7, 0.3, 0.8]
    method = [r - 0.05 for r in reference]
    assert improvement(method, reference, lower_is_better=True).text() == "0.05 ± 0.00"
    assert beats(method, reference, lower_is_better=True)
    assert not beats(reference, method, lower_is_better=True)
    assert beats(reference, method, lower_is_better=False)
    unpaired = Score.of(method).mean + Score.of(method).sd < Score.of(reference).mean - Score.of(
        reference).sd
    assert not unpaired, "the intervals over the photos overlap: an unpaired rule would say no"


def test_the_rule_says_no_to_a_gain_inside_its_own_noise():
    reference = [0.5] * 6
    assert not beats([0.4, 0.6, 0.45, 0.55, 0.5, 0.48], reference, lower_is_better=True)
    assert not beats(reference, reference, lower_is_better=True), "a reference cannot beat itself"


def test_the_rule_needs_six_items_and_pairs():
    with pytest.raises(ValueError, match=f"at least {MIN_ITEMS} items"):
        beats([1.0] * 5, [2.0] * 5, lower_is_better=True)
    with pytest.raises(ValueError, match="one value per item"):
        beats([1.0] * 6, [2.0] * 7, lower_is_better=True)


def test_beats_all_needs_every_reference():
    method = [0.9, 0.8, 0.85, 0.95, 0.9, 0.88]
    refs = {"Random": [0.2, 0.25, 0.15, 0.2, 0.22, 0.18], "Constant": [0.2] * 6}
    assert beats_all(method, refs, lower_is_better=False)
    refs["Edge detector"] = [0.95, 0.85, 0.9, 0.9, 0.92, 0.9]
    assert not beats_all(method, refs, lower_is_better=False)
    assert verdicts({"insertion": {"IG": method, **refs}}, ["IG"], list(refs),
                    {"insertion": False}) == {"IG": {"insertion": False}}


def test_the_false_alarm_rate_of_random_draws_is_small_and_measured():
    """Draws of pure noise: how often one 'beats' another. For six items the rule mean - sd > 0
    is a one-sided t test at t > sqrt(6) with 5 degrees of freedom: about 2.9 % of ordered pairs
    in theory (2.7 % in 20,000 independent pairs here); 120 draws give 14,280 pairs."""
    generator = np.random.default_rng(0)
    draws = [generator.normal(size=6).tolist() for _ in range(120)]
    rate = false_alarm_rate(draws, lower_is_better=True)
    assert 0.015 < rate < 0.05, rate
    shifted = [[v - 3.0 for v in draws[0]], draws[1]]  # a real difference is no false alarm
    assert false_alarm_rate(shifted, lower_is_better=True) == 0.5
    with pytest.raises(ValueError, match="two draws"):
        false_alarm_rate(draws[:1], lower_is_better=True)


def test_rule_table_shows_each_improvement_and_the_verdict():
    scores = {"IG": [0.9, 0.8, 0.85, 0.95, 0.9, 0.88], "Random": [0.2, 0.25, 0.15, 0.2, 0.22, 0.18],
              "Constant": [0.2] * 6, "Edge detector": [0.95, 0.85, 0.9, 0.9, 0.92, 0.9]}
    table = rule_table(scores, ["IG"], ["Random", "Constant", "Edge detector"], False)
    first = table.rows[0]
    assert first["map"] == "IG" and first["beats every reference"] is False
    assert first["improvement over Random"].endswith("✓")
    assert not first["improvement over Edge detector"].endswith("✓")
    assert [row["map"] for row in table.rows] == list(scores)


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


def test_the_references_look_at_no_model():
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    refs = reference_maps(x, seed=3)
    assert list(refs) == ["Random", "Constant", "Edge detector"]
    assert torch.equal(refs["Constant"], constant_map(x)) and refs["Constant"].unique().numel() == 1
    assert torch.equal(refs["Edge detector"], edge_map(x))
    assert torch.equal(refs["Random"], random_map(x, 3))


def test_cell_order_breaks_ties_at_random_and_keeps_the_order_of_distinct_values():
    grid = torch.tensor([[3.0, 1.0], [1.0, 1.0]])
    orders = {tuple(cell_order(grid, seed).tolist()) for seed in range(20)}
    assert all(order[0] == 0 for order in orders), "the largest cell comes first"
    assert len(orders) > 1, "the three tied cells come in orders drawn from the seed"
    assert torch.equal(cell_order(grid, 5), cell_order(grid, 5))


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


def test_the_deletion_check_can_fail():
    """On a tiny model, deleting cells in the order of gradient x input lowers the score faster
    than in the reverse order; the reverse order, a map that points away from the evidence,
    does not beat a random map."""
    model = _Tiny().eval()
    inputs = torch.rand(6, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    areas = {"gradient x input": [], "reversed": [], "Random": []}
    for i in range(6):
        x = inputs[i:i + 1]
        gradient = torch.autograd.functional.jacobian(lambda v: model(v)[0, 0], x)
        order = cell_order(to_grid(gradient * x, size=4, absolute=False), i)
        random_order = cell_order(to_grid(random_map(x, i), size=4, absolute=False), i)
        curves = cell_curves(model, x, torch.zeros_like(x), [order, order.flip(0), random_order],
                             0, steps=8)
        for name, curve in zip(areas, curves):
            areas[name].append(auc(curve))
    assert beats(areas["gradient x input"], areas["reversed"], lower_is_better=True)
    assert not beats(areas["reversed"], areas["Random"], lower_is_better=True)


def test_ssim_of_known_pairs():
    x = torch.rand(20, 20, generator=torch.Generator().manual_seed(0))
    assert ssim.__defaults__[0] == 11, "Wang et al.'s 11 x 11 window"
    assert ssim(x, x) == pytest.approx(1.0)
    assert ssim(x, 5 * x + 2) == pytest.approx(1.0), "each map is scaled by its own range"
    assert ssim(x, 1 - x) < -0.9
    assert abs(ssim(x, torch.rand(20, 20, generator=torch.Generator().manual_seed(1)))) < 0.2
    assert ssim(x, x.T) == pytest.approx(ssim(x.T, x))
    with pytest.raises(ValueError, match="same size"):
        ssim(x, x[:10])


def test_the_agreement_check_can_fail():
    """Notebook 06's chance level for agreement: the same two methods on the next photo. Two maps
    that both follow the photo (its edges, and its edges squared) agree beyond it; two random
    maps, smooth or not, do not."""
    photos = torch.rand(6, 3, 28, 28, generator=torch.Generator().manual_seed(0))
    n, following = 6, [1, 2, 3, 4, 5, 0]

    def agreement(a, b, others):
        return [spearman(to_grid(a[i:i + 1]), to_grid(b[j:j + 1]))
                for i, j in zip(range(n), others)]

    edges = edge_map(photos)
    assert beats(agreement(edges, edges ** 2, range(n)), agreement(edges, edges ** 2, following),
                 lower_is_better=False)
    smooth = torch.nn.functional.avg_pool2d(random_map(photos, 1), 9, stride=1, padding=4)
    for other in (random_map(photos, 2), smooth):
        assert not beats(agreement(edges, other, range(n)), agreement(edges, other, following),
                         lower_is_better=False)
