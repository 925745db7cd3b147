"""The checks of ``09_recap``'s questions: one idea of notebooks 00-08 each, most of them multiple
choice with a reason for every option, four of them a number the check works out itself (the
occlusion windows by captum's formula, ``captum_helpers.speed.occlusion_windows``). The recap
loads no model: these checks need none."""
from __future__ import annotations

import math
import statistics

from ..language import say
from ..speed import occlusion_windows
from . import Answers, Exercise, Wrong, choice

NOTEBOOK = "09_recap"

# The numbers the questions give (the notebook's Markdown quotes them)
IG_STEPS, IG_BATCH = 200, 10  # question 1: notebook 02's call
LOGIT_PHOTO, LOGIT_BASELINE, ATTRIBUTION_SUM = 11.3, 1.8, 9.1  # question 4
OCCLUSION = dict(input_shape=(3, 224, 224), sliding_window_shapes=(3, 15, 15),
                 strides=(3, 8, 8))  # question 6: the walkthrough's Occlusion
IMPROVEMENTS = (0.32, 0.18, -0.03, 0.28, -0.04, 0.17)  # question 12: six photos


def number(value, name: str) -> float:
    """The learner's answer as a float, or Wrong saying a number is wanted."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            return float(value.item())  # a one-element tensor or numpy number
        except (AttributeError, TypeError, ValueError):
            raise Wrong(say(f"`{name}` should be a number, not {value!r}.",
                            f"`{name}` 应该是一个数，而不是 {value!r}。")) from None
    return float(value)


def near(value: float, right: float, tolerance: float) -> bool:
    return abs(value - right) <= tolerance


def _passes(a: Answers) -> str:
    value = number(a.answer_1, "answer_1")
    right = math.ceil(IG_STEPS / IG_BATCH)
    if value == right:
        return say(f"{IG_STEPS} images on the path, {IG_BATCH} per pass: ceil({IG_STEPS} / "
                   f"{IG_BATCH}) = {right} forward and backward passes. A smaller batch means "
                   "more passes of fewer images: less memory, the same attributions.",
                   f"路径上有 {IG_STEPS} 张图像，每次传 {IG_BATCH} 张：ceil({IG_STEPS} / "
                   f"{IG_BATCH}) = {right} 次前向和反向传播。批次越小，传播次数越多、每次的图像"
                   "越少：内存更少，归因不变。")
    if value == IG_STEPS:
        raise Wrong(say(f"{IG_STEPS} is the number of images (`n_steps`); one pass carries "
                        f"`internal_batch_size` = {IG_BATCH} of them.",
                        f"{IG_STEPS} 是图像的张数（`n_steps`）；一次传播带 "
                        f"`internal_batch_size` = {IG_BATCH} 张。"))
    if value in (IG_BATCH, IG_STEPS * IG_BATCH):
        raise Wrong(say(f"divide the images, `n_steps` = {IG_STEPS}, by the images per pass, "
                        f"`internal_batch_size` = {IG_BATCH}, and round up.",
                        f"用图像张数 `n_steps` = {IG_STEPS} 除以每次传播的张数 "
                        f"`internal_batch_size` = {IG_BATCH}，再向上取整。"))
    raise Wrong(say(f"{value:g} passes is not it: how many batches of {IG_BATCH} do "
                    f"{IG_STEPS} images make?",
                    f"不是 {value:g} 次：{IG_STEPS} 张图像能分成多少个 {IG_BATCH} 张的批次？"))


def _target(a: Answers) -> str:
    return choice(a.answer_2, "a", {
        "a": say("captum takes the model's output at index `target`: for the course's models the "
                 "logit, the raw score before softmax. That is why Integrated Gradients' "
                 "attributions add up to a logit difference, which can be far above 1.",
                 "captum 取模型在下标 `target` 处的输出：对课程的模型来说就是 logit，"
                 "softmax 之前的原始分数。所以集成梯度的归因之和是一个 logit 差，可以远大于 1。"),
        "b": say("captum explains the model's output at `target`, and the course's models return "
                 "logits: softmax is not part of them. Explaining the probability (softmax in "
                 "the forward function) mixes every other class into it: it rises when a rival "
                 "class falls.",
                 "captum 解释的是模型在 `target` 处的输出，而课程的模型输出的是 logit："
                 "softmax 不在模型里。解释概率（在前向函数里加 softmax）会把其他所有类别都"
                 "掺进来：对手类别下降时，它就上升。"),
        "c": say("`target` picks one output; the other 999 do not enter the attribution.",
                 "`target` 选出一个输出；其余 999 个不参与归因。")})


def _baseline(a: Answers) -> str:
    return choice(a.answer_3, "c", {
        "a": say("that is a reference map (notebooks 06 and 07): a map that knows nothing of "
                 "the model, which a method's map must beat. A baseline is an input.",
                 "这是参照图（笔记本 06 和 07）：一张对模型一无所知、方法的图必须胜过的图。"
                 "基线是一个输入。"),
        "b": say("nothing divides the map: IG's attributions add up to f(photo) − f(baseline), "
                 "where the baseline is an input the model scores.",
                 "没有什么去除归因图：集成梯度的归因之和是 f(照片) − f(基线)，"
                 "其中基线是模型要打分的一个输入。"),
        "c": say("IG explains f(photo) − f(baseline) along the path between the two, and credits "
                 "each pixel for how it differs from the baseline: a pixel equal to its baseline "
                 "gets nothing, however much the model uses it. So the baseline is part of the "
                 "question, and a map must say which one it used.",
                 "集成梯度沿着两者之间的路径解释 f(照片) − f(基线)，并按每个像素与基线的差别"
                 "给它记功：与基线相同的像素什么也得不到，不管模型多么依赖它。所以基线是问题的"
                 "一部分，归因图必须说明用了哪个基线。"),
        "d": say("zero after normalization is ImageNet's mean colour, a grey-brown, not black; "
                 "black is `transform_normalize(torch.zeros(3, 224, 224))`. And the baseline "
                 "can be any input: black, the mean colour, a blurred photo.",
                 "归一化之后的零是 ImageNet 的平均颜色（灰棕色），不是黑色；黑色是 "
                 "`transform_normalize(torch.zeros(3, 224, 224))`。而且基线可以是任何输入："
                 "黑色、平均颜色、模糊照片。")})


def _completeness(a: Answers) -> str:
    value = number(a.answer_4, "answer_4")
    change = LOGIT_PHOTO - LOGIT_BASELINE
    delta = ATTRIBUTION_SUM - change
    right = abs(delta) / abs(change)
    if near(value, right, 6e-4):
        return say(f"the logit changes by {LOGIT_PHOTO} − {LOGIT_BASELINE} = {change:.1f}; the "
                   f"attributions add up to {ATTRIBUTION_SUM}, so captum's convergence delta is "
                   f"{ATTRIBUTION_SUM} − {change:.1f} = {delta:.1f}, and |{delta:.1f}| / "
                   f"{change:.1f} = {right:.3f}: under notebook 08's 10 %, good enough for a map.",
                   f"logit 变化了 {LOGIT_PHOTO} − {LOGIT_BASELINE} = {change:.1f}；归因之和为 "
                   f"{ATTRIBUTION_SUM}，所以 captum 的收敛误差是 {ATTRIBUTION_SUM} − "
                   f"{change:.1f} = {delta:.1f}，而 |{delta:.1f}| / {change:.1f} = {right:.3f}："
                   "低于笔记本 08 的 10 %，画图足够了。")
    if near(abs(value), abs(delta), 1e-3):
        raise Wrong(say(f"{value:g} is the convergence delta itself, in logit units: divide its "
                        f"size by the logit change, {change:.1f}.",
                        f"{value:g} 是以 logit 为单位的收敛误差本身：请用它的大小除以 logit 变化 "
                        f"{change:.1f}。"))
    if near(value, 100 * right, 0.06):
        raise Wrong(say(f"{value:g} is a percentage: give the fraction ({value:g} % = "
                        f"{value / 100:.3f}).",
                        f"{value:g} 是百分数：请给出比例（{value:g} % = {value / 100:.3f}）。"))
    for wrong, over in ((abs(delta) / LOGIT_PHOTO, say("the logit at the photo", "照片处的 logit")),
                        (abs(delta) / ATTRIBUTION_SUM, say("the attributions' sum", "归因之和"))):
        if near(value, wrong, 6e-4):
            raise Wrong(say(f"that divides by {over}: the share is of the logit change, "
                            f"f(photo) − f(baseline) = {change:.1f}.",
                            f"这是除以了{over}：比例应相对于 logit 变化 "
                            f"f(照片) − f(基线) = {change:.1f}。"))
    raise Wrong(say("completeness: the attributions should add up to f(photo) − f(baseline). "
                    "Work out that change, how far the sum misses it, and that miss as a "
                    "fraction of the change.",
                    "完备性：归因之和应等于 f(照片) − f(基线)。先算出这个变化，再算归因之和与它"
                    "差了多少，最后把这个差写成变化的比例。"))


def _heat_maps(a: Answers) -> str:
    return choice(a.answer_5, "b", {
        "a": say("captum scales each figure on its own: 1 on one colorbar is that figure's "
                 "threshold, and the other figure's 1 can stand for a very different value.",
                 "captum 对每张图单独缩放：一张图颜色条上的 1 是这张图自己的阈值，另一张图的 1 "
                 "可能代表完全不同的数值。"),
        "b": say("each figure divides by its own threshold (the value above which the strongest "
                 "pixels hold `outlier_perc` percent of the total) and clips at 1, so full colour "
                 "only says \"at or above this figure's threshold\". Compare the numbers behind "
                 "the colours.",
                 "每张图都除以自己的阈值（最强的像素合计占总量 `outlier_perc` 百分比时的那个值），"
                 "并截断到 1，所以满色只表示“不低于这张图的阈值”。请比较颜色背后的数值。"),
        "c": say("the colorbar's 0 to 1 is a fraction of the figure's threshold, not a logit; "
                 "attributions are in logit units only before that scaling.",
                 "颜色条的 0 到 1 是这张图阈值的比例，不是 logit；只有缩放之前，归因才以 logit "
                 "为单位。")})


def _windows(a: Answers) -> str:
    value = number(a.answer_6, "answer_6")
    right = occlusion_windows(**OCCLUSION)
    size, window, stride = (OCCLUSION[k][1] for k in ("input_shape", "sliding_window_shapes",
                                                       "strides"))
    side = math.ceil((size - window) / stride) + 1
    if value == right:
        return say(f"ceil(({size} − {window}) / {stride}) + 1 = {side} starts per side, "
                   f"{side} × {side} = {right} occluded copies; with the unoccluded photo "
                   f"{right + 1} forward passes. The last window starts at {(side - 1) * stride} "
                   "and is cut by the border.",
                   f"每边 ceil(({size} − {window}) / {stride}) + 1 = {side} 个起点，"
                   f"{side} × {side} = {right} 个遮挡副本；加上未遮挡的照片，共 {right + 1} "
                   f"次前向传播。最后一个窗口从 {(side - 1) * stride} 开始，被边界截断。")
    if value == right + 1:
        raise Wrong(say(f"{right + 1} counts the unoccluded photo's pass too: the question asks "
                        "for the occluded copies.",
                        f"{right + 1} 把未遮挡照片的那次传播也算进去了：题目问的是遮挡副本。"))
    if value == side:
        raise Wrong(say(f"{side} starts is one side: the window moves along both sides.",
                        f"{side} 个起点只是一条边：窗口沿两条边移动。"))
    floor = ((size - window) // stride + 1) ** 2
    if value in (floor, ((size - window) // stride) ** 2):
        raise Wrong(say(f"({size} − {window}) / {stride} = {(size - window) / stride:.2f}: captum "
                        "rounds up, then adds 1, so a last window, cut by the border, reaches "
                        "the last pixels.",
                        f"({size} − {window}) / {stride} = {(size - window) / stride:.2f}："
                        "captum 向上取整再加 1，这样最后一个被边界截断的窗口也能覆盖"
                        "最后几个像素。"))
    raise Wrong(say(f"count the window's starts along one side, ceil((size − window) / stride) "
                    f"+ 1, then combine the two sides; {value:g} is not it.",
                    f"先数一条边上窗口的起点，ceil((尺寸 − 窗口) / 步长) + 1，再把两条边组合起来；"
                    f"{value:g} 不对。"))


def _negative(a: Answers) -> str:
    return choice(a.answer_7, "d", {
        "a": say("a drop when covered is a positive attribution: Occlusion gives each pixel the "
                 "average drop of the class score over the windows that covered it.",
                 "遮住后分数下降对应正归因：遮挡给每个像素的是覆盖它的那些窗口上类别分数的"
                 "平均下降量。"),
        "b": say("Occlusion follows the target's score, whatever the top class becomes; the "
                 "sign says which way that score moved.",
                 "遮挡跟踪的是目标类别的分数，不管排第一的类别变成什么；符号说明这个分数往哪边变。"),
        "c": say("every pixel is covered by at least one window (the last one, cut by the "
                 "border, reaches the edge); a pixel no window covered would get 0, not a "
                 "negative value.",
                 "每个像素都至少被一个窗口覆盖（最后一个被边界截断的窗口到达边缘）；"
                 "没被任何窗口覆盖的像素得到的是 0，而不是负值。"),
        "d": say("Occlusion's value is the score's drop when the region is covered; a negative "
                 "drop is a rise: without the region the model was more sure of the class, so "
                 "the region is evidence against it.",
                 "遮挡的值是区域被遮住时分数的下降量；负的下降就是上升：没有这个区域，模型对"
                 "这个类别更有把握，所以这个区域是反对它的证据。")})


def _grid(a: Answers) -> str:
    return choice(a.answer_8, "c", {
        "a": say("224 × 224 comes only after `LayerAttribution.interpolate`, which upsamples the "
                 "layer's map to the input's size.",
                 "224 × 224 要等 `LayerAttribution.interpolate` 把层的图上采样到输入尺寸之后"
                 "才有。"),
        "b": say("GradCAM weights each channel by its average gradient and sums the channels: "
                 "one map, not one per channel.",
                 "GradCAM 用每个通道的平均梯度给通道加权，再把通道加起来：得到一张图，"
                 "而不是每个通道一张。"),
        "c": say("Layer GradCAM gives one value per cell of the layer's output grid, 14 × 14 "
                 "here (shape (1, 1, 14, 14)); the cells sit 224 / 14 = 16 pixels apart on the "
                 "photo, which is why the map is blocky until `interpolate` upsamples it.",
                 "Layer GradCAM 给层输出网格的每个格子一个值，这里是 14 × 14（形状 "
                 "(1, 1, 14, 14)）；格子在照片上相距 224 / 14 = 16 个像素，所以在 `interpolate` "
                 "上采样之前，图是一块一块的。"),
        "d": say("7 × 7 is the grid of the last stage (ResNet18's `layer4`); the layer asked "
                 "for is in the third stage, on a 14 × 14 grid.",
                 "7 × 7 是最后一个阶段（ResNet18 的 `layer4`）的网格；题目里的层在第三个阶段，"
                 "网格是 14 × 14。")})


def _field(a: Answers) -> str:
    return choice(a.answer_9, "a", {
        "a": say("the receptive field, which `receptive_field(model, layer)` measures, is far "
                 "larger than 16 × 16, so neighbouring cells see almost the same pixels; the "
                 "stride only sets how finely the map can place evidence. A cell depends most "
                 "on the pixels near its field's middle.",
                 "感受野（`receptive_field(model, layer)` 测量它）远大于 16 × 16，所以相邻的"
                 "格子看到的几乎是同一批像素；步长只决定归因图能把证据定位得多细。一个格子最"
                 "依赖感受野中间附近的像素。"),
        "b": say("16 pixels is the stride, how far apart neighbouring cells sit. Each "
                 "convolution before the layer widens what a cell sees, so its field is far "
                 "larger than that square.",
                 "16 个像素是步长，即相邻格子之间的距离。层之前的每个卷积都会扩大一个格子看到的"
                 "范围，所以它的感受野远大于那个方块。"),
        "c": say("a cell's field is large but not the whole photo in equal measure: the gradient "
                 "fades towards its edges, which is why a 14 × 14 map can still locate ears and "
                 "eyes.",
                 "格子的感受野很大，但并不是同等地覆盖整张照片：梯度向感受野边缘逐渐减弱，"
                 "所以 14 × 14 的图仍然能定位耳朵和眼睛。")})


def _fetch(a: Answers) -> str:
    return choice(a.answer_10, "c", {
        "a": say("building the `AttributionVisualizer` computes nothing: it only stores the "
                 "models, the score function, the classes, the features and the dataset.",
                 "构建 `AttributionVisualizer` 时什么也不计算：它只保存模型、评分函数、类别、"
                 "特征和数据集。"),
        "b": say("opening the explorer shows the page; the attributions come later.",
                 "打开探索器只是显示页面；归因要等到之后才计算。"),
        "c": say("Insights computes the attributions only when you press Fetch, with the method "
                 "and arguments set in the page; how long that takes follows from them (a "
                 "backward pass counts as two forward passes).",
                 "只有按下 Fetch 时，Insights 才用页面上设定的方法和参数计算归因；"
                 "耗时由它们决定（一次反向传播按两次前向传播计）。")})


def _paired(a: Answers) -> str:
    return choice(a.answer_11, "d", {
        "a": say("pairing does not add numbers: six photos give six improvements, as six scores "
                 "did. What it removes is the photos' own difficulty.",
                 "配对并不增加数量：六张照片给出六个改进量，就像六个分数一样。"
                 "它去掉的是照片本身的难易。"),
        "b": say("reference maps are drawn for whole batches of photos at once; the pairing is "
                 "about the comparison, not the computation.",
                 "参照图可以一次为一批照片生成；配对关乎比较，而不是计算。"),
        "c": say("the averages differ (that is what a verdict is about); the question is whether "
                 "their difference is beyond the photos' spread.",
                 "平均值是不同的（结论正是关于这一点的）；问题在于它们的差是否超出了照片之间的"
                 "离散度。"),
        "d": say("on an easy photo every map scores well, on a hard one every map scores badly; "
                 "the difference on the same photo cancels that, so what is left to vary is the "
                 "method's own advantage. Two averages would drown it in the photos' spread.",
                 "在容易的照片上每张图都得分高，在难的照片上每张图都得分低；同一张照片上的差值"
                 "抵消了这一点，剩下的变化才是方法自己的优势。比较两个平均值，会让它淹没在照片"
                 "之间的离散度里。")})


def _rule(a: Answers) -> str:
    value = number(a.answer_12, "answer_12")
    mean, sd = statistics.mean(IMPROVEMENTS), statistics.stdev(IMPROVEMENTS)
    right = mean - sd
    above = right > 0
    verdict = say("beats" if above else "does not beat", "胜过" if above else "没有胜过")
    side = say("above" if above else "below", "高于" if above else "低于")
    if near(value, right, 1e-3):
        return say(f"mean {mean:.4f} − sample sd {sd:.4f} = {right:.4f}, {side} 0 by a hair: the "
                   f"method {verdict} the reference. The population sd (dividing by n, not "
                   f"n − 1) is smaller, {statistics.pstdev(IMPROVEMENTS):.4f}, and would flip the "
                   "verdict: the rule's strictness at six photos is part of its low false-alarm "
                   "rate.",
                   f"均值 {mean:.4f} − 样本标准差 {sd:.4f} = {right:.4f}，以毫厘之差{side} 0："
                   f"方法{verdict}参照图。总体标准差（除以 n 而不是 n − 1）更小，为 "
                   f"{statistics.pstdev(IMPROVEMENTS):.4f}，会让结论反过来：规则在六张照片上的"
                   "严格，正是它误报率低的一部分原因。")
    population = mean - statistics.pstdev(IMPROVEMENTS)
    if near(value, population, 1e-3):
        raise Wrong(say("that uses the population standard deviation (dividing by n): the rule "
                        "uses the sample one, dividing by n − 1 (`statistics.stdev`, "
                        "`np.std(..., ddof=1)`).",
                        "这里用的是总体标准差（除以 n）：规则用的是样本标准差，除以 n − 1"
                        "（`statistics.stdev`、`np.std(..., ddof=1)`）。"))
    if near(value, mean, 1e-3):
        raise Wrong(say(f"{value:g} is the mean alone: the rule subtracts the improvements' "
                        "standard deviation.",
                        f"{value:g} 只是均值：规则还要减去改进量的标准差。"))
    if near(value, mean + sd, 1e-3):
        raise Wrong(say("mean plus sd: the rule subtracts the standard deviation.",
                        "这是均值加标准差：规则是减去标准差。"))
    raise Wrong(say(f"the improvements' mean minus their sample standard deviation is not "
                    f"{value:g}: `statistics.mean(v) - statistics.stdev(v)`.",
                    f"改进量的均值减去样本标准差不是 {value:g}："
                    "`statistics.mean(v) - statistics.stdev(v)`。"))


def _false_alarms(a: Answers) -> str:
    return choice(a.answer_13, "a", {
        "a": say("the random draws are scored like the methods, and every ordered pair of draws "
                 "is put to the rule: the share of pairs where one draw \"beats\" another is how "
                 "often the rule says yes by luck (10 draws: 90 pairs). A verdict means as much as "
                 "that rate allows.",
                 "随机图像方法一样打分，每一对有序的随机图都交给规则判断：一张随机图“胜过”另一张"
                 "的比例，就是规则凭运气说“是”的频率（10 张随机图：90 对）。结论的分量以这个"
                 "比率为限。"),
        "b": say("the model's mistakes are another matter; the rate is about the rule, measured "
                 "where nothing but chance differs.",
                 "模型的错误是另一回事；误报率关乎规则本身，是在只有随机性不同的地方测得的。"),
        "c": say("negative cells are evidence against the class; they have nothing to do with "
                 "how often the rule errs.",
                 "负值格子是反对该类别的证据；与规则多常出错无关。"),
        "d": say("no number says a single map is right or wrong; the rate measures the rule on "
                 "maps that cannot differ.",
                 "没有哪个数能说一张图是对还是错；误报率衡量的是规则在不可能有差别的图上的表现。")})


def _sanity(a: Answers) -> str:
    return choice(a.answer_14, "c", {
        "a": say("passing says the map depends on the weights; Random and Constant pass too, and "
                 "they show no reasons at all. Whether a map is faithful is deletion's and "
                 "insertion's question.",
                 "通过只说明图依赖于权重；Random 和 Constant 也能通过，而它们根本不反映任何理由。"
                 "图是否忠实，是删除和插入要回答的问题。"),
        "b": say("the check ranks nothing: it is passed or failed, and says nothing of "
                 "faithfulness.",
                 "这项检验不排名：只有通过或不通过，也不涉及忠实度。"),
        "c": say("the check asks whether the map changes when the weights are randomized and "
                 "whether what is left is the photo's edges. Maps that know nothing pass too, so "
                 "passing is necessary, not sufficient, and not a ranking.",
                 "这项检验问的是权重随机化后图是否改变，以及剩下的是不是照片的边缘。一无所知的图"
                 "也能通过，所以通过是必要的，但不充分，也不是排名。"),
        "d": say("it compares the trained model's map with the randomized model's: a method "
                 "that ignores the weights, the Edge detector, fails it.",
                 "它比较的是训练后模型的图和随机化模型的图：忽略权重的方法（Edge detector）"
                 "通不过。")})


def _fill(a: Answers) -> str:
    return choice(a.answer_15, "b", {
        "a": say("every method's cells are replaced by the same fill; what matters is whether "
                 "the fill favours some methods, not how fast the curves fall.",
                 "每种方法的格子都用同样的填充替换；要紧的是填充是否偏袒某些方法，"
                 "而不是曲线下降得多快。"),
        "b": say("Integrated Gradients explains against the zero baseline and Occlusion pastes "
                 "zeros, so deleting with zeros asks exactly their question and could favour "
                 "them; a blurred photo is neither method's reference. ROAD goes further and "
                 "fills from the neighbours with a little noise.",
                 "集成梯度以零基线为参照，遮挡粘贴的是零，所以用零来删除正好是在问它们的问题，"
                 "可能偏袒它们；模糊照片不是任何一种方法的参照。ROAD 更进一步，用邻域像素加一点"
                 "噪声来填充。"),
        "c": say("zeros cost nothing; the blur is chosen for fairness, not speed.",
                 "零不需要计算；选模糊是为了公平，不是为了速度。"),
        "d": say("zeros are a valid input (ImageNet's mean colour after normalization); "
                 "Occlusion feeds the model exactly that.",
                 "零是合法的输入（归一化后就是 ImageNet 的平均颜色）；遮挡喂给模型的正是它。")})


def _sensitivity(a: Answers) -> str:
    return choice(a.answer_16, "b", {
        "a": say("a map that ignores the photo never moves, so it is as steady as can be and "
                 "explains nothing: steadiness is not faithfulness.",
                 "一张忽略照片的图永远不动，所以它稳定到极点，却什么也解释不了：稳定不等于忠实。"),
        "b": say("`sensitivity_max` measures how far a map moves when the photo barely does. "
                 "Constant and Random (each photo keeping its draw) never move and score 0, so "
                 "no method can beat them by the rule: sensitivity gets no verdict and is read "
                 "beside a faithfulness check.",
                 "`sensitivity_max` 衡量照片稍有变化时图变化了多少。Constant 和 Random"
                 "（每张照片保留自己的随机图）从不变化，得 0 分，所以任何方法都无法按规则胜过"
                 "它们：敏感度没有结论，要和忠实度检验放在一起看。"),
        "c": say("the Constant map looks at no model, so its score says nothing about the "
                 "model.",
                 "Constant 图不看任何模型，所以它的分数说明不了模型的任何事。")})


def _own_model(a: Answers) -> str:
    return choice(a.answer_17, "d", {
        "a": say("each model wants its own preparation: torchvision's ResNet18 weights were "
                 "evaluated with the shorter side at 256 before the 224 crop, and many "
                 "TensorFlow-trained models expect pixels in [−1, 1].",
                 "每个模型都要自己的预处理：torchvision 的 ResNet18 权重是先把短边缩放到 256 "
                 "再裁出 224 来评估的，许多在 TensorFlow 中训练的模型要求像素在 [−1, 1] 之间。"),
        "b": say("a higher probability on a few photos is no proof of the right preparation "
                 "(notebook 08, section 2): only the model's documentation can tell.",
                 "在几张照片上概率更高，并不能证明预处理是对的（笔记本 08 第 2 节）："
                 "只有模型的文档能说明。"),
        "c": say("the first layer's weights were learned for one input range; it does not adapt "
                 "to another.",
                 "第一层的权重是针对某一个输入范围学到的；它不会适应另一个范围。"),
        "d": say("a model computes on what it saw in training: its weights' recipe or its model "
                 "card says how (resize, crop, mean and standard deviation or [−1, 1]), and "
                 "`model.eval()` keeps dropout and batch norm from changing the score on every "
                 "call.",
                 "模型在它训练时见过的输入上计算：它的权重配方或模型卡说明了怎么做（缩放、裁剪、"
                 "均值和标准差或 [−1, 1]），而 `model.eval()` 让 dropout 和批归一化不再在每次"
                 "调用时改变分数。")})


q1 = Exercise(NOTEBOOK, 1, ("answer_1",), _passes, (
    ("notebook 00: captum sends the `n_steps` images `internal_batch_size` at a time.",
     "笔记本 00：captum 每次送 `internal_batch_size` 张，共 `n_steps` 张图像。"),
    ("`math.ceil(n_steps / internal_batch_size)`.",
     "`math.ceil(n_steps / internal_batch_size)`。")))
q2 = Exercise(NOTEBOOK, 2, ("answer_2",), _target, (
    ("notebook 02, \"Is the approximation good enough?\": which score do the attributions add up "
     "to?", "笔记本 02“近似够好吗？”：归因加起来等于哪个分数？"),
    ("the attributions can add up to much more than 1.", "归因之和可以远大于 1。")))
q3 = Exercise(NOTEBOOK, 3, ("answer_3",), _baseline, (
    ("notebook 02, \"How Integrated Gradients works\": where does the path start?",
     "笔记本 02“集成梯度如何工作”：路径从哪里开始？"),
    ("a baseline is an input; what does IG explain the difference between?",
     "基线是一个输入；集成梯度解释的是哪两者之间的差？")))
q4 = Exercise(NOTEBOOK, 4, ("answer_4",), _completeness, (
    ("completeness: the attributions should add up to f(photo) − f(baseline).",
     "完备性：归因之和应等于 f(照片) − f(基线)。"),
    ("|sum − (11.3 − 1.8)| / (11.3 − 1.8).", "|归因之和 − (11.3 − 1.8)| / (11.3 − 1.8)。")))
q5 = Exercise(NOTEBOOK, 5, ("answer_5",), _heat_maps, (
    ("notebook 02, \"How to read the colours\".", "笔记本 02“如何读颜色”。"),
    ("what does 1 on a colorbar stand for?", "颜色条上的 1 代表什么？")))
q6 = Exercise(NOTEBOOK, 6, ("answer_6",), _windows, (
    ("notebook 03: ceil((size − window) / stride) + 1 starts per side.",
     "笔记本 03：每边 ceil((尺寸 − 窗口) / 步长) + 1 个起点。"),
    ("`occlusion_windows((3, 224, 224), (3, 15, 15), (3, 8, 8))` counts them for you.",
     "`occlusion_windows((3, 224, 224), (3, 15, 15), (3, 8, 8))` 会帮你数。")))
q7 = Exercise(NOTEBOOK, 7, ("answer_7",), _negative, (
    ("Occlusion's value is the score's drop when the window covers the region.",
     "遮挡的值是窗口遮住该区域时分数的下降量。"),
    ("a negative drop is a rise.", "负的下降就是上升。")))
q8 = Exercise(NOTEBOOK, 8, ("answer_8",), _grid, (
    ("notebook 04, \"Back to the size of the photo\": compare the three shapes.",
     "笔记本 04“回到照片的尺寸”：比较那三个形状。"),
    ("GradCAM sums the weighted channels of the layer's output.",
     "GradCAM 把层输出的加权通道加起来。")))
q9 = Exercise(NOTEBOOK, 9, ("answer_9",), _field, (
    ("notebook 04, \"Choosing a layer\": the stride and the receptive field.",
     "笔记本 04“选择一个层”：步长和感受野。"),
    ("each convolution widens what a cell sees.", "每个卷积都会扩大一个格子看到的范围。")))
q10 = Exercise(NOTEBOOK, 10, ("answer_10",), _fetch, (
    ("notebook 05: \"That was quick: nothing has been computed yet.\"",
     "笔记本 05：“这很快：还什么都没有计算。”"),
    ("which button starts the attributions?", "哪个按钮开始计算归因？")))
q11 = Exercise(NOTEBOOK, 11, ("answer_11",), _paired, (
    ("notebook 06, \"The rule: photo by photo, beyond the noise\".",
     "笔记本 06“规则：逐张照片，超出噪声”。"),
    ("some photos are easy for every map, some hard.", "有些照片对每张图都容易，有些都难。")))
q12 = Exercise(NOTEBOOK, 12, ("answer_12",), _rule, (
    ("`statistics.mean` and `statistics.stdev` (the sample standard deviation).",
     "`statistics.mean` 和 `statistics.stdev`（样本标准差）。"),
    ("mean − sd, with sd dividing by n − 1.", "均值 − 标准差，标准差除以 n − 1。")))
q13 = Exercise(NOTEBOOK, 13, ("answer_13",), _false_alarms, (
    ("notebook 06: several random maps are scored the same way.",
     "笔记本 06：几张随机图用同样的方式打分。"),
    ("where nothing but chance differs, how often does the rule say \"beats\"?",
     "在只有随机性不同的地方，规则多常说“胜过”？")))
q14 = Exercise(NOTEBOOK, 14, ("answer_14",), _sanity, (
    ("notebook 06: Random and Constant pass too.", "笔记本 06：Random 和 Constant 也能通过。"),
    ("necessary or sufficient?", "必要还是充分？")))
q15 = Exercise(NOTEBOOK, 15, ("answer_15",), _fill, (
    ("notebook 06, \"Faithfulness: deletion and insertion\": the fill matters.",
     "笔记本 06“忠实度：删除和插入”：填充很重要。"),
    ("which two methods use zeros themselves?", "哪两种方法自己就用零？")))
q16 = Exercise(NOTEBOOK, 16, ("answer_16",), _sensitivity, (
    ("notebook 07, section 2: what does sensitivity measure?",
     "笔记本 07 第 2 节：敏感度衡量什么？"),
    ("what does a map that ignores the photo score?", "忽略照片的图得多少分？")))
q17 = Exercise(NOTEBOOK, 17, ("answer_17",), _own_model, (
    ("notebook 08, section 2: the model, its preprocessing, and `eval()`.",
     "笔记本 08 第 2 节：模型、它的预处理和 `eval()`。"),
    ("who knows how the model was trained?", "谁知道模型是怎么训练的？")))
