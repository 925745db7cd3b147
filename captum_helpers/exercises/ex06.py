"""The checks of ``06_can_you_trust_it``'s exercises.

Each check reads the notebook's own numbers (``grids``, ``maps``, ``scores``...) and recomputes
as little as proves the answer: the rule on 14 x 14 grids (milliseconds), the deletion curve of
one map on one photo (six images through the model), Saliency of one photo on a copy of the
model. The letters are judged against the rule on the learner's own numbers, once those are
shown to be right, so they hold for whichever model the notebook runs."""
from __future__ import annotations

import copy
import itertools
import math
import warnings

import torch
from captum.attr import Saliency

from .. import trust
from ..language import say
from . import Answers, Exercise, Wrong, choice

NOTEBOOK = "06_can_you_trust_it"
TOP = 0.1  # exercise 1: the top 10 % of the grid's cells
FILLED = ("IG", "Occlusion", "Random")  # exercise 2's maps
STEPS = 5  # exercise 2: points on each deletion curve after the start


def floats(values) -> list[float]:
    """A list of floats from a list, a tuple or a tensor of numbers."""
    if isinstance(values, torch.Tensor):
        return [float(v) for v in values.detach().flatten().tolist()]
    return [float(v) for v in values]


def yes(value: bool) -> str:
    return say("yes", "是") if value else say("no", "否")


def sentence(text: str) -> str:
    """``text`` with a capital first letter, to follow a full stop."""
    return text[:1].upper() + text[1:]


def letters(right: str, right_why: str, wrong_why: str, options: str = "abc") -> dict[str, str]:
    """``choice``'s explanations where the right letter depends on the numbers."""
    return {letter: right_why if letter == right else wrong_why for letter in options}


# 1. The strongest cells only ------------------------------------------------------------------

def _pair(key) -> tuple:
    """A pair of method names from ``(a, b)`` or ``"a – b"``."""
    if isinstance(key, str):
        for dash in ("–", "-"):
            if dash in key:
                return tuple(part.strip() for part in key.split(dash, 1))
    return tuple(key)


def _verdicts(a: Answers, pairs, score, lower_is_better: bool = False) -> dict[tuple, bool]:
    """For each pair, whether its score on the same photo beats its score against the next
    photo's map, by the rule: what the agreement table decides."""
    n, grids = a.n, a.grids
    same, following = list(range(n)), [(i + 1) % n for i in range(n)]

    def values(x, y, others):
        return [score(grids[x][i], grids[y][j]) for i, j in zip(range(n), others)]

    return {(x, y): trust.beats(values(x, y, same), values(x, y, following), lower_is_better)
            for x, y in pairs}


def _top_agree(a: Answers) -> str:
    answer = a.top_agree
    if not isinstance(answer, dict):
        raise Wrong(say("`top_agree` should be a dict: each pair `(a, b)` of methods → the "
                        "rule's verdict, True or False.",
                        "`top_agree` 应是一个字典：每对方法 `(a, b)` → 规则的结论，"
                        "True 或 False。"))
    pairs = list(itertools.combinations(a.METHODS, 2))
    found = {_pair(key): value for key, value in answer.items()}
    missing = [p for p in pairs if p not in found and p[::-1] not in found]
    if missing:
        named = ", ".join(f"{x} – {y}" for x, y in missing)
        raise Wrong(say(f"`top_agree` has no verdict for {named}: one entry for each pair of "
                        "`itertools.combinations(METHODS, 2)`.",
                        f"`top_agree` 缺少 {named} 的结论：`itertools.combinations(METHODS, 2)` "
                        "的每一对都要有一项。"))
    given = {p: found[p] if p in found else found[p[::-1]] for p in pairs}
    if not all(isinstance(v, bool) or type(v).__name__ in ("bool_", "bool") for v in
               given.values()):
        raise Wrong(say("each value of `top_agree` is the rule's verdict, True or False "
                        "(`trust.beats(...)`), not the overlaps themselves.",
                        "`top_agree` 的每个值是规则的结论 True 或 False（`trust.beats(...)`），"
                        "不是重叠度本身。"))
    given = {p: bool(v) for p, v in given.items()}
    top = _verdicts(a, pairs, lambda x, y: trust.top_iou(x, y, TOP))
    by_rank = _verdicts(a, pairs, trust.spearman)
    if given != top:
        if given == by_rank:
            raise Wrong(say("these are the verdicts of Spearman's correlation, the table above: "
                            "score each pair with `trust.top_iou(a, b, 0.1)` instead.",
                            "这是上面表格里斯皮尔曼等级相关系数的结论：请改用 "
                            "`trust.top_iou(a, b, 0.1)` 给每对打分。"))
        if given == _verdicts(a, pairs, trust.top_iou):
            raise Wrong(say("`trust.top_iou` compares the top 20 % of cells unless told "
                            "otherwise: pass the fraction, `trust.top_iou(a, b, 0.1)`.",
                            "`trust.top_iou` 默认比较前 20 % 的格子：请传入比例，"
                            "`trust.top_iou(a, b, 0.1)`。"))
        if given == _verdicts(a, pairs, lambda x, y: trust.top_iou(x, y, TOP), True):
            raise Wrong(say("a larger overlap is more agreement: `lower_is_better=False`.",
                            "重叠越大越一致：`lower_is_better=False`。"))
        differ = ", ".join(f"{x} – {y}" for (x, y) in pairs if given[x, y] != top[x, y])
        raise Wrong(say(f"the rule decides otherwise for {differ}: for each pair, the overlaps "
                        "on the same photo (`same`) against those with the next photo's map "
                        "(`following`), `trust.beats(..., lower_is_better=False)`.",
                        f"对 {differ}，规则的结论不同：对每一对，比较同一张照片上的重叠（`same`）"
                        "和与下一张照片的图的重叠（`following`），"
                        "`trust.beats(..., lower_is_better=False)`。"))
    on_top, on_rank = sum(top.values()), sum(by_rank.values())
    right = "a" if on_top > on_rank else "b" if on_top == on_rank else "c"
    why = choice(a.top_vs_spearman, right, letters(
        right,
        say(f"{on_top} of {len(pairs)} pairs agree beyond chance on their top 10 % of cells, "
            f"{on_rank} by Spearman's correlation. The overlap looks at 20 of 196 cells and "
            "ignores how the others are ordered: it asks a narrower question.",
            f"{len(pairs)} 对中有 {on_top} 对在前 10 % 的格子上超出随机水平地一致，"
            f"按斯皮尔曼等级相关系数是 {on_rank} 对。重叠度只看 196 个格子中的 20 个，"
            "不管其余格子的顺序：它问的是一个更窄的问题。"),
        say(f"count them: {on_top} pairs agree beyond chance on their top 10 % of cells "
            f"(`top_agree`), {on_rank} in Spearman's table above.",
            f"数一数：{on_top} 对在前 10 % 的格子上超出随机水平地一致（`top_agree`），"
            f"上面斯皮尔曼的表格里是 {on_rank} 对。")))
    return say(f"the rule's verdict on the top 10 % overlap for every pair. {sentence(why)}",
               f"每一对在前 10 % 重叠度上的规则结论都对。{why}")


# 2. A home advantage? -------------------------------------------------------------------------

def _areas(a: Answers, name: str, photo: int, absolute: bool = False) -> tuple[float, float]:
    """The deletion area of map ``name`` on one photo with the zero fill: divided by the score on
    the photo (the exercise's), and not divided. Six images through the model."""
    grid = trust.to_grid(a.maps[name][photo:photo + 1], absolute=absolute)
    x = a.inputs[photo:photo + 1]
    curve = trust.cell_curves(a.model, x, torch.zeros_like(x), [trust.cell_order(grid, photo)],
                              int(a.targets[photo]), steps=STEPS)[0]
    return trust.auc(curve / curve[0]), trust.auc(curve)


def _close(x: float, y: float) -> bool:
    return abs(x - y) <= 1e-3 * max(1.0, abs(y))


def _zero_fill(a: Answers) -> str:
    answer = a.zero_fill
    if not isinstance(answer, dict) or any(m not in answer for m in FILLED):
        raise Wrong(say("`zero_fill` should be a dict with one list of areas for each of "
                        "\"IG\", \"Occlusion\" and \"Random\".",
                        "`zero_fill` 应是一个字典，\"IG\"、\"Occlusion\"、\"Random\" "
                        "各对应一个面积列表。"))
    areas = {m: floats(answer[m]) for m in FILLED}
    for m, values in areas.items():
        if len(values) != a.n:
            raise Wrong(say(f"`zero_fill[\"{m}\"]` holds {len(values)} areas: one per photo, "
                            f"`n` = {a.n}.",
                            f"`zero_fill[\"{m}\"]` 里有 {len(values)} 个面积：每张照片一个，"
                            f"`n` = {a.n}。"))
        if not all(map(math.isfinite, values)):
            raise Wrong(say(f"`zero_fill[\"{m}\"]` holds values that are not finite numbers.",
                            f"`zero_fill[\"{m}\"]` 里有不是有限数的值。"))
    expected, undivided = _areas(a, "IG", 0)
    mine = areas["IG"][0]
    if not _close(mine, expected):
        blurred = a.scores["deletion"]["IG"][0] if "deletion" in a.get("scores", {}) else None
        if blurred is not None and _close(mine, blurred):
            raise Wrong(say("these are the blurred fill's areas: the curve must end at "
                            "`torch.zeros_like(inputs[i:i + 1])`.",
                            "这是模糊填充的面积：曲线的终点应是 "
                            "`torch.zeros_like(inputs[i:i + 1])`。"))
        if _close(mine, undivided):
            raise Wrong(say("divide each curve by the score on the photo, its first value, "
                            "before `trust.auc`: `trust.auc(c / curves[0, 0])`.",
                            "在 `trust.auc` 之前，先把每条曲线除以照片上的分数，即它的第一个值："
                            "`trust.auc(c / curves[0, 0])`。"))
        if _close(mine, _areas(a, "IG", 0, absolute=True)[0]):
            raise Wrong(say("order the cells by the signed map, strongest evidence for the class "
                            "first: `trust.to_grid(..., absolute=False)`.",
                            "按带符号的图给格子排序，对该类别最有利的证据在前："
                            "`trust.to_grid(..., absolute=False)`。"))
        raise Wrong(say(f"on the first photo ({a.names[0]}), IG's area with the zero fill is "
                        f"{expected:.3f}; yours is {mine:.3f}. Check `steps=5`, the fill and the "
                        "order of the cells.",
                        f"在第一张照片（{a.names[0]}）上，用零填充时 IG 的面积是 {expected:.3f}；"
                        f"你的是 {mine:.3f}。请检查 `steps=5`、填充和格子的顺序。"))
    blur = a.scores["deletion"]
    gains = {m: (trust.beats(areas[m], areas["Random"], lower_is_better=True),
                 trust.beats(blur[m], blur["Random"], lower_is_better=True))
             for m in ("IG", "Occlusion")}
    right = "a" if any(zeros and not blurred for zeros, blurred in gains.values()) else "b"
    found = say("; ", "；").join(
        say(f"{m} beats Random with zeros: {yes(z)}, with the blur: {yes(b)}",
            f"{m} 用零填充时胜过 Random：{yes(z)}，用模糊填充时：{yes(b)}")
        for m, (z, b) in gains.items())
    home = {"a": say("a method that gains from the zero fill alone is favoured by the fill, "
                     "not shown faithful: the fill is part of the metric.",
                     "只因零填充才占优的方法是被填充方式偏袒了，而不是证明了它的忠实度："
                     "填充方式是度量的一部分。"),
            "b": say("the zero fill gives neither IG nor Occlusion a verdict the blurred fill "
                     "does not: on these photos no home advantage shows.",
                     "零填充没有给 IG 或 Occlusion 带来模糊填充所没有的结论：在这些照片上看不出"
                     "主场优势。")}
    why = choice(a.home_advantage, right, {
        "a": home["a"] if right == "a" else say(f"by your areas: {found}.",
                                                f"按你的面积：{found}。"),
        "b": home["b"] if right == "b" else say(f"by your areas: {found}.",
                                                f"按你的面积：{found}。"),
        "c": say("each verdict compares maps scored with the same fill, photo by photo; "
                 "comparing the two verdicts is fair.",
                 "每个结论都是在同一种填充下逐张照片比较各图；比较两个结论是公平的。")})
    return say(f"IG's area on {a.names[0]} with the zero fill is {expected:.3f}, as yours. "
               f"{sentence(found)}. {sentence(why)}",
               f"用零填充时 IG 在 {a.names[0]} 上的面积是 {expected:.3f}，与你的一致。"
               f"{found}。{why}")


# 3. Which stage matters? ----------------------------------------------------------------------

def _like(a: Answers) -> str:
    like = floats(a.like)
    if len(like) != a.n:
        raise Wrong(say(f"`like` holds {len(like)} values: one Spearman correlation per photo, "
                        f"`n` = {a.n}.",
                        f"`like` 里有 {len(like)} 个值：每张照片一个斯皮尔曼等级相关系数，"
                        f"`n` = {a.n}。"))
    if not all(-1 - 1e-6 <= v <= 1 + 1e-6 for v in like):
        raise Wrong(say("a Spearman correlation lies between -1 and 1: keep "
                        "`trust.spearman` of the two grids, photo by photo.",
                        "斯皮尔曼等级相关系数介于 -1 和 1 之间：请逐张照片保存两个网格的 "
                        "`trust.spearman`。"))
    with torch.random.fork_rng(devices=[]):  # reinitialize seeds torch: keep the learner's state
        top_only = copy.deepcopy(a.model)
        stage, layers = trust.randomization_stages(top_only)[0]
        trust.reinitialize(layers, 0)
    trained = trust.randomization_stages(a.model)[0][1]
    if all(torch.equal(p, q) for mine, fresh in zip(trained, layers)
           for p, q in zip(mine.parameters(), fresh.parameters())):
        raise Wrong(say(f"`model` itself now has the random {stage}: randomize a copy, "
                        "`copy.deepcopy(model)`, and run the notebook again from the top.",
                        f"`model` 本身的 {stage} 已被随机化：请随机化它的副本 "
                        "`copy.deepcopy(model)`，并从头重新运行笔记本。"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # captum: the input did not require gradients
        saliency = Saliency(top_only).attribute(a.inputs[:1].clone(), target=int(a.targets[0]))
    expected = trust.spearman(a.grids["Saliency"][0], trust.to_grid(saliency.detach()))
    if abs(like[0] - expected) > 0.02:
        fully = a.scores["like the trained map"]["Saliency"]
        if all(abs(x - y) < 1e-6 for x, y in zip(like, fully)):
            raise Wrong(say("these are the values of the model randomized in every layer, from "
                            "the sanity check: randomize only the first stage, "
                            "`trust.randomization_stages(...)[0]`.",
                            "这是合理性检验中所有层都随机化的模型的值：只随机化第一个阶段，"
                            "`trust.randomization_stages(...)[0]`。"))
        if like[0] > 0.999:
            raise Wrong(say("the map is the trained model's own: reinitialize the copy's "
                            "classifier, and explain with the copy.",
                            "这就是训练好的模型自己的图：请重新初始化副本的分类器，并用副本来解释。"))
        raise Wrong(say(f"on the first photo ({a.names[0]}), Saliency of the model with a "
                        f"random {stage} (seed 0) has a Spearman correlation of {expected:.3f} "
                        f"with the trained map; yours is {like[0]:.3f}.",
                        f"在第一张照片（{a.names[0]}）上，{stage} 随机化（种子 0）后的模型的 "
                        f"Saliency 与训练好的图的斯皮尔曼等级相关系数是 {expected:.3f}；"
                        f"你的是 {like[0]:.3f}。"))
    edges = a.scores["like the trained map"]["Edge detector"]
    unlike = trust.beats(like, edges, lower_is_better=True)
    score = trust.Score.of(like)
    right = "a" if unlike else "b"
    why = choice(a.classifier_enough, right, {
        "a": say(f"with only its {stage} random the model already draws another Saliency map "
                 f"(Spearman {score}): the gradient at the input passes through the classifier's "
                 "weights.",
                 f"只随机化 {stage}，模型画出的 Saliency 图就已经不同了（斯皮尔曼 {score}）："
                 "输入处的梯度要经过分类器的权重。") if right == "a" else
        say(f"by your values (Spearman {score}), the map does not beat the Edge detector by "
            "the rule: mean minus sd of the improvements is not above 0.",
            f"按你的值（斯皮尔曼 {score}），这张图按规则没有胜过 Edge detector："
            "改进的均值减标准差不大于 0。"),
        "b": say(f"by the rule the map stays too like the trained one (Spearman {score}): "
                 "the lower layers, still trained, shape much of the gradient.",
                 f"按规则，这张图仍与训练好的图太相似（斯皮尔曼 {score}）："
                 "仍是训练好的下层决定了梯度的大部分。") if right == "b" else
        say(f"by your values (Spearman {score}) the map beats the Edge detector by the rule.",
            f"按你的值（斯皮尔曼 {score}），这张图按规则胜过了 Edge detector。"),
        "c": say("the gradient of the class score passes through the classifier's weights, so "
                 "new weights give a new map: compare `like` with 1.",
                 "类别分数的梯度要经过分类器的权重，新的权重给出新的图：把 `like` 与 1 比较。")})
    return say(f"on {a.names[0]}, the check's own Saliency map of the copy correlates "
               f"{expected:.3f} with the trained map, as yours. {sentence(why)}",
               f"在 {a.names[0]} 上，检查自己算出的副本的 Saliency 图与训练好的图的相关系数是 "
               f"{expected:.3f}，与你的一致。{why}")


q1 = Exercise(NOTEBOOK, 1, ("top_agree", "top_vs_spearman"), _top_agree, (
    ("`agreement` above takes a score from two grids; write the same with "
     "`trust.top_iou(a[i], b[j], 0.1)` in place of `trust.spearman`.",
     "上面的 `agreement` 从两个网格算出分数；照样写一个，用 `trust.top_iou(a[i], b[j], 0.1)` "
     "代替 `trust.spearman`。"),
    ("`top_agree[(a, b)] = trust.beats(on_same, on_next, lower_is_better=False)` for `a, b` in "
     "`itertools.combinations(METHODS, 2)`; then count the True values on both sides.",
     "对 `itertools.combinations(METHODS, 2)` 中的 `a, b`，"
     "`top_agree[(a, b)] = trust.beats(on_same, on_next, lower_is_better=False)`；"
     "然后数两边的 True。")))
q2 = Exercise(NOTEBOOK, 2, ("zero_fill", "home_advantage"), _zero_fill, (
    ("one photo at a time: three orders (one per map), then one call of `trust.cell_curves` "
     "gives the three curves, one row each.",
     "一次一张照片：三个顺序（每张图一个），再调用一次 `trust.cell_curves` "
     "得到三条曲线，每行一条。"),
    ("`zero_fill[name].append(trust.auc(row / curves[0, 0]))` for each `name, row` in "
     "`zip(zero_fill, curves)`; then `trust.beats(zero_fill[m], zero_fill[\"Random\"], True)` "
     "beside the same with `scores[\"deletion\"]`.",
     "对 `zip(zero_fill, curves)` 中的每个 `name, row`，"
     "`zero_fill[name].append(trust.auc(row / curves[0, 0]))`；然后把 "
     "`trust.beats(zero_fill[m], zero_fill[\"Random\"], True)` 与 "
     "`scores[\"deletion\"]` 上的同一比较放在一起看。")))
q3 = Exercise(NOTEBOOK, 3, ("like", "classifier_enough"), _like, (
    ("`stage, layers = trust.randomization_stages(top_only)[0]` on the copy `top_only`, then "
     "`trust.reinitialize(layers, 0)`.",
     "在副本 `top_only` 上 `stage, layers = trust.randomization_stages(top_only)[0]`，然后 "
     "`trust.reinitialize(layers, 0)`。"),
    ("the copy's map on the grid, photo by photo, `[trust.to_grid(m[i:i + 1]) for i in "
     "range(n)]`, then `like = agreement(grids[\"Saliency\"], those_grids, same)`; "
     "`trust.beats(like, scores[\"like the trained map\"][\"Edge detector\"], True)` decides.",
     "把副本的图逐张放到网格上，`[trust.to_grid(m[i:i + 1]) for i in range(n)]`，然后 "
     "`like = agreement(grids[\"Saliency\"], those_grids, same)`；由 "
     "`trust.beats(like, scores[\"like the trained map\"][\"Edge detector\"], True)` 决定。")))
