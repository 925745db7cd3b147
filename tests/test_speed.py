"""captum_helpers.speed: the settings are applied, the attributions do not change, and the
occlusion count is the number of copies captum really runs."""
import copy

import pytest
import torch
import torchvision
from captum.attr import IntegratedGradients, LayerGradCam, Occlusion

from captum_helpers import speed
from captum_helpers.speed import bf16_supported, fast_model, occlusion_windows

# "the same result": the float32-noise tolerance bench/attributions.py checks (its RTOL)
RTOL = 1e-3
WALKTHROUGH_OCCLUSION = dict(input_shape=(3, 224, 224), sliding_window_shapes=(3, 15, 15),
                             strides=(3, 8, 8))


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    plain = torchvision.models.resnet18().eval()
    return plain, fast_model(copy.deepcopy(plain))


@pytest.fixture(scope="module")
def image():
    # On some inputs a pre-activation that is zero up to rounding flips its ReLU gate under a
    # different memory layout, moving a gradient map by ~1e-4 of its maximum
    # (see bench/attributions.py).
    torch.manual_seed(0)
    return torch.randn(1, 3, 48, 48)


def assert_close(got, expected):
    assert got.shape == expected.shape
    scale = expected.abs().max()
    assert scale > 0
    assert (got - expected).abs().max() <= RTOL * scale


def test_fast_model_sets_eval_and_channels_last():
    torch.manual_seed(0)
    model = torchvision.models.resnet18()
    model.train()
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and not all(c.weight.is_contiguous(memory_format=torch.channels_last)
                             for c in convs)  # 1x1 ones are both
    same = fast_model(model)
    assert same is model  # in place, as `model = fast_model(model)` reads
    assert not model.training
    assert all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)


def test_fast_model_keeps_outputs(models, image):
    plain, fast = models
    with torch.no_grad():
        assert_close(fast(image), plain(image))
        # inputs may stay contiguous or be channels_last
        assert_close(fast(image.contiguous(memory_format=torch.channels_last)), plain(image))


@pytest.mark.parametrize("layout, batch", [("fast", None), ("plain", 5), ("fast", 5)])
def test_integrated_gradients_same_result(models, image, layout, batch):
    plain, fast = models
    expected = IntegratedGradients(plain).attribute(image, target=3, n_steps=24)
    model = fast if layout == "fast" else plain
    got = IntegratedGradients(model).attribute(image, target=3, n_steps=24,
                                               internal_batch_size=batch)
    assert_close(got, expected)


def test_occlusion_batched_same_result(models, image):
    plain, fast = models
    kwargs = dict(target=3, strides=(3, 8, 8), sliding_window_shapes=(3, 15, 15), baselines=0)
    expected = Occlusion(plain).attribute(image, **kwargs)  # 36 occlusions, one at a time
    got = Occlusion(fast).attribute(image, perturbations_per_eval=5, **kwargs)  # 7 x 5 + 1
    assert_close(got, expected)


def test_gradcam_same_layer_same_result(models, image):
    plain, fast = models
    expected = LayerGradCam(plain, plain.layer3[1].conv2).attribute(image, target=3)
    got = LayerGradCam(fast, fast.layer3[1].conv2).attribute(image, target=3)
    assert_close(got, expected)


class CountingModel(torch.nn.Module):
    """A tiny classifier that counts the images each forward pass receives."""

    def __init__(self):
        super().__init__()
        self.calls, self.images = 0, 0
        self.register_forward_pre_hook(self._count)

    @staticmethod
    def _count(module, inputs):
        module.calls += 1
        module.images += inputs[0].shape[0]

    def forward(self, x):
        return torch.stack([x.mean(dim=(1, 2, 3)), x.amax(dim=(1, 2, 3))], dim=1)


@pytest.mark.parametrize("shape, window, strides, expected", [
    ((3, 224, 224), (3, 15, 15), (3, 8, 8), 784),  # the walkthrough's call: 28 x 28
    ((3, 224, 224), (3, 45, 45), (3, 20, 20), 100),  # notebook 03's exercise: 10 x 10
    ((3, 48, 48), (3, 15, 15), (3, 8, 8), 36),  # (48 - 15) / 8 = 4.1: a sixth start at the edge
    ((3, 32, 40), (3, 16, 16), (3, 8, 8), 12),  # divisible: 3 x 4
    ((1, 18, 23), (1, 5, 7), (1, 3, 5), 30),  # odd sizes: 6 x 5
    ((2, 20, 20), (1, 20, 9), (1, 1, 5), 8),  # a window as tall as the input: 2 x 1 x 4
])
def test_occlusion_windows_counts_captums_forward_passes(shape, window, strides, expected):
    assert occlusion_windows(shape, window, strides) == expected
    model = CountingModel()
    Occlusion(model).attribute(torch.rand(1, *shape), target=0, sliding_window_shapes=window,
                               strides=strides, baselines=0)
    assert (model.calls, model.images) == (expected + 1, expected + 1)  # plus the unoccluded input
    batched = CountingModel()
    Occlusion(batched).attribute(torch.rand(1, *shape), target=0, sliding_window_shapes=window,
                                 strides=strides, baselines=0, perturbations_per_eval=4)
    assert (batched.calls, batched.images) == (1 + -(-expected // 4), expected + 1)


def test_occlusion_windows_rejects_a_window_larger_than_the_input():
    with pytest.raises(ValueError, match="exceeds"):
        occlusion_windows((3, 10, 10), (3, 15, 15), 8)


def test_batches_divide_the_walkthroughs_work():
    # speed.py's claim: IG's 200 steps in 20 passes of 10, the 784 occlusions in 28 full passes
    assert 200 % speed.INTEGRATED_GRADIENTS_BATCH == 0
    windows = occlusion_windows(**WALKTHROUGH_OCCLUSION)
    assert windows == 784 and windows % speed.OCCLUSION_BATCH == 0
    assert windows // speed.OCCLUSION_BATCH == 28


@pytest.mark.parametrize("avx512_bf16, amx, expected", [
    (False, False, False), (True, False, True), (False, True, True), (RuntimeError, False, False),
])
def test_bf16_supported_reads_the_cpu_flags(monkeypatch, avx512_bf16, amx, expected):
    def flag(value):
        def check():
            if value is RuntimeError:
                raise RuntimeError("no cpuinfo")
            return value
        return check

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", flag(avx512_bf16), raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", flag(amx), raising=False)
    assert bf16_supported() is expected


# ---------------------------------------------------- progress (the bar for Integrated Gradients)

@pytest.mark.parametrize("language, desc", [("en", "images through the model"),
                                            ("zh", "张图像经过模型")])
def test_progress_counts_the_images_and_speaks_the_editions_language(monkeypatch, language, desc):
    from captum_helpers import progress

    monkeypatch.setenv("CAPTUM_COURSE_LANGUAGE", language)
    model = torch.nn.Conv2d(3, 1, 1)
    with progress(model, total=5) as bar:
        model(torch.zeros(2, 3, 4, 4))
        model(torch.zeros(3, 3, 4, 4))
        assert bar.n == 5 and bar.desc.startswith(desc)
    assert not model._forward_hooks  # the hook is removed again
