"""captum_helpers.speed: the settings are applied and the attributions do not change."""
import copy

import pytest
import torch
import torchvision
from captum.attr import IntegratedGradients, LayerGradCam, Occlusion

from captum_helpers import speed
from captum_helpers.speed import bf16_supported, fast_model, is_fast

RTOL = 1e-3  # the float32-noise tolerance bench/attributions.py checks


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    plain = torchvision.models.resnet18().eval()
    return plain, fast_model(copy.deepcopy(plain))


@pytest.fixture(scope="module")
def image():
    # On some inputs a pre-activation that is zero up to rounding flips its ReLU gate under a
    # different memory layout, moving a gradient map by more than rounding (see bench/attributions.py).
    # This input has none, so the check can be tight.
    torch.manual_seed(0)
    return torch.randn(1, 3, 48, 48)


def assert_close(fast, plain):
    assert fast.shape == plain.shape
    scale = plain.abs().max()
    assert scale > 0
    assert (fast - plain).abs().max() <= RTOL * scale


def test_fast_model_sets_eval_and_channels_last():
    torch.manual_seed(0)
    model = torchvision.models.resnet18()
    model.train()
    assert not is_fast(model)
    same = fast_model(model)
    assert same is model  # in place, as `model = fast_model(model)` reads
    assert not model.training
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    assert is_fast(model)


def test_fast_model_keeps_outputs(models, image):
    plain, fast = models
    with torch.no_grad():
        assert_close(fast(image), plain(image))
        # inputs may stay contiguous or be channels_last
        assert_close(fast(image.contiguous(memory_format=torch.channels_last)), plain(image))


def test_integrated_gradients_batched_agrees(models, image):
    plain, fast = models
    expected = IntegratedGradients(plain).attribute(image, target=3, n_steps=24)
    got = IntegratedGradients(fast).attribute(image, target=3, n_steps=24, internal_batch_size=5)
    assert_close(got, expected)


def test_integrated_gradients_batching_alone_is_exact_to_rounding(models, image):
    _, fast = models
    whole = IntegratedGradients(fast).attribute(image, target=3, n_steps=24)
    batched = IntegratedGradients(fast).attribute(image, target=3, n_steps=24, internal_batch_size=5)
    assert (batched - whole).abs().max() <= 1e-5 * whole.abs().max()


def test_occlusion_batched_agrees(models, image):
    plain, fast = models
    kwargs = dict(target=3, strides=(3, 8, 8), sliding_window_shapes=(3, 15, 15), baselines=0)
    expected = Occlusion(plain).attribute(image, **kwargs)  # 16 occlusions, one at a time
    got = Occlusion(fast).attribute(image, perturbations_per_eval=6, **kwargs)  # 6 + 6 + 4
    assert_close(got, expected)


def test_gradcam_same_layer_agrees(models, image):
    plain, fast = models
    expected = LayerGradCam(plain, plain.layer3[1].conv2).attribute(image, target=3)
    got = LayerGradCam(fast, fast.layer3[1].conv2).attribute(image, target=3)
    assert_close(got, expected)


def test_settings_are_sensible():
    assert isinstance(speed.INTEGRATED_GRADIENTS_BATCH, int) and 1 <= speed.INTEGRATED_GRADIENTS_BATCH <= 200
    assert isinstance(speed.OCCLUSION_BATCH, int) and 1 <= speed.OCCLUSION_BATCH <= 729
    assert isinstance(bf16_supported(), bool)
