"""The sanity check of notebook 08 (``trust.randomization_check`` and the paired rule against
the Edge detector) can fail: a "method" that ignores the model fails it, a method whose maps
depend on the weights passes. On a small convolutional network, six photos-like inputs."""
import copy

import pytest
import torch
from captum.attr import Saliency

from captum_helpers import trust
from small_models import Small


def _photo(seed):
    """A 'photo' with edges: a bright rectangle on a faint noisy background."""
    g = torch.Generator().manual_seed(seed)
    x = 0.1 * torch.rand(1, 3, 224, 224, generator=g)
    top, left = torch.randint(0, 120, (2,), generator=g).tolist()
    x[..., top:top + 80, left:left + 90] += 1.0
    return x


@pytest.fixture(scope="module")
def setting():
    torch.manual_seed(0)
    model = Small().eval()
    randomized = copy.deepcopy(model)
    trust.reinitialize([randomized], seed=1)
    inputs = [_photo(seed) for seed in range(trust.MIN_ITEMS)]
    with torch.no_grad():
        targets = [model(x).argmax(1).item() for x in inputs]
    return model, randomized, inputs, targets


def _gradient(model, x, target):
    return Saliency(model).attribute(x, target=target)


def _verdicts(explain, setting):
    """Whether ``explain`` beats the Edge detector on each check, as notebook 08 decides it."""
    method = trust.randomization_check(explain, *setting)
    edges = trust.randomization_check(lambda model, x, t: trust.edge_map(x), *setting)
    return [trust.beats(m, e, lower_is_better=True) for m, e in zip(method, edges)]


def test_the_edge_detectors_row_is_computed_and_is_one(setting):
    check = trust.randomization_check(trust.edge_method, *setting)
    assert check.like_trained == pytest.approx([1.0] * trust.MIN_ITEMS)
    assert check.like_edges == pytest.approx([1.0] * trust.MIN_ITEMS)


@pytest.mark.parametrize("explain", [lambda model, x, t: trust.edge_map(x),
                                     lambda model, x, t: x.abs()],
                         ids=["the edge detector", "the photo itself"])
def test_a_method_that_ignores_the_model_fails(explain, setting):
    assert _verdicts(explain, setting)[0] is False  # its map after randomization is unchanged


def test_a_method_that_depends_on_the_weights_passes(setting):
    check = trust.randomization_check(_gradient, *setting)
    assert max(check.like_trained) < 0.9
    assert _verdicts(_gradient, setting) == [True, True]


def test_random_maps_are_two_independent_draws_near_chance(setting):
    check = trust.randomization_check(trust.random_method(0), *setting)
    assert abs(trust.Score.of(check.like_trained).mean) < 0.2
    draws = [trust.randomization_check(trust.random_method(seed), *setting).like_trained
             for seed in range(4)]
    assert 0 <= trust.false_alarm_rate(draws, lower_is_better=True) <= 0.5


def test_one_target_per_input(setting):
    model, randomized, inputs, targets = setting
    with pytest.raises(ValueError, match="one target per input"):
        trust.randomization_check(_gradient, model, randomized, inputs, targets[:-1])
