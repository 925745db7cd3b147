"""The checks of ``04_layer_gradcam``'s exercises.

Each check runs GradCAM itself once, as captum's ``LayerGradCam`` computes it (the gradient of
the class score averaged over each channel's grid weights the channel's activations), with one
forward pass for every layer it needs and one backward pass per class: a fraction of a second.
"""
from __future__ import annotations

import torch

from ..language import say
from ..models import categories, gradcam_layer, model_name
from . import Answers, Exercise, Wrong, choice

NOTEBOOK = "04_layer_gradcam"


class _Pass:
    """One forward pass of ``model`` on ``inputs`` that keeps the outputs of ``layers``; ``maps``
    then gives GradCAM's raw maps on those layers for a class, each with one backward pass."""

    def __init__(self, model: torch.nn.Module, layers: list, inputs: torch.Tensor):
        saved: dict[int, torch.Tensor] = {}

        def keep(index):
            def hook(module, args, output):
                saved[index] = output
                return output.clone()  # a later in-place operation leaves the kept output alone
            return hook

        handles = [layer.register_forward_hook(keep(i)) for i, layer in enumerate(layers)]
        try:
            with torch.enable_grad():
                self.logits = model(inputs.detach().clone().requires_grad_())
        finally:
            for handle in handles:
                handle.remove()
        self.outputs = [saved[i] for i in range(len(layers))]

    def maps(self, target: int) -> list[torch.Tensor]:
        gradients = torch.autograd.grad(self.logits[0, int(target)], self.outputs,
                                        retain_graph=True)
        return [(g.mean(dim=(2, 3), keepdim=True) * o).sum(dim=1, keepdim=True).detach()
                for g, o in zip(gradients, self.outputs)]


def _as_map(value, name: str) -> torch.Tensor:
    """The learner's map as a (1, 1, rows, columns) tensor."""
    if not isinstance(value, torch.Tensor):
        raise Wrong(say(f"`{name}` should hold the tensor `attribute` returns, not a "
                        f"{type(value).__name__}.",
                        f"`{name}` 应是 `attribute` 返回的张量，而不是 {type(value).__name__}。"))
    found = value.detach().float()
    while found.dim() < 4:
        found = found.unsqueeze(0)
    return found


def _same(found: torch.Tensor, expected: torch.Tensor) -> bool:
    scale = expected.abs().max().item()
    return found.shape == expected.shape and torch.allclose(
        found, expected, rtol=1e-3, atol=1e-4 * scale + 1e-12)


def _grid(t: torch.Tensor) -> str:
    return f"{t.shape[-2]}×{t.shape[-1]}"


def _interpolated(name: str, found: torch.Tensor, a: Answers, grid: str) -> None:
    if tuple(found.shape[-2:]) == tuple(a.input_img.shape[-2:]):
        raise Wrong(say(f"`{name}` is {_grid(found)}, the photo's size: that is the map after "
                        f"`LayerAttribution.interpolate`. Keep the raw map `attribute` returns, "
                        f"on the layer's {grid} grid.",
                        f"`{name}` 是 {_grid(found)}，与照片一样大：这是经过 "
                        f"`LayerAttribution.interpolate` 的图。请保留 `attribute` 返回的原始图，"
                        f"即该层的 {grid} 网格。"))


def _layers(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """The exercise's earlier and later layer for the model in use."""
    if model_name(model) == "resnet18":
        return {"model.layer2[1].conv2": model.layer2[1].conv2,
                "model.layer4[1].conv2": model.layer4[1].conv2}
    return {"model._blocks[4]": model._blocks[4], "model._blocks[15]": model._blocks[15]}


def _depths(a: Answers) -> str:
    found = {"early_map": _as_map(a.early_map, "early_map"),
             "late_map": _as_map(a.late_map, "late_map")}
    names, layers = zip(*_layers(a.model).items())
    right = _Pass(a.model, list(layers), a.input_img).maps(a.pred_label_idx)
    notebook = a.get("attributions_lgc")
    for (answer, mine), name, expected, other in zip(found.items(), names, right, right[::-1]):
        if _same(mine, expected):
            continue
        grid = _grid(expected)
        _interpolated(answer, mine, a, grid)
        if _same(mine, other):
            raise Wrong(say(f"`{answer}` holds the other layer's map ({_grid(other)}): the "
                            f"earlier layer has the finer grid; `{answer}` is {name}'s, {grid}.",
                            f"`{answer}` 里是另一层的图（{_grid(other)}）：较早的层网格更细；"
                            f"`{answer}` 应是 {name} 的图，{grid}。"))
        if isinstance(notebook, torch.Tensor) and mine.shape[-2:] == notebook.shape[-2:] \
                and mine.shape[-2:] != expected.shape[-2:]:
            raise Wrong(say(f"`{answer}` is on a {_grid(mine)} grid, that of the notebook's own "
                            f"layer (`layer`): run GradCAM on {name} ({grid}) instead.",
                            f"`{answer}` 在 {_grid(mine)} 网格上，那是笔记本自己的层（`layer`）："
                            f"请改在 {name}（{grid}）上运行 GradCAM。"))
        if _same(mine, expected.clamp(min=0)) and (expected < 0).any():
            raise Wrong(say(f"`{answer}` has no negative cells: that is the map with "
                            "`relu_attributions=True` (exercise 2). Keep captum's default here.",
                            f"`{answer}` 没有负值格：这是 `relu_attributions=True` 的图（练习 2）。"
                            "这里请用 captum 的默认设置。"))
        if mine.shape == expected.shape:
            raise Wrong(say(f"`{answer}` is on the right {grid} grid, but its values are not "
                            f"GradCAM's on {name} for the predicted class: "
                            "`LayerGradCam(model, ...).attribute(input_img, "
                            "target=pred_label_idx)`.",
                            f"`{answer}` 的网格 {grid} 是对的，但数值不是 {name} 上针对预测类别的 "
                            "GradCAM：`LayerGradCam(model, ...).attribute(input_img, "
                            "target=pred_label_idx)`。"))
        raise Wrong(say(f"`{answer}` should be GradCAM's raw map on {name}, of shape "
                        f"{tuple(expected.shape)}; yours has shape {tuple(mine.shape)}.",
                        f"`{answer}` 应是 {name} 上 GradCAM 的原始图，形状 "
                        f"{tuple(expected.shape)}；你的形状是 {tuple(mine.shape)}。"))
    early, late = right
    parts_en, parts_zh = [], []
    for name, m in zip(names, right):
        positive = int((m > 0).sum())
        parts_en.append(f"{name}: {_grid(m)}, from {m.min():.3g} to {m.max():.3g}, "
                        f"{positive} of {m.numel()} cells positive")
        parts_zh.append(f"{name}：{_grid(m)}，取值 {m.min():.3g} 到 {m.max():.3g}，"
                        f"{m.numel()} 个格中 {positive} 个为正")
    label = categories()[int(a.pred_label_idx)]
    return say(f"the raw maps of both layers for {label} ({'; '.join(parts_en)})."
               f" The earlier layer places evidence {early.shape[-1] // late.shape[-1]} times "
               "more finely; the later one's cells each see most of the photo.",
               f"两层针对 {label} 的原始图（{'；'.join(parts_zh)}）。"
               f"较早的层定位证据的精细程度是后者的 {early.shape[-1] // late.shape[-1]} 倍；"
               "较晚的层每个格几乎都能看到整张照片。")


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _relu(a: Answers) -> str:
    mine = _as_map(a.relu_lgc, "relu_lgc")
    (plain,) = _Pass(a.model, [gradcam_layer(a.model)], a.input_img).maps(a.pred_label_idx)
    expected = plain.clamp(min=0)
    negative = int((plain < 0).sum())
    if not _same(mine, expected):
        _interpolated("relu_lgc", mine, a, _grid(expected))
        if _same(mine, plain):
            raise Wrong(say(f"`relu_lgc` still has {negative} negative cells: that is the map "
                            "without the ReLU. Pass `relu_attributions=True` to `attribute`.",
                            f"`relu_lgc` 仍有 {negative} 个负值格：这是没有 ReLU 的图。"
                            "请给 `attribute` 传入 `relu_attributions=True`。"))
        if _same(mine, plain.abs()):
            raise Wrong(say("`relu_lgc` turns the negative cells positive (an absolute value); "
                            "the ReLU sets them to 0: `relu_attributions=True`.",
                            "`relu_lgc` 把负值格变成了正值（绝对值）；ReLU 是把它们设为 0："
                            "`relu_attributions=True`。"))
        raise Wrong(say("`relu_lgc` should be `layer_gradcam.attribute(input_img, "
                        "target=pred_label_idx, relu_attributions=True)`: the notebook's layer, "
                        f"the predicted class, the raw {_grid(expected)} map.",
                        "`relu_lgc` 应是 `layer_gradcam.attribute(input_img, "
                        "target=pred_label_idx, relu_attributions=True)`：笔记本的层、预测的类别、"
                        f"{_grid(expected)} 的原始图。"))
    why = choice(a.why_relu, "b", {
        "a": say("the negative cells are not noise: each is a weighted sum of activations that "
                 "lowers the class score there, as real as the positive ones.",
                 "负值格不是噪声：每个都是在该处降低类别分数的激活加权和，和正值格一样真实。"),
        "b": say("the paper keeps the regions whose features raise the class score, the "
                 "evidence for the class; captum adds that ReLU only when asked "
                 "(`relu_attributions=False` by default), so the maps above kept the negative "
                 "cells.",
                 "论文只保留特征会提高类别分数的区域，即支持该类别的证据；captum 只在你要求时"
                 "才加上这个 ReLU（默认 `relu_attributions=False`），所以上面的图保留了负值格。"),
        "c": say("negative values can be drawn: the maps above, with `sign=\"all\"`, show them in "
                 "red. The ReLU decides which evidence counts, not how it is drawn.",
                 "负值可以画出来：上面 `sign=\"all\"` 的图就用红色显示它们。ReLU 决定的是哪些证据"
                 "算数，而不是怎么画。")})
    return say(f"`relu_attributions=True` sets the negative cells ({negative} of "
               f"{plain.numel()}) to 0 and leaves the positive ones as they were. {_capital(why)}",
               f"`relu_attributions=True` 把负值格（{plain.numel()} 个格中的 {negative} 个）"
               f"设为 0，正值格保持不变。{why}")


def _runner_up(a: Answers) -> str:
    mine = _as_map(a.runner_up_map, "runner_up_map")
    run = _Pass(a.model, [gradcam_layer(a.model)], a.input_img)
    top, second = torch.topk(run.logits.detach()[0], 2).indices.tolist()
    (expected,) = run.maps(second)
    label = categories()[second]
    if not _same(mine, expected):
        _interpolated("runner_up_map", mine, a, _grid(expected))
        (first,) = run.maps(top)
        if _same(mine, first):
            raise Wrong(say(f"that is the map for the top class, {categories()[top]}: explain "
                            f"the second guess, `predict(model, input_img, k=2)[1]` ({label}).",
                            f"这是排第一的类别 {categories()[top]} 的图：请解释第二个猜测，"
                            f"`predict(model, input_img, k=2)[1]`（{label}）。"))
        if _same(mine, expected.clamp(min=0)) and (expected < 0).any():
            raise Wrong(say("`runner_up_map` has no negative cells: leave out "
                            "`relu_attributions=True`, so that it compares with "
                            "`attributions_lgc`.",
                            "`runner_up_map` 没有负值格：请去掉 `relu_attributions=True`，"
                            "这样才能和 `attributions_lgc` 比较。"))
        raise Wrong(say(f"`runner_up_map` should be `layer_gradcam.attribute(input_img, "
                        f"target=...)` for the runner-up, class {second} ({label}): the "
                        f"notebook's layer, the raw {_grid(expected)} map.",
                        f"`runner_up_map` 应是针对第二名（第 {second} 类，{label}）的 "
                        f"`layer_gradcam.attribute(input_img, target=...)`：笔记本的层、"
                        f"{_grid(expected)} 的原始图。"))
    (first,) = run.maps(top)
    correlation = torch.corrcoef(torch.stack([first.flatten(), expected.flatten()]))[0, 1].item()
    columns = expected.shape[-1]
    best = [divmod(int(m.flatten().argmax()), columns) for m in (first, expected)]
    return say(f"the map for {label}, the model's second guess. Its correlation with the top "
               f"class's map is {correlation:+.2f}; the strongest cell (row, column) is "
               f"{best[1]} for {label} and {best[0]} for {categories()[top]}.",
               f"这是模型第二个猜测 {label} 的图。它与第一名类别的图的相关系数是 "
               f"{correlation:+.2f}；最强的格（行，列）对 {label} 是 {best[1]}，"
               f"对 {categories()[top]} 是 {best[0]}。")


q1 = Exercise(NOTEBOOK, 1, ("early_map", "late_map"), _depths, (
    ("build a `LayerGradCam(model, ...)` for each of the two layers and call `attribute` as "
     "for `attributions_lgc`; keep what it returns, before any `interpolate`.",
     "为两层各建一个 `LayerGradCam(model, ...)`，像计算 `attributions_lgc` 那样调用 "
     "`attribute`；保留它的返回值，不要 `interpolate`。"),
    ("`early_map = LayerGradCam(model, model.layer2[1].conv2).attribute(input_img, "
     "target=pred_label_idx)` (on EfficientNet-Lite0 `model._blocks[4]`; the later layer "
     "`model.layer4[1].conv2` or `model._blocks[15]`); `plt.imshow(early_map[0, 0].detach())` "
     "shows its raw values.",
     "`early_map = LayerGradCam(model, model.layer2[1].conv2).attribute(input_img, "
     "target=pred_label_idx)`（EfficientNet-Lite0 上用 `model._blocks[4]`；较晚的层用 "
     "`model.layer4[1].conv2` 或 `model._blocks[15]`）；`plt.imshow(early_map[0, 0].detach())` "
     "显示原始数值。")))
q2 = Exercise(NOTEBOOK, 2, ("relu_lgc", "why_relu"), _relu, (
    ("`layer_gradcam.attribute(input_img, target=pred_label_idx, relu_attributions=True)`; "
     "count the negative cells before and after.",
     "`layer_gradcam.attribute(input_img, target=pred_label_idx, relu_attributions=True)`；"
     "数一数前后的负值格。"),
    ("a negative cell is a place whose features lower the class score: does the paper want "
     "those in a map of the evidence for the class?",
     "负值格是其特征会降低类别分数的位置：论文想在“支持该类别的证据”图里保留它们吗？")))
q3 = Exercise(NOTEBOOK, 3, ("runner_up_map",), _runner_up, (
    ("`predict(model, input_img, k=2)[1]` is the second guess; its `.index` is the target.",
     "`predict(model, input_img, k=2)[1]` 是第二个猜测；它的 `.index` 就是 target。"),
    ("`runner_up_map = layer_gradcam.attribute(input_img, target=runner_up.index)`, the raw "
     "map, as `attributions_lgc` is for the top class.",
     "`runner_up_map = layer_gradcam.attribute(input_img, target=runner_up.index)`，即原始图，"
     "就像 `attributions_lgc` 之于第一名类别。")))
