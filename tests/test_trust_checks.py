"""Notebook 07's checks on tiny models, without the notebook: each check can fail.

The known answer (captum_helpers.trust.known), captum's infidelity with its fitted scale, and
captum's sensitivity, each shown to tell a right map from a wrong one by the course's rule,
``trust.beats``, and to say "no" where it should."""
import numpy as np
import pytest
import torch
from captum.attr import IntegratedGradients, LayerGradCam, Saliency
from captum.metrics import infidelity, sensitivity_max

from captum_helpers import trust
from captum_helpers.trust import (BOX_A, BOX_B, TwoBoxes, answer_share, beats, beats_all,
                                  box_mask, false_alarm_rate, right_share, split_error)

ITEMS = 6  # the notebook's six photos
SIZE = 224


def _conv_net(seed=0):
    """A small nonlinear classifier with 10 classes on 224 x 224 photos."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 5, stride=4, padding=2), torch.nn.Tanh(),
        torch.nn.Conv2d(8, 8, 3, stride=4, padding=1), torch.nn.Tanh(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 10)).eval()


def _linear_net(weights):
    """f(x) = <weights, x> for one class: the gradient is ``weights`` everywhere."""
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(weights.numel(), 1, bias=False))
    with torch.no_grad():
        net[1].weight.copy_(weights.flatten()[None])
    return net.eval()


def _photos(n=ITEMS, seed=0, size=SIZE):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _split_map(shares, box_a=BOX_A, box_b=BOX_B):
    """Maps that look at no model: a constant in A and another in B, whose answers are
    ``shares`` (S_A = share, |S_B| = 1 - |share|)."""
    in_a, in_b = (box_mask(box).float().expand(3, SIZE, SIZE) for box in (box_a, box_b))
    share = torch.as_tensor(shares, dtype=torch.float32).view(-1, 1, 1, 1)
    return share * in_a / in_a.sum() + (1 - share.abs()) * in_b / in_b.sum()


def test_the_boxes_are_disjoint_and_inside_the_photo():
    a, b = box_mask(BOX_A), box_mask(BOX_B)
    assert not (a & b).any() and a.any() and b.any()
    assert a.sum() != b.sum(), "boxes of different sizes: the areas' ratio is not the answer"


@pytest.mark.parametrize("box_b", [(100, 120, 100, 120), (0, 300, 0, 10)])
def test_overlapping_or_outside_boxes_are_refused(box_b):
    with pytest.raises(ValueError):
        TwoBoxes(_conv_net(), BOX_A, box_b)


def test_the_known_model_adds_what_the_classifier_sees_in_each_box():
    net, x = _conv_net(), _photos(2)
    known = TwoBoxes(net)
    a, b = box_mask(BOX_A).float(), box_mask(BOX_B).float()
    with torch.no_grad():
        assert torch.allclose(known(x), net(x * a) + net(x * b), atol=1e-5)
        parts = known.parts(x)
        assert torch.allclose(parts[0], net(x * a), atol=1e-5)


def test_the_right_share_of_a_linear_model_is_its_weight_times_the_pixels_in_a():
    weights = torch.rand(3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    x = _photos(3).abs()
    a, b = box_mask(BOX_A), box_mask(BOX_B)
    from_a, from_b = ((weights * x)[:, :, mask].sum(dim=(1, 2)) for mask in (a, b))
    truth = right_share(TwoBoxes(_linear_net(weights)), x, torch.zeros(3, dtype=torch.long))
    assert torch.allclose(truth, from_a / (from_a + from_b), atol=1e-4)


def test_integrated_gradients_gets_the_split_right_by_its_axioms():
    known, x = TwoBoxes(_conv_net()), _photos(2)
    targets = torch.tensor([3, 7])
    truth = right_share(known, x, targets)
    attributions = IntegratedGradients(known).attribute(x, target=targets, n_steps=64)
    assert max(split_error(attributions, truth)) < 0.01


def test_the_gradient_does_not_get_the_split_by_construction():
    known, x = TwoBoxes(_conv_net()), _photos(2)
    targets = torch.tensor([3, 7])
    truth = right_share(known, x, targets)
    gradient = Saliency(known).attribute(x, target=targets, abs=False)
    assert max(split_error(gradient, truth)) > 0.05


def test_the_known_answer_is_bad_for_all_in_box_a_when_the_truth_is_an_even_split():
    truth = torch.full((ITEMS,), 0.5)
    all_in_a = box_mask(BOX_A).float().expand(ITEMS, 3, SIZE, SIZE)
    assert answer_share(all_in_a).tolist() == [1.0] * ITEMS
    assert split_error(all_in_a, truth) == pytest.approx([0.5] * ITEMS)
    assert split_error(_split_map(truth), truth) == pytest.approx([0.0] * ITEMS, abs=1e-6)


def test_a_map_with_nothing_in_either_box_answers_zero():
    assert answer_share(torch.zeros(2, 3, SIZE, SIZE)).tolist() == [0.0, 0.0]


def test_the_rule_passes_the_right_split_and_fails_all_in_box_a():
    truth = torch.tensor([0.3, 0.45, 0.6, 0.35, 0.5, 0.4])
    photos = _photos()
    references = {name: split_error(m, truth)
                  for name, m in trust.reference_maps(photos, seed=0).items()}
    all_in_a = box_mask(BOX_A).float().expand(ITEMS, 3, SIZE, SIZE)
    assert beats_all(split_error(_split_map(truth), truth), references, lower_is_better=True)
    assert not beats_all(split_error(all_in_a, truth), references, lower_is_better=True)


def test_a_method_that_ignores_the_model_does_not_pass_the_known_answer():
    truth = torch.tensor([0.3, 0.45, 0.6, 0.35, 0.5, 0.4])
    photos = _photos()
    references = {name: split_error(m, truth)
                  for name, m in trust.reference_maps(photos, seed=0).items()}
    # answering like a reference: no improvement on any item, and the rule needs mean - sd > 0
    for name in references:
        assert not beats_all(references[name], references, lower_is_better=True), name
    # the photo itself as a map, and fresh random maps: they know nothing of the answer
    assert not beats_all(split_error(photos, truth), references, lower_is_better=True)
    draws = [split_error(trust.random_map(photos, seed), truth) for seed in range(1, 6)]
    assert not any(beats_all(d, references, lower_is_better=True) for d in draws)


def test_layer_gradcam_on_the_known_model_has_one_map_per_box_and_photo():
    net = _conv_net()
    cam = LayerGradCam(TwoBoxes(net), net[2]).attribute(_photos(3), target=1)
    assert cam.shape[0] == 2 * 3


def _relative_infidelity(net, x, maps, n_samples, seed=0, sd=0.1):
    """captum's normalized infidelity of each map under Gaussian noise, over that of a map of
    zeros; every map meets the same perturbations."""
    def noise():
        generator = torch.Generator().manual_seed(seed)

        def perturb(inputs):
            change = sd * torch.randn(inputs.shape, generator=generator)
            return change, inputs - change
        return perturb

    target = torch.zeros(len(x), dtype=torch.long)
    zero = infidelity(net, noise(), x, torch.zeros_like(x), target=target,
                      n_perturb_samples=n_samples, normalize=True)
    return {name: (infidelity(net, noise(), x, m, target=target, n_perturb_samples=n_samples,
                              normalize=True) / zero).tolist() for name, m in maps.items()}


def test_infidelity_passes_the_gradient_of_a_linear_model_and_puts_random_near_chance():
    weights = torch.randn(3, 16, 16, generator=torch.Generator().manual_seed(2))
    net, x = _linear_net(weights), _photos(size=16)
    maps = {"gradient": weights.expand_as(x)} | {
        f"Random {s}": trust.random_map(x, s) for s in range(8)}
    scores = _relative_infidelity(net, x, maps, n_samples=8)
    assert max(scores["gradient"]) < 1e-6  # it predicts every change
    draws = [scores[f"Random {s}"] for s in range(8)]
    assert np.mean(draws) == pytest.approx(1 - 1 / 8, abs=0.05)  # not 1: beta is fitted
    assert all(beats(scores["gradient"], d, lower_is_better=True) for d in draws)
    assert not any(beats(d, scores["gradient"], lower_is_better=True) for d in draws)
    assert false_alarm_rate(draws, lower_is_better=True) < 0.25


def test_infidelity_fails_a_map_that_predicts_nothing_of_the_change():
    weights = torch.randn(3, 16, 16, generator=torch.Generator().manual_seed(2))
    net, x = _linear_net(weights), _photos(size=16)
    # the gradient of the same class from another model: unrelated to these changes
    other = torch.randn(3, 16, 16, generator=torch.Generator().manual_seed(3)).expand_as(x)
    scores = _relative_infidelity(net, x, {"other": other, "Random": trust.random_map(x, 0)},
                                  n_samples=16)
    assert not beats(scores["other"], scores["Random"], lower_is_better=True)


@pytest.mark.parametrize("n_samples", [4, 16])
def test_the_chance_level_of_relative_infidelity_is_about_one_minus_one_over_n(n_samples):
    weights = torch.randn(3, 16, 16, generator=torch.Generator().manual_seed(4))
    net, x = _linear_net(weights), _photos(n=24, size=16)
    scores = _relative_infidelity(net, x, {"Random": trust.random_map(x, 1)},
                                  n_samples=n_samples)
    assert np.mean(scores["Random"]) == pytest.approx(1 - 1 / n_samples, abs=0.1)


def test_sensitivity_is_zero_for_maps_that_ignore_the_photo_so_no_method_can_beat_them():
    net, x = _conv_net(), _photos(size=32)
    target = torch.zeros(len(x), dtype=torch.long)
    fixed = trust.random_map(x, 0)

    def steady(name):  # captum hands the photos over as a tuple, the nudged ones as a tensor
        def explain(inputs, target):
            if isinstance(inputs, tuple):
                return (explain(inputs[0], target),)
            if name == "gradient":
                return Saliency(net).attribute(inputs, target=target, abs=False)
            return trust.constant_map(inputs) if name == "Constant" else fixed
        return explain

    torch.manual_seed(0)
    moved = {name: sensitivity_max(steady(name), x, target=target, n_perturb_samples=2,
                                   max_examples_per_batch=len(x)).tolist()
             for name in ("gradient", "Constant", "Random")}
    assert moved["Constant"] == [0.0] * ITEMS and moved["Random"] == [0.0] * ITEMS
    assert min(moved["gradient"]) > 0
    assert not beats(moved["gradient"], moved["Constant"], lower_is_better=True)
