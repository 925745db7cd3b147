"""The checks of ``08_your_own_model``'s exercises.

Both run on the course's model of the notebook (``course_model``) and read the notebook's own
functions (``prepare``, ``candidates``, ``integrated_gradients``' results). Neither reruns
Integrated Gradients: a map is checked by completeness (its sum against the logit change, two
forward passes), a correlation by recomputing it from the maps (cheap on a 14 x 14 grid).
"""
from __future__ import annotations

import numpy as np
import torch

from ..images import load_image
from ..language import say
from ..models import label
from ..trust import spearman, to_grid
from . import Answers, Exercise, Wrong, choice

NOTEBOOK = "08_your_own_model"
RECIPE_GAP = 0.1  # integrated_gradients stops doubling n_steps below this share of the change
MAP_SLACK = 0.25  # how far a map's sum may miss its logit change and still be IG's map
RHO_BOUNDS = (0.9, 0.2)  # exercise 2's options: (a) at or above the first, (c) below the second


def _index(value, name: str) -> int:
    value = getattr(value, "index", value)  # a Prediction
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise Wrong(say(f"`{name}` holds {value.numel()} values: keep one class index, "
                            "`.argmax(1).item()`.",
                            f"`{name}` 里有 {value.numel()} 个值：只保留一个类别下标，"
                            "`.argmax(1).item()`。"))
        value = value.item()
    if isinstance(value, float) and not value.is_integer() or isinstance(value, (str, bool)):
        raise Wrong(say(f"`{name}` should be a class index (an int), not {value!r}.",
                        f"`{name}` 应该是一个类别下标（整数），而不是 {value!r}。"))
    return int(value)


def _number(value, name: str) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, (str, bool)) or not isinstance(value, (int, float, np.number)):
        raise Wrong(say(f"`{name}` should be a number, not {value!r}.",
                        f"`{name}` 应该是一个数，而不是 {value!r}。"))
    return float(value)


def _map(value, shape, name: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or tuple(value.shape) != tuple(shape):
        got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise Wrong(say(f"`{name}` should be the attributions, a tensor of the input's shape "
                        f"{tuple(shape)}: the first thing `integrated_gradients` returns "
                        f"(got {got}).",
                        f"`{name}` 应该是归因，一个与输入形状 {tuple(shape)} 相同的张量："
                        f"`integrated_gradients` 返回的第一项（你给的是 {got}）。"))
    return value.detach().float()


def _logits(model, inputs: list[torch.Tensor]) -> torch.Tensor:
    """The model's outputs for several inputs of one example each, in one forward pass."""
    with torch.no_grad():
        return model(torch.cat(inputs))


def _gap(total: float, change: float) -> float:
    """How far attributions adding up to ``total`` miss ``change``, as a share of it."""
    return abs(total - change) / max(abs(change), 1e-6)


def _second_photo(a: Answers) -> str:
    photo = a.photos[1]
    x = a.prepare(a.course, load_image(photo))
    black = a.normalize(torch.zeros(x.shape[1:])).unsqueeze(0)
    logits, at_black = _logits(a.course_model, [x, black])
    right = int(logits.argmax())
    target = _index(a.second_target, "second_target")
    if target != right:
        first = a.targets.get(a.course) if isinstance(a.get("targets"), dict) else None
        if target == first:
            raise Wrong(say(f"{target} is the first photo's target (`targets[course]`, section 3): "
                            f"predict on `photos[1]`, {photo.name}, prepared with `prepare`.",
                            f"{target} 是第一张照片的目标（第 3 节的 `targets[course]`）：请对 "
                            f"`photos[1]`（{photo.name}）用 `prepare` 准备后再预测。"))
        raise Wrong(say(f"the course's model puts {photo.name} in class {right}, {label(right)}; "
                        f"`second_target` is {target}. Take `course_model(x).argmax(1).item()` "
                        "on `x = prepare(course, load_image(photos[1]))`.",
                        f"课程模型把 {photo.name} 判为第 {right} 类 {label(right)}；"
                        f"`second_target` 是 {target}。请对 "
                        "`x = prepare(course, load_image(photos[1]))` 取 "
                        "`course_model(x).argmax(1).item()`。"))
    steps = tuple(a.STEPS)
    n = _index(a.second_steps, "second_steps")
    if n not in steps:
        raise Wrong(say(f"`integrated_gradients` stops at one of `STEPS` = {steps}, not {n}: it "
                        "returns the map, then the steps, then the gap, then the logit change.",
                        f"`integrated_gradients` 停在 `STEPS` = {steps} 中的某一个，而不是 {n}："
                        "它依次返回归因图、步数、偏差和 logit 变化。"))
    attr = _map(a.second_map, x.shape, "second_map")
    off = _number(a.second_off, "second_off")
    change = (logits[right] - at_black[right]).item()
    total = attr.sum().item()
    gap = _gap(total, change)
    if abs(off - gap) > 0.002 + 0.01 * gap:
        _wrong_gap(a, x, right, logits[right].item(), total, change, gap, off)
    if n != steps[-1] and off >= RECIPE_GAP:
        raise Wrong(say(f"with a gap of {off:.1%} the recipe does not stop at {n} steps: it "
                        "doubles them until the gap is under 10 % (or `STEPS` runs out). Keep what "
                        "`integrated_gradients` returns, in its order.",
                        f"偏差为 {off:.1%} 时，配方不会停在 {n} 步：它把步数加倍，直到偏差低于 "
                        "10 %（或 `STEPS` 用完）。请按顺序保存 `integrated_gradients` 的返回值。"))
    why = choice(a.steps_depend, "b", {
        "a": say("one photo's number of steps does not carry over: the gap depends on the path "
                 "from the baseline to each photo, so the recipe checks it for every photo.",
                 "一张照片需要的步数不能照搬到别的照片：偏差取决于从基线到每张照片的路径，"
                 "所以配方对每张照片都检查它。"),
        "b": say("the steps integrate the target's gradient along the straight path from the "
                 "baseline to the photo; where it changes sharply (each ReLU that switches on or "
                 "off puts a kink in it) more points are needed. Photo, baseline and model each "
                 "change that path, so the recipe checks the gap for every photo.",
                 "这些步数沿着从基线到照片的直线路径对目标的梯度求积分；梯度变化剧烈的地方"
                 "（每个开启或关闭的 ReLU 都会带来一个折点）需要更多的点。照片、基线和模型都会"
                 "改变这条路径，所以配方对每张照片都检查偏差。"),
        "c": say("the gap is a share of the change: a large change along a path where the "
                 "gradient barely varies is integrated by few steps. What costs steps is how "
                 "the gradient varies along the path, not how far the logit moves.",
                 "偏差是变化量的一个比例：沿着梯度几乎不变的路径，即使变化很大，少量步数也能"
                 "积分得很准。费步数的是梯度沿路径如何变化，而不是 logit 移动了多远。")})
    return say(f"the model calls {photo.name} {label(right)}; from the black baseline IG needed "
               f"{n} steps, and its attributions ({total:.2f}) miss the logit change "
               f"({change:.2f}) by {gap:.1%}. {why}",
               f"模型认为 {photo.name} 是 {label(right)}；从黑色基线出发，集成梯度需要 {n} 步，"
               f"归因之和（{total:.2f}）与 logit 变化（{change:.2f}）相差 {gap:.1%}。{why}")


def _wrong_gap(a: Answers, x, target, logit, total, change, gap, off) -> None:
    """Why ``second_off`` is not the gap of ``second_map``: a percentage, the delta in logit
    units, or a map from another baseline; raises Wrong."""
    if abs(off / 100 - gap) <= 0.002 + 0.01 * gap:
        raise Wrong(say(f"`second_off` is {off:.3g}, the gap in percent: keep it as a fraction "
                        f"({gap:.3f}), as `integrated_gradients` returns it.",
                        f"`second_off` 是 {off:.3g}，这是百分数：请保存成比例（{gap:.3f}），"
                        "也就是 `integrated_gradients` 返回的样子。"))
    if abs(off - abs(total - change)) <= 0.002 + 0.01 * abs(off):
        raise Wrong(say(f"{off:.3g} is the convergence delta in logit units: the recipe's gap "
                        f"divides it by the logit change ({change:.2f}).",
                        f"{off:.3g} 是以 logit 为单位的收敛误差：配方的偏差要再除以 logit 变化"
                        f"（{change:.2f}）。"))
    candidates = a.candidates(x)
    scores = _logits(a.course_model, list(candidates.values()))[:, target]
    for kind, score in zip(candidates, scores.tolist()):
        other = _gap(total, logit - score)
        if abs(off - other) <= 0.002 + 0.01 * other:
            raise Wrong(say(f"this map and gap come from the {kind} baseline: the exercise asks "
                            "for section 3's black one, `normalize(torch.zeros(3, 224, 224))"
                            ".unsqueeze(0)`.",
                            f"这张图和偏差来自{kind}基线：练习要求的是第 3 节的黑色基线，"
                            "`normalize(torch.zeros(3, 224, 224)).unsqueeze(0)`。"))
    raise Wrong(say(f"`second_map` adds up to {total:.2f} and the target's logit changes by "
                    f"{change:.2f} from the black baseline to the photo, a gap of {gap:.1%}, but "
                    f"`second_off` is {off:.3g}: keep the map, the steps and the gap of one call "
                    "of `integrated_gradients`, from the black baseline.",
                    f"`second_map` 之和为 {total:.2f}，而从黑色基线到照片，目标的 logit 变化了 "
                    f"{change:.2f}，偏差应为 {gap:.1%}，但 `second_off` 是 {off:.3g}：请保存"
                    "同一次 `integrated_gradients` 调用（从黑色基线出发）返回的图、步数和偏差。"))


def _blurred_key(candidates: dict) -> str:
    """The blurred photo among ``candidates(x)``, by its name in this edition (else the last)."""
    key = say("blurred photo", "模糊照片")
    return key if key in candidates else list(candidates)[-1]


def _blurred(a: Answers) -> str:
    name = a.course
    x, target = a.inputs[name], a.targets[name]
    attr = _map(a.blurred_map, x.shape, "blurred_map")
    chosen_map = a.ig_maps[name].detach().float()
    candidates = a.candidates(x)
    key = _blurred_key(candidates)
    if a.chosen[name] != key and torch.equal(attr, chosen_map):
        raise Wrong(say(f"that is `ig_maps[course]`, the map from the chosen baseline "
                        f"({a.chosen[name]}): run `integrated_gradients` from "
                        f"`candidates(inputs[course])[\"{key}\"]`.",
                        f"这是 `ig_maps[course]`，来自选定基线（{a.chosen[name]}）的图：请从 "
                        f"`candidates(inputs[course])[\"{key}\"]` 出发运行 "
                        "`integrated_gradients`。"))
    at_photo, at_blurred = _logits(a.course_model, [x, candidates[key]])[:, target].tolist()
    change = at_photo - at_blurred
    total = attr.sum().item()
    if _gap(total, change) > MAP_SLACK:
        raise Wrong(say(f"`blurred_map` adds up to {total:.2f}, but IG's attributions from the "
                        f"blurred photo add up to about the target's logit change from it to "
                        f"the photo, {change:.2f} ({label(target)}): check the baseline and the "
                        "target, `targets[course]`.",
                        f"`blurred_map` 之和为 {total:.2f}，但从模糊照片出发的集成梯度归因之和"
                        f"应约等于目标（{label(target)}）的 logit 从它到照片的变化 {change:.2f}："
                        "请检查基线和目标 `targets[course]`。"))
    rho = spearman(to_grid(chosen_map), to_grid(attr))
    value = _number(a.blurred_rho, "blurred_rho")
    if abs(value - rho) > 1e-3:
        _wrong_rho(value, rho, chosen_map, attr)
    high, low = RHO_BOUNDS
    right = "a" if rho >= high else "b" if rho >= low else "c"
    why = choice(a.baseline_decides, right, {
        "a": say(f"ρ = {rho:.2f} is at or above {high}: the two baselines rank the cells almost "
                 "alike, so for this photo the baseline hardly matters"
                 + (" (the chosen baseline is the blurred photo: 1 by construction)."
                    if a.chosen[name] == key else "."),
                 f"ρ = {rho:.2f} 不低于 {high}：两个基线给格子的排序几乎相同，所以对这张照片"
                 "基线几乎无关紧要" + ("（选定的基线就是模糊照片：按构造为 1）。"
                                       if a.chosen[name] == key else "。")),
        "b": say(f"ρ = {rho:.2f} lies between {low} and {high}: well above two random maps "
                 "(about 0) but below 1, so the baseline decides a good part of which pixels IG "
                 "credits, and a map must say which baseline it used.",
                 f"ρ = {rho:.2f} 在 {low} 和 {high} 之间：远高于两张随机图（约为 0），但低于 1，"
                 "所以基线在很大程度上决定了集成梯度把功劳归于哪些像素，展示归因图时必须"
                 "说明所用的基线。"),
        "c": say(f"ρ = {rho:.2f} is below {low}, where two random maps land: the two baselines "
                 "give unrelated maps.",
                 f"ρ = {rho:.2f} 低于 {low}，也就是两张随机图所在的水平：两个基线给出的图"
                 "毫不相关。")})
    return say(f"the blurred baseline's map adds up to {total:.2f} (its logit change "
               f"{change:.2f}), and ranks the 14 × 14 cells with ρ = {rho:.2f} against the "
               f"{a.chosen[name]} baseline's. {why}",
               f"模糊基线的图之和为 {total:.2f}（logit 变化 {change:.2f}），它与{a.chosen[name]}"
               f"基线的图在 14 × 14 格子上的等级相关 ρ = {rho:.2f}。{why}")


def _wrong_rho(value: float, rho: float, chosen_map, attr) -> None:
    """Why ``blurred_rho`` is not the rank correlation of the two |maps| on the grid."""
    signed = spearman(to_grid(chosen_map, absolute=False), to_grid(attr, absolute=False))
    pixels = spearman(chosen_map.abs().sum(1), attr.abs().sum(1))
    pearson = float(np.corrcoef(to_grid(chosen_map).flatten().numpy(),
                                to_grid(attr).flatten().numpy())[0, 1])
    if abs(value - signed) <= 1e-3:
        raise Wrong(say(f"{value:.3f} is the correlation of the signed grids: the exercise "
                        "compares |maps|, which `trust.to_grid` makes by default.",
                        f"{value:.3f} 是带符号格子的相关：练习比较的是 |map|，"
                        "`trust.to_grid` 默认就这样做。"))
    if abs(value - pixels) <= 1e-3:
        raise Wrong(say(f"{value:.3f} compares the maps pixel by pixel: put both on the "
                        "14 × 14 grid first, `trust.to_grid`.",
                        f"{value:.3f} 是逐像素比较的结果：请先用 `trust.to_grid` 把两张图"
                        "都放到 14 × 14 的格子上。"))
    if abs(value - pearson) <= 1e-3:
        raise Wrong(say(f"{value:.3f} is Pearson's correlation: the exercise asks for Spearman's "
                        "rank correlation, `trust.spearman`.",
                        f"{value:.3f} 是皮尔逊相关：练习要的是斯皮尔曼等级相关系数，"
                        "`trust.spearman`。"))
    raise Wrong(say(f"the rank correlation of the two 14 × 14 |maps| (`ig_maps[course]` and "
                    f"`blurred_map`) is {rho:.3f}; `blurred_rho` is {value:.3f}.",
                    f"两张 14 × 14 |map|（`ig_maps[course]` 和 `blurred_map`）的等级相关是 "
                    f"{rho:.3f}；`blurred_rho` 是 {value:.3f}。"))


q1 = Exercise(NOTEBOOK, 1, ("second_target", "second_map", "second_steps", "second_off",
                            "steps_depend"), _second_photo, (
    ("as in section 3: `x = prepare(course, load_image(photos[1]))`, then the target is "
     "`course_model(x).argmax(1).item()`.",
     "与第 3 节一样：`x = prepare(course, load_image(photos[1]))`，目标是 "
     "`course_model(x).argmax(1).item()`。"),
    ("`integrated_gradients(course_model, x, target, black)` returns the map, the steps, the gap "
     "and the logit change, in that order; `black = normalize(torch.zeros(3, 224, 224))"
     ".unsqueeze(0)`.",
     "`integrated_gradients(course_model, x, target, black)` 依次返回归因图、步数、偏差和 "
     "logit 变化；`black = normalize(torch.zeros(3, 224, 224)).unsqueeze(0)`。"),
    ("compare the steps with section 3's: the model and the baseline are the same, only the "
     "photo changed.",
     "把步数与第 3 节的比较：模型和基线都一样，只有照片变了。")))
q2 = Exercise(NOTEBOOK, 2, ("blurred_map", "blurred_rho", "baseline_decides"), _blurred, (
    ("`candidates(inputs[course])[\"blurred photo\"]` is the blurred baseline; "
     "`integrated_gradients(course_model, inputs[course], targets[course], baseline)` returns "
     "its map first.",
     "`candidates(inputs[course])[\"模糊照片\"]` 是模糊基线；"
     "`integrated_gradients(course_model, inputs[course], targets[course], baseline)` "
     "返回的第一项就是它的图。"),
    ("`trust.spearman(trust.to_grid(ig_maps[course]), trust.to_grid(blurred_map))`: `to_grid` "
     "takes |values| on the 14 × 14 grid.",
     "`trust.spearman(trust.to_grid(ig_maps[course]), trust.to_grid(blurred_map))`："
     "`to_grid` 在 14 × 14 的格子上取 |值|。"),
    ("read your ρ against the options' bounds, 0.9 and 0.2.",
     "把你的 ρ 与选项的界限 0.9 和 0.2 比较。")))
