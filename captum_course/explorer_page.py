"""Notebook 05's explorer on the website, with no kernel behind it: results computed when the
site is built, for the page's front end (``captum_explorer/explorer.js``, ``mountStatic``).

For the course photos, each method at the page's default arguments: every photo's top classes,
each one's attribution map, computed by the explorer itself (``captum_explorer``). A method the
explorer refuses at its defaults (Feature Ablation: over the work budget) keeps the message the
explorer gives. The pictures go as JPEG, to keep a page's data small (at most ``MAX_BYTES``).
The results are kept in the runs folder under a key of the model, the explorer's code and the
photos, so a second build reuses them.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
from pathlib import Path

from PIL import Image

MAX_BYTES = 3 * 2**20  # the results one edition's page may carry
FEATURE = {"en": "Photo", "zh": "照片"}  # the ImageFeature's name, as notebook 05 gives it
NOTE = {"en": "This explorer runs in your browser on results computed when the site was built "
              "({model}): the course photos, each method at its default arguments, every top "
              "class clickable. Press Fetch. To change the arguments, run the notebook.",
        "zh": "这个探索器在你的浏览器里运行，用的是网站构建时算好的结果（{model}）：课程的照片，"
              "每种方法用默认参数，每个前几名的类别都可以点击。请点击 Fetch。"
              "要修改参数，请运行笔记本。"}


def _jpeg(uri: str, quality: int = 85) -> str:
    picture = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB")
    buffer = io.BytesIO()
    picture.save(buffer, format="jpeg", quality=quality, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _key(model: str) -> str:
    from captum_helpers import photo_paths

    root = Path(__file__).resolve().parent.parent
    files = sorted((root / "captum_explorer").glob("*.py")) + [
        root / "captum_helpers" / "incremental.py", Path(__file__), *photo_paths()]
    blob = model.encode() + b"".join(f.name.encode() + f.read_bytes() for f in files)
    return f"explorer-{model}-{hashlib.sha256(blob).hexdigest()[:16]}"


def compute(model_name: str) -> dict:
    """The results, language aside: the page's config, the photos, and per method the map of
    every top class of every photo (or the explorer's refusal)."""
    import torch

    from captum_explorer import InsightsError, InsightsExplorer, check_settings
    from captum_explorer.engine import METHODS, ROWS
    from captum_helpers import load_model

    from .insights import build_visualizer

    torch.manual_seed(0)
    visualizer = build_visualizer(load_model(model_name, verbose=False))
    explorers = {lang: InsightsExplorer(visualizer, language=lang) for lang in NOTE}
    model, examples = visualizer.models[0], visualizer.examples()
    photos, maps = [], {}
    for inputs, args, label in examples:
        first = visualizer.explain(model, (inputs, args, label), None,
                                   check_settings({"attribution_method": "Saliency"}))
        photos.append({"base": _jpeg(first["feature_outputs"][0]["base"]),
                       "actual": first["actual"], "predicted": first["predicted"]})
    for method in METHODS:
        settings = check_settings({"attribution_method": method})
        refusals = {}
        for lang, explorer in explorers.items():  # the explorer's own message, in each language
            try:
                explorer._check_budget(min(ROWS, len(examples)), examples[0][0], settings)
            except InsightsError as err:
                refusals[lang] = str(err)
        if refusals:
            maps[method] = {"error": refusals}
            continue
        images, contributions = [], []
        for example, photo in zip(examples, photos):
            rows = [visualizer.explain(model, example, c["index"], settings)
                    for c in photo["predicted"]]
            images.append([_jpeg(r["feature_outputs"][0]["modified"]) for r in rows])
            contributions.append([r["feature_outputs"][0]["contribution"] for r in rows])
        shown = {k: " ".join(map(str, v)) if isinstance(v, tuple) else v
                 for k, v in settings["arguments"].items() if k != "internal_batch_size"}
        maps[method] = {"arguments": shown, "images": images, "contributions": contributions}
    return {"config": explorers["en"].config(), "photos": photos, "maps": maps, "model": model_name}


def results(model_name: str, runs: Path) -> dict:
    """The results for ``model_name``, from ``runs`` when kept there, else computed and kept."""
    kept = Path(runs) / f"{_key(model_name)}.json"
    if kept.exists():
        return json.loads(kept.read_text(encoding="utf-8"))
    data = compute(model_name)
    kept.parent.mkdir(parents=True, exist_ok=True)
    kept.write_text(json.dumps(data), encoding="utf-8")
    return data


def page_data(data: dict, language: str, model_label: str) -> dict:
    """What one edition's page holds: the results with its note and refusals in its language."""
    maps = {method: {"error": entry["error"][language]} if "error" in entry else entry
            for method, entry in data["maps"].items()}
    return {"language": language, "config": data["config"], "photos": data["photos"],
            "maps": maps, "note": NOTE[language].format(model=model_label),
            "feature": FEATURE[language]}


def html(data: dict, front_end: str) -> str:
    """The page's HTML: the front end and the data inline, so that it works from file://."""
    payload = json.dumps(data).replace("</", "<\\/")
    if len(payload) > MAX_BYTES:
        raise RuntimeError(f"the explorer's results take {len(payload):,} bytes, "
                           f"more than {MAX_BYTES:,}")
    return ('<div class="captum-explorer-live"></div>\n'
            f'<script type="application/json" class="captum-explorer-data">{payload}</script>\n'
            '<script type="module">\n' + front_end.replace("</script", "<\\/script") + "\n"
            'for (const el of document.querySelectorAll(".captum-explorer-live")) {\n'
            '  const data = JSON.parse(el.nextElementSibling.textContent);\n'
            '  mountStatic(el, data);\n'
            '}\n</script>\n')
