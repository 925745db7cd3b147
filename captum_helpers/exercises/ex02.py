"""The checks of ``02_integrated_gradients``'s exercises.

Rerunning Integrated Gradients in a check would take longer than the learner's own run; its
completeness makes that unnecessary. Attributions returned with ``return_convergence_delta=True``
satisfy ``sum(attributions) - delta == f_target(photo) - f_target(baseline)`` up to float32
rounding, so one forward pass of two or three images verifies the pair and tells which class
and which baseline it explains. What it cannot tell is how many steps were taken: any
``n_steps`` satisfies the identity. Exercise 1 only tells 20 steps from the walkthrough's 200,
whose attributions a rerun reproduces bit for bit.
"""
from __future__ import annotations

import torch

from ..images import transform_normalize
from ..language import say
from ..models import label, to_target
from . import Answers, Exercise, Wrong, choice, predicted_class

NOTEBOOK = "02_integrated_gradients"


def logits(model, *inputs: torch.Tensor) -> torch.Tensor:
    """The model's logits for each input (rows), in one forward pass."""
    with torch.no_grad():
        return model(torch.cat(inputs)).detach().double()


def tolerance(*logits: float) -> float:
    """How far ``sum - delta`` may sit from the difference of two logits: float32 rounding (the
    check's batch is not captum's), relative to the logits' size, with room."""
    return 1e-4 * max(1.0, *(abs(float(v)) for v in logits))


def attributions_of(value, name: str, delta_name: str, like: torch.Tensor) -> torch.Tensor:
    """The learner's attributions ``value`` (named ``name``) as a tensor shaped like ``like``."""
    if isinstance(value, tuple) and len(value) == 2:
        raise Wrong(say(f"`{name}` holds a pair: with `return_convergence_delta=True`, `attribute` "
                        f"returns the attributions and the delta; unpack them: "
                        f"`{name}, {delta_name} = integrated_gradients.attribute(...)`.",
                        f"`{name}` 里是一对值：设了 `return_convergence_delta=True`，`attribute` "
                        f"会返回归因和收敛误差两样；把它们分开：`{name}, {delta_name} = "
                        "integrated_gradients.attribute(...)`。"))
    if not isinstance(value, torch.Tensor) or tuple(value.shape) != tuple(like.shape):
        found = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise Wrong(say(f"`{name}` should be the attributions `attribute` returns, a tensor "
                        f"shaped like `input_img` {tuple(like.shape)}; yours: {found}.",
                        f"`{name}` 应是 `attribute` 返回的归因，一个形状与 `input_img` "
                        f"{tuple(like.shape)} 相同的张量；你的是：{found}。"))
    return value.detach().double()


def number_of(value, name: str) -> float:
    """The learner's convergence delta ``value`` (named ``name``) as a float."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value.item())
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    found = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
    raise Wrong(say(f"`{name}` should be the convergence delta, one number (`attribute` returns "
                    f"it with `return_convergence_delta=True`); yours: {found}.",
                    f"`{name}` 应是收敛误差，一个数（设了 `return_convergence_delta=True` 时 "
                    f"`attribute` 会返回它）；你的是：{found}。"))


def total(attributions: torch.Tensor) -> float:
    """The attributions' sum, added up as captum adds them for its convergence delta."""
    return attributions.float().reshape(1, -1).sum(1).item()


def same_map(first: torch.Tensor, second) -> bool:
    """Whether ``second`` is a tensor holding the same attributions as ``first``."""
    if not isinstance(second, torch.Tensor) or second.shape != first.shape:
        return False
    second = second.detach().double()
    return torch.allclose(first, second, rtol=1e-4, atol=1e-6 * second.abs().max().item())


def explained_class(photo: torch.Tensor, baseline: torch.Tensor, implied: float) -> int | None:
    """The class whose logit difference between ``photo`` and ``baseline`` (their logits) the
    attributions and their delta add up to, if any."""
    differences = photo - baseline
    nearest = int((differences - implied).abs().argmin())
    close = tolerance(photo[nearest], baseline[nearest])
    return nearest if abs(differences[nearest] - implied) <= close else None


def top_share(attributions: torch.Tensor, others) -> float | None:
    """How many of the 10% pixels with the largest channel sums in ``attributions`` are also
    among the top 10% of ``others`` (None when ``others`` is not a map like it)."""
    if not isinstance(others, torch.Tensor) or others.shape != attributions.shape:
        return None

    def top(attr):
        summed = attr.detach().double().sum(dim=1).flatten()
        return summed >= summed.quantile(0.9)

    mine = top(attributions)
    return ((mine & top(others)).sum() / mine.sum()).item()


def _signed(value: float) -> str:
    """A convergence delta for a sentence: four decimals, or two digits where it is tiny."""
    return f"{value:+.4f}" if abs(value) >= 1e-3 or value == 0 else f"{value:+.1e}"


def _delta_200(a: Answers, walkthrough, difference: float, close: float) -> float:
    """The walkthrough's 200-step convergence delta: the notebook's ``delta`` (the number the
    solution compares with), unless the walkthrough's attributions say otherwise (``delta``
    overwritten); from those attributions where ``delta`` is gone."""
    old = a.get("delta")
    if isinstance(walkthrough, torch.Tensor) and walkthrough.dim() == 4:
        computed = total(walkthrough.detach()) - difference
        if isinstance(old, torch.Tensor) and old.numel() == 1 and \
                abs(old.item() - computed) <= close:
            return old.item()
        return computed
    return number_of(a.delta, "delta")


def _fewer_steps(a: Answers) -> str:
    x = a.input_img
    attributions = attributions_of(a.attributions_20, "attributions_20", "delta_20", x)
    delta = number_of(a.delta_20, "delta_20")
    walkthrough = a.get("attributions_ig")
    # the walkthrough's own numbers, or its call run again (the same bits): not 20 steps
    if isinstance(walkthrough, torch.Tensor) and torch.equal(attributions,
                                                             walkthrough.detach().double()):
        raise Wrong(say("`attributions_20` holds the same attributions as `attributions_ig`, the "
                        "200 steps' map: run `attribute` again with `n_steps=20` (if you "
                        "overwrote `attributions_ig`, rerun the walkthrough's cell first).",
                        "`attributions_20` 与 200 步的 `attributions_ig` 完全相同：请用 "
                        "`n_steps=20` 再运行一次 `attribute`（如果你覆盖了 `attributions_ig`，"
                        "先重新运行前面讲解部分的单元格）。"))
    photo, zero = logits(a.model, x, torch.zeros_like(x))
    target, differences = predicted_class(photo, a.get("pred_label_idx")), photo - zero
    difference = differences[target].item()
    implied, close = total(attributions) - delta, tolerance(photo[target], zero[target])
    if abs(implied - difference) > close:
        old = a.get("delta")
        if isinstance(old, torch.Tensor) and old.numel() == 1 and abs(old.item() - delta) <= close:
            raise Wrong(say("`delta_20` is `delta`, the 200 steps' convergence delta: keep the "
                            "one the 20-step call returns with `return_convergence_delta=True`.",
                            "`delta_20` 是 200 步的收敛误差 `delta`：请保存 20 步那次调用在 "
                            "`return_convergence_delta=True` 时返回的收敛误差。"))
        other = explained_class(photo, zero, implied)
        if other is not None and other != target:
            raise Wrong(say(f"these attributions and their delta add up to the logit difference "
                            f"of {label(other)} (class {other}), not of the predicted "
                            f"{label(target)}: pass `target=pred_label_idx`.",
                            f"这组归因和收敛误差加起来是 {label(other)}（第 {other} 类）的 logit "
                            f"之差，而不是预测类别 {label(target)} 的：请传入 "
                            "`target=pred_label_idx`。"))
        raise Wrong(say(f"the attributions add up to {total(attributions):.4f} and "
                        f"{label(target)}'s logit difference between the photo and the zero "
                        f"baseline is {difference:.4f}, so their convergence delta is "
                        f"{total(attributions) - difference:+.4f}, not {delta:+.4f}: keep the "
                        "delta that `attribute` returns with these attributions (zero baseline, "
                        "`target=pred_label_idx`).",
                        f"这组归因加起来是 {total(attributions):.4f}，而 {label(target)} 在照片与"
                        f"全零基线之间的 logit 之差是 {difference:.4f}，所以它们的收敛误差是 "
                        f"{total(attributions) - difference:+.4f}，而不是 {delta:+.4f}：请保存 "
                        "`attribute` 与这组归因一起返回的收敛误差（全零基线，"
                        "`target=pred_label_idx`）。"))
    delta_200 = _delta_200(a, walkthrough, difference, close)
    share_20, share_200 = (abs(d / (difference or 1e-12)) for d in (delta, delta_200))
    facts = say(f"with 20 steps the convergence delta is {_signed(delta)} ({share_20:.1%} of the "
                f"logit difference {difference:.3f}), with 200 steps {_signed(delta_200)} "
                f"({share_200:.1%})",
                f"20 步时收敛误差是 {_signed(delta)}（占 logit 之差 {difference:.3f} 的 "
                f"{share_20:.1%}），200 步时是 {_signed(delta_200)}（{share_200:.1%}）")
    larger = abs(delta) > abs(delta_200)
    ratio = abs(delta) / max(abs(delta_200), 1e-12)
    not_here = say(f"not on this model: {facts}.", f"在这个模型上不是这样：{facts}。")
    why = {
        "a": say(f"With 20 steps the gap is {ratio:.1f} times as large: fewer points estimate "
                 "the integral less well.",
                 f"20 步时的误差是 200 步时的 {ratio:.1f} 倍：点越少，对积分的估计越差。")
        if larger else not_here,
        "b": say("Along this path the gradient changes smoothly enough for a few points.",
                 "沿这条路径，梯度变化足够平缓，少数几个点就够了。") if not larger else not_here,
        "c": say(f"completeness holds for the exact integral; `n_steps` points only estimate it, "
                 f"and the convergence delta is what the estimate misses: {facts}.",
                 f"完备性对精确的积分成立；`n_steps` 个点只是在估计它，收敛误差就是估计漏掉的"
                 f"部分：{facts}。")}
    right = "a" if larger else "b"
    if max(abs(delta), abs(delta_200)) <= close:  # both at float rounding: a tie, (a) or (b)
        why["a"] = why["b"] = say("Both deltas are float rounding here: on this model the path "
                                  "is integrated as well with 20 steps as with 200.",
                                  "这里两个收敛误差都只是浮点舍入：在这个模型上，20 步和 200 步"
                                  "对路径积分得一样好。")
        picked = str(a.compare_gaps).strip().lower().strip("()., ")
        right = picked if picked in ("a", "b") else "b"
    why = choice(a.compare_gaps, right, why)
    return say(f"{facts}. {why}", f"{facts}。{why}")


def _other_class(a: Answers) -> str:
    x = a.input_img
    photo, zero = logits(a.model, x, torch.zeros_like(x))
    predicted, differences = predicted_class(photo, a.get("pred_label_idx")), photo - zero
    tiger_cat = to_target("tiger cat")
    expected = tiger_cat if predicted != tiger_cat else to_target("tabby")
    try:
        other = to_target(a.other)
    except ValueError as error:
        raise Wrong(say(f"`other` should be a class index: {error}.",
                        f"`other` 应是一个类别索引：{error}。")) from None
    if other != expected:
        if other == predicted:
            raise Wrong(say(f"`other` is the predicted class, {label(predicted)}: the exercise "
                            f"explains another one, {label(expected)} (`to_target`).",
                            f"`other` 是预测的类别 {label(predicted)}：这个练习要解释的是"
                            f"另一个类别，{label(expected)}（用 `to_target`）。"))
        raise Wrong(say(f"`other` is class {other} ({label(other)}); the class to explain is "
                        f"{label(expected)}, class {expected}: `to_target(\"tiger cat\")`, or "
                        "\"tabby\" where the model predicts tiger cat.",
                        f"`other` 是第 {other} 类（{label(other)}）；要解释的类别是 "
                        f"{label(expected)}，即第 {expected} 类：`to_target(\"tiger cat\")`，"
                        "模型预测的已经是 tiger cat 时换成 \"tabby\"。"))
    attributions = attributions_of(a.attributions_other, "attributions_other", "delta_other", x)
    delta = number_of(a.delta_other, "delta_other")
    walkthrough = a.get("attributions_ig")
    difference = differences[expected].item()
    implied = total(attributions) - delta
    if abs(implied - difference) > tolerance(photo[expected], zero[expected]):
        found = explained_class(photo, zero, implied)
        if same_map(attributions, walkthrough) or found == predicted:
            raise Wrong(say(f"these attributions explain the predicted class, "
                            f"{label(predicted)}: pass `target=other`.",
                            f"这组归因解释的是预测的类别 {label(predicted)}：请传入 "
                            "`target=other`。"))
        if found is not None:
            raise Wrong(say(f"these attributions and their delta add up to the logit difference "
                            f"of {label(found)} (class {found}), not of {label(expected)}: pass "
                            "`target=other`.",
                            f"这组归因和收敛误差加起来是 {label(found)}（第 {found} 类）的 logit "
                            f"之差，而不是 {label(expected)} 的：请传入 `target=other`。"))
        raise Wrong(say(f"the attributions minus their delta make {implied:.4f}, but "
                        f"{label(expected)}'s logit difference between the photo and the zero "
                        f"baseline is {difference:.4f}: explain `input_img` for `target=other` "
                        "against the default baseline, and keep the delta returned with these "
                        "attributions.",
                        f"这组归因减去收敛误差得到 {implied:.4f}，但 {label(expected)} 在照片与"
                        f"全零基线之间的 logit 之差是 {difference:.4f}：请以默认的基线、"
                        "`target=other` 解释 `input_img`，并保存与这组归因一起返回的收敛误差。"))
    share = top_share(attributions, walkthrough)
    overlap = "" if share is None else say(
        f" {share:.0%} of its top 10% pixels are also top 10% for {label(predicted)} "
        "(10% by chance).",
        f"它归因最大的 10% 像素中，有 {share:.0%} 也是 {label(predicted)} 归因最大的 10%"
        "（随机水平为 10%）。")
    gap = abs(delta / (difference or 1e-12))
    return say(f"the attributions and their delta add up to {label(expected)}'s logit "
               f"difference, {difference:.3f} (the delta is {gap:.1%} of it).{overlap}",
               f"这组归因和收敛误差加起来正是 {label(expected)} 的 logit 之差 {difference:.3f}"
               f"（收敛误差占它的 {gap:.1%}）。{overlap}")


def _dark_share(attributions: torch.Tensor, dark: torch.Tensor) -> float:
    size = attributions.detach().double().abs().sum(dim=1).flatten()
    return (size[dark].sum() / size.sum()).item()


def _black_baseline(a: Answers) -> str:
    x = a.input_img
    attributions = attributions_of(a.attributions_black, "attributions_black", "delta_black", x)
    delta = number_of(a.delta_black, "delta_black")
    walkthrough = a.get("attributions_ig")
    black = transform_normalize(torch.zeros(x.shape[1:])).unsqueeze(0)
    photo, zero, dark = logits(a.model, x, torch.zeros_like(x), black)
    target = predicted_class(photo, a.get("pred_label_idx"))
    differences = photo - dark
    difference, from_zero = differences[target].item(), (photo - zero)[target].item()
    implied = total(attributions) - delta
    if abs(implied - difference) > tolerance(photo[target], dark[target]):
        if same_map(attributions, walkthrough) or \
                abs(implied - from_zero) <= tolerance(photo[target], zero[target]):
            raise Wrong(say("these attributions are measured from the zero baseline, "
                            "ImageNet's average colour: pass `baselines=black`.",
                            "这组归因是相对于全零基线（ImageNet 的平均颜色）算出来的：请传入 "
                            "`baselines=black`。"))
        found = explained_class(photo, dark, implied)
        if found is not None and found != target:
            raise Wrong(say(f"these attributions explain {label(found)} (class {found}), not the "
                            f"predicted {label(target)}: pass `target=pred_label_idx`.",
                            f"这组归因解释的是 {label(found)}（第 {found} 类），而不是预测的 "
                            f"{label(target)}：请传入 `target=pred_label_idx`。"))
        raise Wrong(say(f"the attributions minus their delta make {implied:.4f}, but "
                        f"{label(target)}'s logit difference between the photo and the black "
                        f"image is {difference:.4f}: explain `input_img` for "
                        "`target=pred_label_idx` with `baselines=black`, and keep the delta "
                        "returned with these attributions.",
                        f"这组归因减去收敛误差得到 {implied:.4f}，但 {label(target)} 在照片与黑色"
                        f"图像之间的 logit 之差是 {difference:.4f}：请用 `baselines=black`、"
                        "`target=pred_label_idx` 解释 `input_img`，并保存与这组归因一起返回的"
                        "收敛误差。"))
    why = choice(a.never_credited, "a", {
        "a": say("An attribution is (pixel − baseline) times an integrated gradient, and a "
                 "black pixel's difference from a black baseline is zero, whatever its role.",
                 "每个归因都是（像素 − 基线）乘以沿路径积分的梯度；黑色像素与黑色基线之差为零，"
                 "无论它起什么作用。"),
        "b": say("the brightest pixels are the farthest from black: their factor (pixel − "
                 "baseline) is the largest, not zero.",
                 "最亮的像素离黑色最远：它们的因子（像素 − 基线）最大，而不是零。"),
        "c": say("pixels of the average colour are the ones the zero baseline cannot credit (it "
                 "is that colour); against black they differ from the baseline.",
                 "平均颜色的像素是全零基线无法分配归因的（基线就是这种颜色）；相对于黑色，"
                 "它们与基线并不相同。")})
    brightness = a.transformed_img.mean(dim=0).flatten()
    darkest = brightness <= brightness.quantile(0.1)
    shares = say(f"the darkest 10% of pixels hold {_dark_share(attributions, darkest):.1%} of "
                 "|attribution| against black", f"以黑色为基线时，最暗的 10% 像素占 |归因| 的 "
                 f"{_dark_share(attributions, darkest):.1%}")
    if isinstance(walkthrough, torch.Tensor) and walkthrough.shape == attributions.shape:
        shares += say(f", {_dark_share(walkthrough, darkest):.1%} against the zero baseline",
                      f"，以全零基线时占 {_dark_share(walkthrough, darkest):.1%}")
    return say(f"the attributions and their delta add up to {label(target)}'s logit difference "
               f"between the photo and the black image, {difference:.3f}; {shares}. {why}",
               f"这组归因和收敛误差加起来正是 {label(target)} 在照片与黑色图像之间的 logit 之差 "
               f"{difference:.3f}；{shares}。{why}")


q1 = Exercise(NOTEBOOK, 1, ("attributions_20", "delta_20", "compare_gaps"), _fewer_steps, (
    ("the walkthrough's call with `n_steps=20` and `return_convergence_delta=True` added: it then "
     "returns two things, `attributions_20, delta_20 = integrated_gradients.attribute(...)`.",
     "在讲解部分的调用里改成 `n_steps=20` 并加上 `return_convergence_delta=True`：它会返回两样"
     "东西，`attributions_20, delta_20 = integrated_gradients.attribute(...)`。"),
    ("compare `abs(delta_20.item())` with `abs(delta.item())`, the 200 steps' delta, each as a "
     "share of `score_difference`.",
     "比较 `abs(delta_20.item())` 和 200 步的 `abs(delta.item())`，各自占 `score_difference` "
     "的比例。")))
q2 = Exercise(NOTEBOOK, 2, ("other", "attributions_other", "delta_other"), _other_class, (
    ("`other = to_target(\"tiger cat\")` (\"tabby\" if that is the prediction); then the "
     "walkthrough's call with `target=other` and `n_steps=50`.",
     "`other = to_target(\"tiger cat\")`（如果预测的就是它，换成 \"tabby\"）；"
     "然后在讲解部分的调用里改成 `target=other`、`n_steps=50`。"),
    ("with `return_convergence_delta=True` the call returns two things: "
     "`attributions_other, delta_other = integrated_gradients.attribute(...)`.",
     "设了 `return_convergence_delta=True`，调用会返回两样东西："
     "`attributions_other, delta_other = integrated_gradients.attribute(...)`。")))
q3 = Exercise(NOTEBOOK, 3, ("attributions_black", "delta_black", "never_credited"),
              _black_baseline, (
    ("pass the black image as `baselines=black` to `integrated_gradients.attribute`, with "
     "`target=pred_label_idx`, `n_steps=50` and `return_convergence_delta=True`.",
     "把黑色图像作为 `baselines=black` 传给 `integrated_gradients.attribute`，再加上 "
     "`target=pred_label_idx`、`n_steps=50` 和 `return_convergence_delta=True`。"),
    ("each attribution is (pixel − baseline) times the gradient integrated along the path: when "
     "is the first factor zero?",
     "每个归因都是（像素 − 基线）乘以沿路径积分的梯度：第一个因子什么时候为零？")))
