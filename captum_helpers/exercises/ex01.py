"""The checks of ``01_prediction``'s exercises."""
from __future__ import annotations

import torch

from ..assets import IMG_DIR
from ..images import load_image, preprocess, transform
from ..language import say
from ..models import categories, predict
from . import Answers, Exercise, Wrong, choice

NOTEBOOK = "01_prediction"


def indices(answer) -> list[int]:
    """Class indices from a list of ``Prediction``s, of ints, or a tensor of indices."""
    if isinstance(answer, torch.Tensor):
        return [int(i) for i in answer.flatten().tolist()]
    return [int(getattr(p, "index", p)) for p in answer]


def named(found: list[int]) -> str:
    return ", ".join(categories()[i] for i in found)


def _coffee_top5(a: Answers) -> str:
    found = indices(a.coffee_top5)
    if len(found) != 5:
        raise Wrong(say(f"`coffee_top5` holds {len(found)} classes, not 5: `predict(..., k=5)`.",
                        f"`coffee_top5` 里有 {len(found)} 个类别，不是 5 个："
                        "`predict(..., k=5)`。"))
    image = load_image(IMG_DIR / "coffee.png")
    expected = predict(a.model, preprocess(image)[1], k=5)
    if found != indices(expected):
        if found == indices(predict(a.model, a.input_img, k=5)):
            raise Wrong(say("these are chelsea.png's top 5: preprocess `../img/coffee.png` and "
                            "predict on that input.",
                            "这是 chelsea.png 的前 5 名：请对 `../img/coffee.png` 做预处理，"
                            "再对它预测。"))
        if found == indices(predict(a.model, transform(image).unsqueeze(0), k=5)):
            raise Wrong(say("these are the predictions for the crop without normalization: "
                            "`preprocess` returns the model's input second.",
                            "这是未归一化裁剪图的预测：`preprocess` 返回的第二项才是模型的输入。"))
        raise Wrong(say(f"the model's top 5 for coffee.png are {named(indices(expected))}, most "
                        f"probable first; yours: {named(found)}.",
                        f"模型对 coffee.png 的前 5 名（按概率从高到低）是 "
                        f"{named(indices(expected))}；你的是 {named(found)}。"))
    best = expected[0]
    return say(f"the model's top 5 for coffee.png, most probable first; it calls the photo "
               f"{best.label} ({best.probability:.2f}).",
               f"这正是模型对 coffee.png 的前 5 名（按概率从高到低）；它认为照片是 "
               f"{best.label}（{best.probability:.2f}）。")


def _without_norm(a: Answers) -> str:
    found = indices(a.without_norm)
    raw = predict(a.model, a.transformed_img.unsqueeze(0), k=len(found) or 3)
    if found == indices(predict(a.model, a.input_img, k=len(found) or 3)) \
            and found != indices(raw):
        raise Wrong(say("that is the normalized input's prediction: feed "
                        "`transformed_img.unsqueeze(0)` instead.",
                        "这是归一化输入的预测：请改用 `transformed_img.unsqueeze(0)`。"))
    if len(found) != 3 or found != indices(raw):
        raise Wrong(say("`without_norm` should be `predict(model, transformed_img.unsqueeze(0), "
                        "k=3)`: the top 3 for the crop without normalization.",
                        "`without_norm` 应是 `predict(model, transformed_img.unsqueeze(0), k=3)`："
                        "未归一化裁剪图的前 3 名。"))
    why = choice(a.why_normalize, "b", {
        "a": say("the model does not compute in [0, 1]: it multiplies whatever it gets by the "
                 "weights it learned on normalized inputs.",
                 "模型并不在 [0, 1] 里计算：无论输入什么，它都用在归一化输入上学到的权重去乘。"),
        "b": say("the model learned its weights on normalized inputs; a crop in [0, 1] shifts "
                 "every colour away from what it saw in training.",
                 "模型的权重是在归一化输入上学到的；[0, 1] 里的裁剪图让每种颜色都"
                 "偏离了训练时见过的样子。"),
        "c": say("the size does not change: `transformed_img` is already 224 × 224; only the "
                 "values differ.",
                 "尺寸没变：`transformed_img` 已经是 224 × 224，变的只是数值。")})
    return say(f"the top 3 without normalization are {named(found)}. {why}",
               f"未归一化时的前 3 名是 {named(found)}。{why}")


def _teapot(a: Answers) -> str:
    value = float(a.teapot_probability)
    teapot = categories().index("teapot")
    probabilities = a.output.detach()
    if not torch.allclose(probabilities.sum(dim=1), torch.ones(1), atol=1e-3):
        probabilities = torch.softmax(probabilities, dim=1)  # `output` holding logits
    right = probabilities[0, teapot].item()
    logits = a.model(a.input_img).detach()[0]
    if abs(value - logits[teapot].item()) < 1e-4 * max(1.0, abs(value)) and \
            abs(value - right) > 1e-6:
        raise Wrong(say("that is teapot's logit, the model's raw score: the probability is "
                        "softmax's, in `output`.",
                        "这是 teapot 的 logit，即模型的原始分数：概率是 softmax 之后的，"
                        "在 `output` 里。"))
    if not 0 <= value <= 1:
        raise Wrong(say(f"{value:.3g} is no probability: take it from `output`, which holds "
                        "softmax's probabilities.",
                        f"{value:.3g} 不是概率：请从 `output` 里取，它存的是 softmax 之后的概率。"))
    if abs(value - right) > 1e-6 + 1e-3 * right:
        near = [i for i in (teapot - 1, teapot + 1) if abs(probabilities[0, i].item() - value)
                <= 1e-6 + 1e-3 * value]
        hint = say(" (that is a neighbouring class: `to_target(\"teapot\")` gives the index)",
                   "（这是相邻的类别：`to_target(\"teapot\")` 给出下标）") if near else ""
        raise Wrong(say(f"the model gives teapot {right:.2e} on chelsea.png; you have "
                        f"{value:.2e}{hint}.",
                        f"模型给 chelsea.png 的 teapot 概率是 {right:.2e}；"
                        f"你的是 {value:.2e}{hint}。"))
    return say(f"teapot (class {teapot}) gets {right:.2e}: the model can score every class, "
               "and one it did not pick can still have a probability above zero.",
               f"teapot（第 {teapot} 类）的概率是 {right:.2e}：模型给每个类别都打分，"
               "没选中的类别概率也不为零。")


q1 = Exercise(NOTEBOOK, 1, ("coffee_top5",), _coffee_top5, (
    ("load and prepare the photo as for chelsea.png: `preprocess(load_image(...))` returns the "
     "image for plots and the model's input.",
     "像处理 chelsea.png 一样加载并准备照片：`preprocess(load_image(...))` 返回绘图用的图像和"
     "模型的输入。"),
    ("`coffee_top5 = predict(model, coffee_input, k=5)` with the second item `preprocess` "
     "returned as `coffee_input`.",
     "`coffee_top5 = predict(model, coffee_input, k=5)`，其中 `coffee_input` 是 `preprocess` "
     "返回的第二项。")))
q2 = Exercise(NOTEBOOK, 2, ("without_norm", "why_normalize"), _without_norm, (
    ("`transformed_img` is the crop before `transform_normalize`; the model wants a batch, "
     "hence `.unsqueeze(0)`.",
     "`transformed_img` 是 `transform_normalize` 之前的裁剪图；模型要一个批次，所以要 "
     "`.unsqueeze(0)`。"),
    ("compare the two inputs' value ranges printed above: which did the model see in training?",
     "对比上面打印的两种输入的取值范围：模型训练时见到的是哪一种？")))
q3 = Exercise(NOTEBOOK, 3, ("teapot_probability",), _teapot, (
    ("`to_target(\"teapot\")` gives the class index.", "`to_target(\"teapot\")` 给出类别下标。"),
    ("`output` holds the probabilities for the one photo: `output[0, index].item()`.",
     "`output` 存着这张照片的概率：`output[0, index].item()`。")))
