"""The cheat-sheet's costs (docs/cheatsheet.md and its Chinese twin) are captum's: the images and
backward passes each method runs at the course's settings, counted here on a small model with
the course's input size, and held to the formulas captum documents."""
import importlib.util
import re
from pathlib import Path

import pytest
import torch

from captum_helpers.speed import occlusion_windows
from small_models import Small

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("bench_cheatsheet", ROOT / "bench" / "cheatsheet.py")
cheatsheet = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cheatsheet)


@pytest.fixture(scope="module")
def counted():
    torch.manual_seed(0)
    model = Small(channels=4, kernel=3, stride=4).eval()
    x = torch.rand(1, 3, 224, 224)
    return {name: cheatsheet.count(model, explain, x, 3)
            for name, explain in cheatsheet.methods(model, model.layer).items()}


def test_counts_follow_captums_formulas(counted):
    windows = occlusion_windows((3, 224, 224), cheatsheet.WINDOW, cheatsheet.STRIDES)
    assert windows == 784
    assert counted == {
        "Saliency": (1, 1),
        "Integrated Gradients": (cheatsheet.IG_STEPS, cheatsheet.IG_STEPS // cheatsheet.IG_BATCH),
        "SmoothGrad": (cheatsheet.SMOOTHGRAD_SAMPLES, 1),  # the noisy copies go as one batch
        "Occlusion": (windows + 1, 0),  # every window, and the photo itself; no gradients
        "Layer GradCAM": (1, 1),
        "Guided Backprop": (1, 1),
        "Guided GradCAM": (2, 2),
    }


def _costs(path: Path) -> dict[str, tuple[int, int]]:
    text = path.read_text(encoding="utf-8")
    block = text.split(cheatsheet.BEGIN, 1)[1].split(cheatsheet.END, 1)[0]
    rows = re.findall(r"^\| ([^|]+?) \| [^|]* \| (\d+) \| (\d+) \| [\d.]+ \|$", block, flags=re.M)
    return {name: (int(images), int(backward)) for name, images, backward in rows}


@pytest.mark.parametrize("language", ["en", "zh"])
def test_the_cheatsheets_give_captums_counts_for_every_method(counted, language):
    assert _costs(cheatsheet.DOCS[language]) == counted


def test_every_method_in_the_costs_is_explained_in_both_languages():
    for path in cheatsheet.DOCS.values():
        text = path.read_text(encoding="utf-8")
        for method in cheatsheet.SETTINGS:
            assert re.search(rf"^\| {re.escape(method)}[ （(|]", text,
                             flags=re.M), (path.name, method)


def test_the_update_writes_one_table_into_each_cheatsheet(tmp_path, monkeypatch):
    docs = {}
    for language, path in cheatsheet.DOCS.items():
        docs[language] = tmp_path / path.name
        docs[language].write_text(f"before\n{cheatsheet.BEGIN}\nold\n{cheatsheet.END}\nafter\n",
                                  encoding="utf-8")
    monkeypatch.setattr(cheatsheet, "DOCS", docs)
    rows = [{"method": "Saliency", "settings": "", "images": 1, "backward": 1, "seconds": 0.01}]
    context = {"model": "m", "machine": "cpu", "load": 0.0, "date": "2026-12-02"}
    cheatsheet.update_docs(rows, context)
    cheatsheet.update_docs(rows, context)  # again: still one block
    for path in docs.values():
        text = path.read_text(encoding="utf-8")
        assert (text.count(cheatsheet.BEGIN) == 1 and "old" not in text
                and "| Saliency |  | 1 | 1 | 0.01 |" in text)
        assert text.startswith("before\n") and text.endswith("after\n")
