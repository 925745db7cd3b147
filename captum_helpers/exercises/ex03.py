"""The checks of ``03_occlusion``'s exercises.

An occlusion map gives every pixel the drop in the class score (the logit), f(photo) − f(photo
with one window set to 0), averaged over the windows that cover the pixel. Rerunning the sweep
would cost the learner's run again; a spot-check does not: the windows that cover the photo's
centre pixel (four with the exercises' settings) and the photo itself, five images in one forward
pass, give that pixel's value for every class at once, which also tells which class a wrong map
explains.
"""
from __future__ import annotations

import math
import numbers

import torch

from ..assets import IMG_DIR
from ..images import load_image, preprocess
from ..language import say
from ..models import label, to_target
from ..speed import occlusion_windows
from . import Answers, Exercise, Wrong, choice, predicted_class

NOTEBOOK = "03_occlusion"


def starts(size: int, window: int, stride: int, pixel: int) -> list[int]:
    """Where captum's windows along a dimension of ``size`` start that cover ``pixel``."""
    count = math.ceil((size - window) / stride) + 1
    return [k * stride for k in range(count) if k * stride <= pixel < k * stride + window]


def spot_check(model, x: torch.Tensor, window: int, stride: int
               ) -> tuple[tuple[int, int], torch.Tensor, torch.Tensor]:
    """The centre pixel of ``x`` (1, C, H, W), the model's logits for ``x``, and the pixel's
    occlusion attribution for every class: the logit drop with each window that covers it set to
    0 (captum's ``baselines=0``), averaged over those windows."""
    row, col = x.shape[-2] // 2, x.shape[-1] // 2
    copies = []
    for top in starts(x.shape[-2], window, stride, row):
        for left in starts(x.shape[-1], window, stride, col):
            copy = x.clone()
            copy[..., top:top + window, left:left + window] = 0
            copies.append(copy)
    with torch.no_grad():
        out = model(torch.cat([x, *copies])).detach().double()
    return (row, col), out[0], (out[0] - out[1:]).mean(dim=0)


def tolerance(value: float) -> float:
    """How far a pixel's attribution may sit from the spot-check: float32 rounding, which differs
    with the batch the copies go through the model in, with room."""
    return 1e-3 + 1e-3 * abs(value)


def map_of(value, name: str, like: torch.Tensor) -> torch.Tensor:
    """The learner's attributions ``value`` (named ``name``) as a tensor shaped like ``like``."""
    if not isinstance(value, torch.Tensor) or tuple(value.shape) != tuple(like.shape):
        found = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise Wrong(say(f"`{name}` should be the attributions `occlusion.attribute` returns, a "
                        f"tensor shaped like the input {tuple(like.shape)}; yours: {found}.",
                        f"`{name}` 应是 `occlusion.attribute` 返回的归因，一个形状与输入 "
                        f"{tuple(like.shape)} 相同的张量；你的是：{found}。"))
    return value.detach().double()


def explained_class(drops: torch.Tensor, value: float) -> int | None:
    """The class whose drop at the spot-check pixel is ``value``, if any."""
    nearest = int((drops - value).abs().argmin())
    return nearest if abs(drops[nearest] - value) <= tolerance(value) else None


def check_map(attributions: torch.Tensor, pixel, drops: torch.Tensor, target: int,
              window: int, stride: int, photo: str) -> None:
    """Raise Wrong unless ``attributions`` holds ``target``'s drop at ``pixel``."""
    value = attributions[0, 0, pixel[0], pixel[1]].item()
    right = drops[target].item()
    if abs(value - right) <= tolerance(right):
        return
    found = explained_class(drops, value)
    if found is not None and found != target:
        raise Wrong(say(f"this map explains {label(found)} (class {found}), not "
                        f"{label(target)}: pass `target=` the predicted class's index.",
                        f"这张图解释的是 {label(found)}（第 {found} 类），而不是 {label(target)}："
                        "请把预测类别的索引传给 `target=`。"))
    raise Wrong(say(f"at pixel {pixel} your map holds {value:.4f}; covering the {window}×{window} "
                    f"windows (stride {stride}) that contain it lowers {label(target)}'s logit "
                    f"on {photo} by {right:.4f} on average: check the photo, the window, the "
                    "stride, the target and `baselines=0`.",
                    f"你的图在像素 {pixel} 处是 {value:.4f}；用 {window}×{window} 的窗口（步长 "
                    f"{stride}）遮住包含它的那几个位置，{photo} 上 {label(target)} 的 logit 平均"
                    f"下降 {right:.4f}：请检查照片、窗口、步长、target 和 `baselines=0`。"))


def as_int(value, name: str) -> int:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise Wrong(say(f"`{name}` should be a whole number; yours: {value!r}.",
                        f"`{name}` 应是一个整数；你的是：{value!r}。"))
    return int(value)


def _bigger_patch(a: Answers) -> str:
    x = a.input_img
    size = x.shape[-1]
    expected = occlusion_windows(x.shape[1:], (3, 45, 45), (3, 20, 20))
    side, floor_side = math.ceil((size - 45) / 20) + 1, (size - 45) // 20 + 1
    found = as_int(a.n_big, "n_big")
    if found != expected:
        if found == expected + 1:
            raise Wrong(say(f"{found} counts the forward passes, the unoccluded photo's too; "
                            f"`n_big` is the number of occluded copies: {expected}.",
                            f"{found} 是前向传播的次数，包括未遮挡照片的那一次；`n_big` 是遮挡"
                            f"副本的个数：{expected}。"))
        if found in (floor_side, floor_side ** 2) and floor_side != side:
            raise Wrong(say(f"captum's windows start at 0, 20, 40, … and keep the stride; the "
                            f"last one, cut by the border, is needed to reach the last pixel: "
                            f"ceil(({size} − 45) / 20) + 1 = {side} starts per side, not "
                            f"({size} − 45) // 20 + 1 = {floor_side}. `occlusion_windows` "
                            "applies captum's formula.",
                            f"captum 的窗口从 0、20、40……开始，始终保持步长；最后一个窗口被边界"
                            f"截断，但要靠它才能盖到最后一个像素：每条边 ceil(({size} − 45) / 20) "
                            f"+ 1 = {side} 个起点，而不是 ({size} − 45) // 20 + 1 = "
                            f"{floor_side} 个。`occlusion_windows` 用的就是 captum 的公式。"))
        if found == side:
            raise Wrong(say(f"{side} is the number of starts along one side; the copies are "
                            f"every pair of a row start and a column start: {side} × {side}.",
                            f"{side} 是一条边上的起点个数；遮挡副本是行起点和列起点的每一种组合："
                            f"{side} × {side}。"))
        raise Wrong(say(f"captum makes ceil(({size} − 45) / 20) + 1 = {side} starts per side, "
                        f"so {expected} occluded copies; yours: {found}. `occlusion_windows("
                        "input_img.shape[1:], (3, 45, 45), (3, 20, 20))` counts them.",
                        f"captum 每条边有 ceil(({size} − 45) / 20) + 1 = {side} 个起点，所以共有 "
                        f"{expected} 个遮挡副本；你的是 {found}。`occlusion_windows("
                        "input_img.shape[1:], (3, 45, 45), (3, 20, 20))` 可以数出来。"))
    attributions = map_of(a.attributions_big, "attributions_big", x)
    fine = a.get("attributions_occ")
    if isinstance(fine, torch.Tensor) and fine.shape == attributions.shape and \
            torch.allclose(attributions, fine.detach().double(), rtol=1e-4, atol=1e-6):
        raise Wrong(say("`attributions_big` is the walkthrough's 15×15 map: run "
                        "`occlusion.attribute` with `sliding_window_shapes=(3, 45, 45)` and "
                        "`strides=(3, 20, 20)`.",
                        "`attributions_big` 是讲解部分 15×15 的那张图：请用 "
                        "`sliding_window_shapes=(3, 45, 45)` 和 `strides=(3, 20, 20)` 运行 "
                        "`occlusion.attribute`。"))
    pixel, photo, drops = spot_check(a.model, x, 45, 20)
    target = predicted_class(photo, a.get("pred_label_idx"))
    check_map(attributions, pixel, drops, target, 45, 20, "chelsea.png")
    passes = say(f"{expected} occluded copies + 1 = {expected + 1} forward passes",
                 f"{expected} 个遮挡副本 + 1 = {expected + 1} 次前向传播")
    if isinstance(fine, torch.Tensor) and fine.shape == attributions.shape:
        flat = torch.stack([fine.detach().double()[0, 0].flatten(), attributions[0, 0].flatten()])
        correlation = torch.corrcoef(flat)[0, 1].item()
        passes += say(f", instead of {a.get('n_windows', '?')} + 1; the 45×45 map correlates "
                      f"{correlation:.2f} with the 15×15 one (1: the same pattern)",
                      f"，而不是 {a.get('n_windows', '?')} + 1；45×45 的图与 15×15 的图的相关系数"
                      f"是 {correlation:.2f}（1：图案相同）")
    return say(f"{passes}. At the centre pixel the map holds {drops[target].item():.3f}, the "
               f"average drop of {label(target)}'s logit over the windows that cover it.",
               f"{passes}。在中心像素处，图上的值是 {drops[target].item():.3f}，即遮住覆盖它的"
               f"各个窗口时 {label(target)} 的 logit 平均下降的幅度。")


def _coffee(a: Answers) -> str:
    _, coffee = preprocess(load_image(IMG_DIR / "coffee.png"))
    pixel, photo, drops = spot_check(a.model, coffee, 25, 16)
    try:
        found = to_target(a.coffee_idx)
    except ValueError as error:
        raise Wrong(say(f"`coffee_idx` should be a class index: {error}.",
                        f"`coffee_idx` 应是一个类别索引：{error}。")) from None
    predicted = predicted_class(photo, found)
    if found != predicted:
        chelsea = a.get("pred_label_idx")
        if found == chelsea:
            raise Wrong(say(f"{label(found)} is chelsea.png's prediction: predict on the coffee "
                            "photo's input.",
                            f"{label(found)} 是 chelsea.png 的预测：请对咖啡照片的输入做预测。"))
        raise Wrong(say(f"the model predicts {label(predicted)} (class {predicted}) for "
                        f"coffee.png, not {label(found)}: `predict(model, coffee_input, k=1)`.",
                        f"模型对 coffee.png 的预测是 {label(predicted)}（第 {predicted} 类），"
                        f"而不是 {label(found)}：`predict(model, coffee_input, k=1)`。"))
    attributions = map_of(a.attributions_coffee, "attributions_coffee", coffee)
    check_map(attributions, pixel, drops, predicted, 25, 16, "coffee.png")
    why = choice(a.why_stride_limit, "a", {
        "a": say("With a stride larger than the window, the pixels between two windows are "
                 "never covered: nothing measures them, and captum, which divides by the number "
                 "of windows covering each pixel, would have nothing to divide.",
                 "步长比窗口大时，两个窗口之间的像素永远不会被遮住：没有任何测量涉及它们，而 "
                 "captum 要除以覆盖每个像素的窗口个数，对它们无从除起。"),
        "b": say("a larger stride means fewer windows, not more: it would be faster.",
                 "步长越大，窗口越少而不是越多：反而更快。"),
        "c": say("windows overlap when the stride is smaller than the window, which captum "
                 "allows: it averages over the windows that cover a pixel.",
                 "步长比窗口小时窗口才会重叠，而这是 captum 允许的：它对覆盖同一像素的"
                 "窗口取平均。")})
    row, col = divmod(attributions[0, 0].argmax().item(), attributions.shape[-1])
    return say(f"the model calls coffee.png {label(predicted)}; your map agrees with the logit "
               f"drops at the centre pixel ({drops[predicted].item():.3f}), and its strongest "
               f"evidence lies around row {row}, column {col}. {why}",
               f"模型认为 coffee.png 是 {label(predicted)}；你的图在中心像素处与 logit 的下降一致"
               f"（{drops[predicted].item():.3f}），最强的证据在第 {row} 行、第 {col} 列附近。"
               f"{why}")


q1 = Exercise(NOTEBOOK, 1, ("n_big", "attributions_big"), _bigger_patch, (
    ("`occlusion_windows(input_img.shape[1:], sliding_window_shapes=(3, 45, 45), "
     "strides=(3, 20, 20))` counts the copies, with captum's formula.",
     "`occlusion_windows(input_img.shape[1:], sliding_window_shapes=(3, 45, 45), "
     "strides=(3, 20, 20))` 用 captum 的公式数出副本的个数。"),
    ("the walkthrough's `occlusion.attribute` call with the new window and stride; "
     "`target=pred_label_idx`, `baselines=0`.",
     "在讲解部分的 `occlusion.attribute` 调用里换上新的窗口和步长；`target=pred_label_idx`、"
     "`baselines=0`。")))
q2 = Exercise(NOTEBOOK, 2, ("coffee_idx", "attributions_coffee", "why_stride_limit"), _coffee, (
    ("as in the walkthrough: `preprocess(load_image(\"../img/coffee.png\"))`, then "
     "`predict(model, coffee_input, k=1)[0]` gives the class to explain.",
     "和讲解部分一样：`preprocess(load_image(\"../img/coffee.png\"))`，然后用 "
     "`predict(model, coffee_input, k=1)[0]` 得到要解释的类别。"),
    ("`occlusion.attribute(coffee_input, target=coffee_idx, strides=(3, 16, 16), "
     "sliding_window_shapes=(3, 25, 25), baselines=0, ...)`; for the letter, picture windows "
     "25 wide that start every 30 pixels.",
     "`occlusion.attribute(coffee_input, target=coffee_idx, strides=(3, 16, 16), "
     "sliding_window_shapes=(3, 25, 25), baselines=0, ...)`；至于选项，想象一下每隔 30 个像素"
     "开始一个 25 像素宽的窗口。")))
