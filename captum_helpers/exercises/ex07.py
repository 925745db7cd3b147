"""The checks of ``07_more_trust_checks``'s exercises.

None of them runs the model. Infidelity from 4 draws is judged by where the Random draws land
(a map unrelated to the change scores about 1 - 1/4 on captum's normalized scale, against about
1 - 1/16 from the notebook's 16 draws), the cheating maps by their split errors against
``truth``, and the false-alarm rate at three items is recomputed from ``random_draws``."""
from __future__ import annotations

import math

import numpy as np
import torch

from .. import trust
from ..language import say
from . import Answers, Exercise, Wrong, choice

NOTEBOOK = "07_more_trust_checks"
FEW_DRAWS = 4  # exercise 1: draws of the perturbation per photo
# How far the Random draws' mean may land from 1 - 1/4. On n draws a Random map scores
# 1 - R^2, R^2 ~ Beta(1/2, (n - 1)/2) whatever the model: sd 0.25 for one value at n = 4, 0.036
# for the mean of 8 draws x 6 photos (0.14 is 3.9 of those; EfficientNet-Lite0's run lands 0.07
# away). 16 draws put the mean at 0.94 (sd 0.012), 2 draws at 0.5, 1 draw at 0.
SPREAD = 0.14
MIN_ITEMS = 3  # exercise 3


def floats(values) -> list[float]:
    """A list of floats from a list, a tuple or a tensor of numbers."""
    if isinstance(values, torch.Tensor):
        return [float(v) for v in values.detach().flatten().tolist()]
    return [float(v) for v in values]


def sentence(text: str) -> str:
    """``text`` with a capital first letter, to follow a full stop."""
    return text[:1].upper() + text[1:]


def yes(value: bool) -> str:
    return say("yes", "是") if value else say("no", "否")


# 1. Fewer draws, a lower chance level -----------------------------------------------------------

def _few(a: Answers) -> str:
    few = a.few
    if not isinstance(few, dict):
        raise Wrong(say("`few` should be a dict: map name → its six scores over the zero map's.",
                        "`few` 应是一个字典：图的名称 → 它的六个分数除以零图的分数。"))
    draws = [f"Random {s}" for s in range(a.DRAWS)]
    missing = [name for name in draws + ["Saliency"] if name not in few]
    if missing:
        raise Wrong(say(f"`few` has no scores for {', '.join(missing)}: score every Random draw "
                        "of `scored` and Saliency.",
                        f"`few` 里没有 {', '.join(missing)} 的分数：请给 `scored` 里的每个 Random "
                        "抽取和 Saliency 打分。"))
    n = len(a.names)
    values = {name: floats(few[name]) for name in draws + ["Saliency"]}
    for name, scores in values.items():
        if len(scores) != n:
            raise Wrong(say(f"`few[\"{name}\"]` holds {len(scores)} values: one per photo, {n}.",
                            f"`few[\"{name}\"]` 里有 {len(scores)} 个值：每张照片一个，"
                            f"共 {n} 个。"))
        if not all(map(math.isfinite, scores)):
            raise Wrong(say(f"`few[\"{name}\"]` holds values that are not finite numbers.",
                            f"`few[\"{name}\"]` 里有不是有限数的值。"))
    sixteen = a.get("relative", {}).get("noise, sd 0.003", {})
    if all(name in sixteen and np.allclose(values[name], sixteen[name]) for name in draws):
        raise Wrong(say("these are section 1's scores, from 16 draws: score the maps again with "
                        "`n_perturb_samples=4`.",
                        "这是第 1 节用 16 次抽取得到的分数：请用 `n_perturb_samples=4` 重新打分。"))
    every = [v for scores in values.values() for v in scores]
    if max(every) > 1 + 1e-3 or min(every) < -1e-3:
        raise Wrong(say(f"scores from {min(every):.3g} to {max(every):.3g}: with "
                        "`normalize=True` and divided by the zero map's score from the same "
                        "draws, every score lies between 0 and 1 (β = 0 is one of the fits).",
                        f"分数从 {min(every):.3g} 到 {max(every):.3g}：用 `normalize=True` 并除以"
                        "同样抽取下零图的分数后，每个分数都在 0 和 1 之间（β = 0 也是一种拟合）。"))
    randoms = [v for name in draws for v in values[name]]
    mean, chance = float(np.mean(randoms)), 1 - 1 / FEW_DRAWS
    if abs(mean - chance) > SPREAD:
        notebook = 1 - 1 / a.N_SAMPLES
        if abs(mean - notebook) < 0.05:
            raise Wrong(say(f"the Random draws average {mean:.3f}, near 1 − 1/{a.N_SAMPLES} = "
                            f"{notebook:.3f}: that is {a.N_SAMPLES} draws; this exercise takes 4, "
                            "`n_perturb_samples=4`.",
                            f"Random 抽取的平均分是 {mean:.3f}，接近 1 − 1/{a.N_SAMPLES} = "
                            f"{notebook:.3f}：这是 {a.N_SAMPLES} 次抽取；本练习用 4 次，"
                            "`n_perturb_samples=4`。"))
        raise Wrong(say(f"the Random draws average {mean:.3f}, far from where maps unrelated "
                        "to the change land with 4 draws: use `n_perturb_samples=4`, "
                        "`normalize=True`, and divide by the zero map's score from the same 4 "
                        "draws (the same seed).",
                        f"Random 抽取的平均分是 {mean:.3f}，离 4 次抽取时与变化无关的图应落的位置"
                        "太远：请用 `n_perturb_samples=4`、`normalize=True`，并除以同样 4 次抽取"
                        "（同一个种子）下零图的分数。"))
    why = choice(a.chance_level, "a", {
        "a": say("the scale β is fitted on the very draws it is scored on; with 4 of them, a "
                 "map that knows nothing lines up with a quarter of the change by chance.",
                 "比例 β 是在被打分的同一批抽取上拟合的；只有 4 次抽取时，一无所知的图也会碰巧"
                 "对上变化的四分之一。"),
        "b": say(f"they land at {mean:.3f}, not 1: the fitted scale explains some of the change "
                 "by chance, more the fewer the draws.",
                 f"它们落在 {mean:.3f}，而不是 1：拟合出的比例会碰巧解释一部分变化，"
                 "抽取越少，解释得越多。"),
        "c": say(f"they land at {mean:.3f}, far from 0: a map unrelated to the change still "
                 "misses most of it.",
                 f"它们落在 {mean:.3f}，离 0 很远：与变化无关的图仍错过了它的大部分。")})
    spread = trust.Score.of(randoms).text(3)
    saliency = trust.Score.of(values["Saliency"]).text(3)
    return say(f"the {len(draws)} Random draws score {spread} over {n} photos, near "
               f"1 − 1/4 = {chance:.3f}; Saliency {saliency}. {sentence(why)}",
               f"{len(draws)} 个 Random 抽取在 {n} 张照片上的分数是 {spread}，接近 "
               f"1 − 1/4 = {chance:.3f}；Saliency 是 {saliency}。{why}")


# 2. Cheat the known answer ----------------------------------------------------------------------

def _errors(a: Answers, name: str) -> list[float]:
    """The split errors in ``name``, or those of a map of the inputs' shape kept there."""
    value = a[name]
    if isinstance(value, torch.Tensor) and value.dim() == 4:
        return trust.split_error(value, a.truth)
    return floats(value)


def _cheats(a: Answers) -> str:
    truth = floats(a.truth)
    errors = {name: _errors(a, name) for name in ("all_in_a_errors", "right_split_errors")}
    for name, values in errors.items():
        if len(values) != len(truth):
            raise Wrong(say(f"`{name}` holds {len(values)} errors: one per photo, {len(truth)}, "
                            "from `trust.split_error(map, truth)`.",
                            f"`{name}` 里有 {len(values)} 个误差：每张照片一个，"
                            f"共 {len(truth)} 个，来自 `trust.split_error(map, truth)`。"))
    in_a, split = errors["all_in_a_errors"], errors["right_split_errors"]
    if not np.allclose(in_a, [abs(1 - t) for t in truth], atol=1e-4):  # 1 in A answers 1
        if np.allclose(in_a, 0, atol=1e-4):
            raise Wrong(say("`all_in_a_errors` are the right split's errors: the two answers "
                            "are swapped.",
                            "`all_in_a_errors` 是正确划分的图的误差：两个答案放反了。"))
        constant = a.get("scores", {}).get("known answer", {}).get("Constant")
        if constant is not None and np.allclose(in_a, constant, atol=1e-4):
            raise Wrong(say("these are the Constant map's errors: the map is 1 inside box A "
                            "only, 0 everywhere else (`trust.box_mask(trust.BOX_A)`).",
                            "这是 Constant 图的误差：这张图只在框 A 里为 1，其他地方都是 0"
                            "（`trust.box_mask(trust.BOX_A)`）。"))
        raise Wrong(say("a map with 1 in box A and 0 everywhere else answers 1 on every photo, "
                        "so its error is |1 − truth|; yours differ. Build it from "
                        "`trust.box_mask(trust.BOX_A)`, of the inputs' shape.",
                        "框 A 里为 1、其他地方为 0 的图在每张照片上都回答 1，误差是 |1 − truth|；"
                        "你的不是。请用 `trust.box_mask(trust.BOX_A)` 构造，形状与输入相同。"))
    if max(split) > 1e-4:
        raise Wrong(say(f"`right_split_errors` reach {max(split):.3g}; the map should answer "
                        "`truth` exactly. Its sums in the boxes must be S_A = truth and "
                        "|S_B| = 1 − |truth|: divide each box's constant by the box's size "
                        "(pixels × channels).",
                        f"`right_split_errors` 达到 {max(split):.3g}；这张图应恰好回答 `truth`。"
                        "它在两个框里的和必须是 S_A = truth、|S_B| = 1 − |truth|："
                        "把每个框的常数除以框的大小（像素数 × 通道数）。"))
    references = {r: a.scores["known answer"][r] for r in a.REFERENCES}
    beats = [yes(trust.beats_all(values, references, True)) for values in (in_a, split)]
    why = choice(a.needs, "b", {
        "a": say("every method is told the target class (`target=`); the cheat needs more.",
                 "每种方法都被告知了目标类别（`target=`）；作弊的图需要的更多。"),
        "b": say("it copies `truth`, which only running the known model on each box gives; no "
                 "method is told it. A check is worth as much as its right answer is hidden from "
                 "the maps it scores.",
                 "它抄了 `truth`，而 `truth` 只有在每个框上运行已知模型才能得到；没有哪种方法"
                 "被告知它。一个检验的价值，取决于它的正确答案对被打分的图藏得有多严。"),
        "c": say("every method is given the photo; the right split needs no pixel at all, only "
                 "the answer.",
                 "每种方法都拿到了照片；正确划分的图一个像素都不需要，只需要答案。")})
    return say(f"the first map answers 1 on every photo, the second copies the right answer. "
               f"Beats every reference by the rule: the first {beats[0]}, the second {beats[1]}. "
               f"{sentence(why)}",
               f"第一张图在每张照片上都回答 1，第二张抄了正确答案。按规则胜过所有参照图："
               f"第一张{beats[0]}，第二张{beats[1]}。{why}")


# 3. Why at least six items? ---------------------------------------------------------------------

def _rate(draws, items=slice(0, MIN_ITEMS), lower_is_better=True, ordered=True,
          itself=False) -> tuple[float, int, int]:
    """The false-alarm rate of the rule on some items: (rate, alarms, pairs)."""
    few = [list(d)[items] for d in draws]
    pairs = [(x, y) for x in range(len(few)) for y in range(len(few))
             if (itself or x != y) and (ordered or x < y)]
    alarms = sum(trust.beats(few[x], few[y], lower_is_better, min_items=len(few[0]))
                 for x, y in pairs)
    return alarms / len(pairs), alarms, len(pairs)


def _rate_3(a: Answers) -> str:
    value = a.rate_3
    try:
        mine = float(value)
    except (TypeError, ValueError):
        raise Wrong(say("`rate_3` should be one number, the share of pairs in which the rule "
                        "says \"beats\".",
                        "`rate_3` 应是一个数：规则判为“胜过”的对数所占的比例。")) from None
    draws = a.random_draws["known answer"]
    right, alarms, pairs = _rate(draws)
    if abs(mine - right) > 1e-9:
        if abs(mine - 100 * right) < 1e-6 and right > 0:
            raise Wrong(say(f"{mine:g} is a percentage: keep the share, from 0 to 1.",
                            f"{mine:g} 是百分数：请保存比例，介于 0 和 1 之间。"))
        if abs(mine - alarms) < 1e-9:
            raise Wrong(say(f"{mine:g} is the number of pairs; the rate is its share of the "
                            f"{pairs} pairs.",
                            f"{mine:g} 是对数；比率是它在 {pairs} 对中所占的比例。"))
        if abs(mine - a.false_alarm["known answer"]) < 1e-9:
            raise Wrong(say("that is the rate at six items: take the first three values of each "
                            "draw, `values[:3]`.",
                            "这是六项时的比率：请取每个抽取的前三个值，`values[:3]`。"))
        alternatives = {
            say("count each pair once in each order (a beats b, b beats a): ordered pairs",
                "每一对按两种顺序各算一次（a 胜 b，b 胜 a）：有序对"): _rate(draws, ordered=False),
            say("leave out the pairs of a draw with itself", "去掉抽取与自己配成的对"):
                _rate(draws, itself=True),
            say("a lower split error is better: `lower_is_better=True`",
                "划分误差越小越好：`lower_is_better=True`"): _rate(draws, lower_is_better=False),
            say("take the first three photos, `values[:3]`", "取前三张照片，`values[:3]`"):
                _rate(draws, items=slice(-MIN_ITEMS, None))}
        for advice, (rate, _, _) in alternatives.items():
            if abs(mine - rate) < 1e-9:
                raise Wrong(advice + say(".", "。"))
        raise Wrong(say(f"at three items the rule says \"beats\" in {alarms} of the {pairs} "
                        f"ordered pairs of different draws; your rate is {mine:.3g}.",
                        f"三项时，在 {pairs} 个不同抽取的有序对中，规则有 {alarms} 次判为"
                        f"“胜过”；你的比率是 {mine:.3g}。"))
    six = a.false_alarm["known answer"]
    order = "a" if right > six else "b" if right == six else "c"
    numbers = say(f"{right:.0%} at three items, {six:.0%} at six",
                  f"三项时 {right:.0%}，六项时 {six:.0%}")
    lesson = say("With three values the standard deviation is itself a guess, and mean − sd "
                 "> 0 happens by chance more easily: the rule asks for at least six items.",
                 "只有三个值时，标准差本身就是猜测，均值减标准差大于 0 更容易碰巧发生："
                 "所以规则要求至少六项。")
    why = choice(a.three_vs_six, order, {
        letter: (numbers + say(". ", "。") + (lesson if letter == "a" else say(
            "On these draws the small sample did not raise the rate; it can, and on average "
            "does.", "在这些抽取上，小样本没有提高比率；但它可能提高，平均而言也确实提高。")))
        if letter == order else say(f"compare the two: {numbers}.", f"比较这两个数：{numbers}。")
        for letter in "abc"})
    return say(f"at three items the rule says \"beats\" in {alarms} of the {pairs} ordered "
               f"pairs of Random draws: {why}",
               f"三项时，在 {pairs} 个 Random 抽取的有序对中，规则有 {alarms} 次判为“胜过”："
               f"{why}")


q1 = Exercise(NOTEBOOK, 1, ("few", "chance_level"), _few, (
    ("section 1's cell scores every map the same way: copy its `infidelity(...)` call with "
     "`gaussian_noise(1, 0.003)` and `n_perturb_samples=4`, for the maps of `scored` you need.",
     "第 1 节的单元格用同样的方式给每张图打分：照抄它的 `infidelity(...)` 调用，换成 "
     "`gaussian_noise(1, 0.003)` 和 `n_perturb_samples=4`，只算你需要的 `scored` 里的图。"),
    ("`few = {n: (value / few[\"zero map\"]).tolist() for n, value in few.items()}` once every "
     "map is scored; then compare the Random draws' mean with 1 − 1/4.",
     "给每张图打完分后，`few = {n: (value / few[\"zero map\"]).tolist() for n, value in "
     "few.items()}`；再把 Random 抽取的平均值与 1 − 1/4 比较。")))
q2 = Exercise(NOTEBOOK, 2, ("all_in_a_errors", "right_split_errors", "needs"), _cheats, (
    ("`trust.box_mask(trust.BOX_A).float().expand_as(inputs)` is the first map; the same with "
     "`trust.BOX_B` marks box B.",
     "`trust.box_mask(trust.BOX_A).float().expand_as(inputs)` 就是第一张图；换成 `trust.BOX_B` "
     "就标出了框 B。"),
    ("for the second map the sums must be S_A = truth and |S_B| = 1 − |truth|: "
     "`share * in_a / in_a[0].sum() + (1 - share.abs()) * in_b / in_b[0].sum()` with "
     "`share = truth.view(-1, 1, 1, 1)`.",
     "第二张图的两个和必须是 S_A = truth、|S_B| = 1 − |truth|："
     "`share * in_a / in_a[0].sum() + (1 - share.abs()) * in_b / in_b[0].sum()`，其中 "
     "`share = truth.view(-1, 1, 1, 1)`。")))
q3 = Exercise(NOTEBOOK, 3, ("rate_3", "three_vs_six"), _rate_3, (
    ("`[values[:3] for values in random_draws[\"known answer\"]]` keeps three photos of every "
     "draw; the pairs are `(a, b)` for `a != b`, both orders.",
     "`[values[:3] for values in random_draws[\"known answer\"]]` 保留每个抽取的三张照片；"
     "对是 `a != b` 的 `(a, b)`，两种顺序都算。"),
    ("`rate_3 = sum(trust.beats(x[a], x[b], lower_is_better=True, min_items=3) for a, b in "
     "pairs) / len(pairs)`; compare it with `false_alarm[\"known answer\"]`.",
     "`rate_3 = sum(trust.beats(x[a], x[b], lower_is_better=True, min_items=3) for a, b in "
     "pairs) / len(pairs)`；再与 `false_alarm[\"known answer\"]` 比较。")))
