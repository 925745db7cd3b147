"""What learners should see on each model: a few key lines that each notebook prints, read from
the executed runs the website keeps (``build/runs/``, ``captum_course/site.py``), grouped by the
model each run printed (``Model: ...``), and written into the marked section of the instructor's
guides: ``docs/instructor.md`` from the English runs, ``docs/instructor.zh-CN.md`` from the
Chinese edition's.

    python -m captum_course expected           # rewrite both guides' sections
    python -m captum_course expected --check   # exit 1 if a guide differs from the runs
    python -m captum_course expected --latest  # no current run: a notebook's newest

Only runs of the notebooks as they are now count (a kept run's key is its notebook's code, the
model and the helper package: ``site.run_key``); ``python -m captum_course site --run-only en
zh-CN`` makes the missing ones. ``--latest`` takes, where a notebook has none, its newest kept run
and says so: the lines read here come before the exercises, the part that changes most often. A
model whose runs are all there gets its block (re)written; a block already in a guide for a model
that has no runs on this machine is kept, so a block written where ResNet18's weights are cached
survives a run of this command on a machine without them. Lines are compared with the runs up to
rounding (``same``): another CPU, or another number of threads, adds the same sums in another order.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

import nbformat

from .handouts import model_in_use
from .site import DOCS, EDITIONS, MODELS, RUNS, all_notebooks, run_key

GUIDES = {"en": DOCS / "instructor.md", "zh-CN": DOCS / "instructor.zh-CN.md"}
BEGIN, END = "<!-- expected outputs: begin -->", "<!-- expected outputs: end -->"
MODEL_MARK = "<!-- model: {} -->"


class Pick(NamedTuple):
    """Lines to show: a regular expression for a line the English edition prints, one for the
    Chinese edition's, and whether the rest of that output comes with it (a table)."""
    en: str
    zh: str
    block: bool = False


PREDICTED = Pick(r"^Predicted: ", r"^预测：")
BOX_SHARE = Pick(r"^positive attribution: \d+% inside the box", r"^正归因：框内")
# The lines of each notebook worth comparing with the room's, in the order they print. The
# exercises' outputs are left out: they are the learners' own.
PICKS: dict[str, list[Pick]] = {
    "01_prediction": [
        PREDICTED,
        Pick(r"^\d+ cat classes? in the top 5", r"^前 5 名中有"),
        Pick(r"^\S+\.(png|jpg)\s+-> ", r"^\S+\.(png|jpg)\s+-> "),
    ],
    "02_integrated_gradients": [
        PREDICTED,
        Pick(r"^f\(photo\) - f\(baseline\) = ", r"^f\(照片\) - f\(基线\) = "),
        Pick(r"^convergence delta ", r"^收敛误差"),
        BOX_SHARE,
    ],
    "03_occlusion": [
        PREDICTED,
        Pick(r"^\d+ × \d+ = \d+ occluded copies", r"^\d+ × \d+ = \d+ 个遮挡副本"),
        Pick(r"^largest drop when covered", r"^遮住后的最大下降"),
        Pick(r"^\d+% of pixels have positive attribution", r"^\d+% 的像素归因为正"),
        BOX_SHARE,
    ],
    "04_layer_gradcam": [
        PREDICTED,
        Pick(r": GradCAM inspects ", r"：GradCAM 考察 "),
        Pick(r"^receptive field of the centre cell", r"^中心格子的感受野"),
        Pick(r"^values from .* cells negative", r"^取值从 .*为负"),
        BOX_SHARE,
    ],
    "05_captum_insights": [
        PREDICTED,
        Pick(r"^Right: ", r"^对的："),
        Pick(r"^Wrong: ", r"^错的："),
        Pick(r" passes per photo, ", r"：每张照片 \d+ 次"),
    ],
    "06_can_you_trust_it": [
        Pick(r"^\d+ of \d+ pairs of random maps agree beyond chance", r"对随机图中有 \d+ 对"),
        Pick(r"^\d+ photos; yes: beats the references by the rule",
             r"^\d+ 张照片；是：按规则胜过参照图", block=True),
    ],
    "07_more_trust_checks": [
        Pick(r"items, false-alarm rate", r"项，误报率"),
        Pick(r"^method\s+infidelity: ", r"^方法\s+不忠实度：", block=True),
    ],
    "08_your_own_model": [
        Pick(r": weights not cached", r"：权重未缓存"),
        Pick(r"^\w+: target .*, \d+ steps, off by", r"^\w+：目标 .*步，偏差"),
        Pick(r"^\w+: baseline ", r"^\w+：基线为"),
        Pick(r"^model\s+map\s+like the trained map", r"^模型\s+图\s+像训练后的图", block=True),
        Pick(r"^\w+: false-alarm rate", r"^\w+：误报率"),
        Pick(r"^\w+: activation modules", r"^\w+：激活模块"),
    ],
}
EXERCISES = re.compile(r"^#+\s*(Exercises|练习)\s*$", re.MULTILINE)
WORDS = {
    "en": {
        "head": "<!-- Written by `python -m captum_course expected` from the kept runs "
                "(build/runs/): edit the tool, not this text. -->",
        "model": "### {name} (`{model}`)",
        "notebook": "`{stem}`:",
        "none": "No runs of {names} were kept on the machine that wrote this section: add its "
                "block on a machine that has its weights (see above).",
    },
    "zh-CN": {
        "head": "<!-- 由 `python -m captum_course expected` 根据保存的运行（build/runs/）写出："
                "要改请改工具，不要改这段文字。 -->",
        "model": "### {name}（`{model}`）",
        "notebook": "`{stem}`：",
        "none": "写出本节的机器上没有 {names} 的保存运行：请在有其权重的机器上加上它的部分"
                "（见上文）。",
    },
}


def printed(nb: nbformat.NotebookNode) -> list[str]:
    """The texts an executed notebook printed or displayed as plain text, one per output, up to
    its exercises: standard output, and the text of results and displays that are not pictures
    or widgets."""
    texts = []
    for cell in nb.cells:
        if cell.cell_type == "markdown" and EXERCISES.search(cell.source):
            break
        tags = cell.get("metadata", {}).get("tags", [])
        if cell.cell_type != "code" or {"exercise", "solution"} & set(tags):
            continue
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                if output.get("name") == "stdout":
                    texts.append(output.get("text", ""))
                continue
            data = output.get("data", {})
            if "text/plain" in data and not {"image/png", "application/vnd.jupyter.widget-view+json"
                                             } & set(data):
                texts.append(data["text/plain"])
    return texts


def key_lines(nb: nbformat.NotebookNode, stem: str, edition: str) -> list[str]:
    """The lines of ``PICKS[stem]`` the run ``nb`` printed, in the order it printed them."""
    patterns = [(re.compile(p.en if edition == "en" else p.zh), p.block) for p in PICKS[stem]]
    found = []
    for text in printed(nb):
        lines = text.splitlines()
        for i, line in enumerate(lines):
            block = next((b for pattern, b in patterns if pattern.search(line)), None)
            if block is None:
                continue
            found += [line.rstrip() for line in (lines[i:] if block else [line])]
            if block:
                break
    return found


def current_runs(edition: str, runs: Path = RUNS, latest: bool = False
                 ) -> dict[str, dict[str, nbformat.NotebookNode]]:
    """{model: {notebook stem: run}} for the kept runs of ``edition``'s notebooks as they are now,
    for the notebooks ``PICKS`` reads; with ``latest``, a notebook that has none on a model gets
    its newest kept run on that model, of an earlier version of its code (``stale`` names them)."""
    found: dict[str, dict[str, nbformat.NotebookNode]] = {}
    for path in all_notebooks([edition]):
        if path.stem not in PICKS:
            continue
        for model in MODELS:
            kept = Path(runs) / f"{run_key(path, model)}.ipynb"
            earlier = sorted(Path(runs).glob(f"{edition}-{path.stem}-*.ipynb"),
                             key=lambda p: p.stat().st_mtime, reverse=True) if latest else []
            for candidate in [kept] * kept.exists() + earlier:
                nb = nbformat.read(candidate, as_version=4)
                if model_in_use(nb) == model:
                    nb.metadata["captum_course_expected"] = {"current": candidate == kept}
                    found.setdefault(model, {})[path.stem] = nb
                    break
    return found


def stale(edition: str, runs: Path = RUNS) -> dict[str, list[str]]:
    """{model: the notebooks whose newest kept run on it is of an earlier version of their code}."""
    return {model: [stem for stem, nb in got.items()
                    if not nb.metadata["captum_course_expected"]["current"]]
            for model, got in current_runs(edition, runs, latest=True).items()}


def missing(edition: str, runs: Path = RUNS, latest: bool = False) -> dict[str, list[str]]:
    """{model: the notebooks of ``PICKS`` it has no run of}, for the models that have some."""
    wanted = [p.stem for p in all_notebooks([edition]) if p.stem in PICKS]
    return {model: [s for s in wanted if s not in got]
            for model, got in current_runs(edition, runs, latest).items()
            if set(wanted) - set(got)}


def block(edition: str, model: str, notebooks: dict[str, nbformat.NotebookNode]) -> str:
    """One model's part of the section: each notebook's key lines in a code block."""
    words = WORDS[edition]
    parts = [MODEL_MARK.format(model), words["model"].format(name=MODELS[model], model=model)]
    for stem in PICKS:
        if stem in notebooks:
            lines = "\n".join(key_lines(notebooks[stem], stem, edition))
            parts.append(f"{words['notebook'].format(stem=stem)}\n\n```text\n{lines}\n```")
    return "\n\n".join(parts) + "\n"


def computed_blocks(edition: str, runs: Path = RUNS, latest: bool = False) -> dict[str, str]:
    """{model: block} for every model whose current runs (with ``latest``, its newest runs) cover
    every notebook ``PICKS`` reads."""
    incomplete = missing(edition, runs, latest)
    return {model: block(edition, model, nbs)
            for model, nbs in current_runs(edition, runs, latest).items()
            if model not in incomplete}


def written_blocks(text: str) -> dict[str, str]:
    """{model: block} of the marked section of a guide's ``text``."""
    section = text.split(BEGIN, 1)[1].split(END, 1)[0]
    return {m.group(1): MODEL_MARK.format(m.group(1)) + m.group(2).rstrip("\n") + "\n"
            for m in re.finditer(r"<!-- model: (\w+) -->(.*?)(?=\n<!-- |\Z)", section,
                                 re.DOTALL)}


def section(edition: str, blocks: dict[str, str]) -> str:
    """The marked section, blocks in the order of ``MODELS``, and which models have none."""
    words = WORDS[edition]
    parts = [words["head"]] + [blocks[m].rstrip("\n") for m in MODELS if m in blocks]
    absent = [MODELS[m] for m in MODELS if m not in blocks]
    if absent:
        parts.append("<!-- no runs -->\n" + words["none"].format(names=", ".join(absent)))
    return BEGIN + "\n" + "\n\n".join(parts) + "\n" + END


def rewrite(text: str, edition: str, blocks: dict[str, str]) -> str:
    """``text`` (a guide) with its marked section made of ``blocks`` and the blocks it has for
    models ``blocks`` lacks."""
    if BEGIN not in text or END not in text:
        raise ValueError(f"the guide has no section marked {BEGIN} ... {END}")
    merged = {**written_blocks(text), **blocks}
    head, rest = text.split(BEGIN, 1)
    return head + section(edition, merged) + rest.split(END, 1)[1]


NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def _unit(number: str) -> float:
    """One unit of the last digit ``number`` prints: 0.001 for 0.393, 1e-07 for 6.26e-05."""
    mantissa, _, exponent = number.lower().partition("e")
    places = len(mantissa.split(".")[1]) if "." in mantissa else 0
    return 10.0 ** (int(exponent or 0) - places)


RELATIVE = 0.02  # the convergence delta, a small difference of large sums, moves this much


def same(written: str, computed: str) -> bool:
    """Whether two texts say the same, spaces (a table's padding) ignored and each number allowed
    to differ by one unit of its last digit or 2 % of its size, whichever is more: the sums behind
    them add up in another order on another CPU or with another number of threads (IG's
    convergence delta on the offline model: 0.1209 with one thread per kernel, 0.1220 with two)."""
    a, b = (re.sub(r"\s+", " ", t.strip()) for t in (written, computed))
    if NUMBER.sub("#", a) != NUMBER.sub("#", b):
        return False
    return all(abs(float(x) - float(y))
               <= max(1.01 * max(_unit(x), _unit(y)), RELATIVE * max(abs(float(x)), abs(float(y))))
               for x, y in zip(NUMBER.findall(a), NUMBER.findall(b)))


def run(runs: Path = RUNS, check: bool = False, latest: bool = False) -> int:
    """Rewrite (or with ``check``, compare) both guides' sections from the runs in ``runs``; with
    ``latest``, from each notebook's newest run where none is of its current code."""
    status = 0
    for edition, guide in GUIDES.items():
        if edition not in EDITIONS:
            continue
        for model, stems in missing(edition, runs, latest).items():
            print(f"{guide.name}: {MODELS[model]} has no current run of {', '.join(stems)} "
                  f"in {runs}: `python -m captum_course site --run-only {edition}` makes them")
            status = 1
        if latest:
            for model, stems in stale(edition, runs).items():
                if stems:
                    print(f"{guide.name}: {MODELS[model]}: the newest runs of {', '.join(stems)} "
                          "are of an earlier version of their code")
        blocks = computed_blocks(edition, runs, latest)
        text = guide.read_text(encoding="utf-8")
        written = written_blocks(text) if BEGIN in text else {}
        if check:
            for model, computed in blocks.items():
                if model not in written or not same(written[model], computed):
                    print(f"{guide.name}: the {MODELS[model]} block differs from its runs")
                    status = 1
            continue
        new = rewrite(text, edition, blocks)
        if new != text:
            guide.write_text(new, encoding="utf-8")
        kept = [MODELS[m] for m in written if m not in blocks]
        print(f"{guide.name}: {', '.join(MODELS[m] for m in blocks) or 'no model'} from the runs"
              + (f"; kept the block of {', '.join(kept)}" if kept else "")
              + ("" if new != text else " (unchanged)"))
    return status
