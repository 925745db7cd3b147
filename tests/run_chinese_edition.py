"""The Chinese edition, every notebook in full, as a machine without internet runs it (the offline
model), checked for English in what it shows: printed text, tables and Markdown results, and the
words on its plots (titles, axis labels, legends). Class, method and model names may stay.

Not collected with the unit tests (its name does not start with ``test_``): `make test-chinese`
runs it, on its own, since it executes every notebook. With ``$CAPTUM_COURSE_RUNS`` set (make
test-chinese sets it), each run is kept for the website's Chinese pages (captum_course/site.py)."""
import json

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell

from captum_course.handouts import course_notebooks
from captum_course.site import keep_run, run_env
from captum_course.translations import ZH_DIR, english_sentences
from captum_helpers.models import categories

# Names that stay as they are: methods (as captum and the papers spell them), the course's
# models and reference maps, and libraries.
NAMES = ("Integrated Gradients", "NoiseTunnel", "Noise Tunnel", "SmoothGrad", "Layer GradCAM",
         "GradCAM", "Grad-CAM", "Guided Backprop", "Guided GradCAM", "Saliency", "Occlusion",
         "Feature Ablation", "Captum Insights", "Captum", "PyTorch", "ResNet18",
         "EfficientNet-Lite0", "ImageNet", "Edge detector", "Random", "Constant", "Sobel", "ReLU",
         "ReLU6", "SiLU", "Swish", "IG", "SSIM", "Spearman", "IoU", "ROAD", "AUC", "JupyterLab",
         "Jupyter", "Python")
# Records every text matplotlib is given, to read back the words of each figure after the run.
RECORD = """import matplotlib.text as _mtext
_course_texts, _set_text = [], _mtext.Text.set_text
def _record(self, s):
    if s is not None:  # a legend without a title
        _course_texts.append(str(s))
    return _set_text(self, s)
_mtext.Text.set_text = _record"""
DUMP = "import json\nprint('PLOT-TEXTS ' + json.dumps(_course_texts))"


def _shown(cell) -> str:
    """What a cell showed a reader, less the warnings libraries write to stderr."""
    parts = []
    for output in cell.get("outputs", []):
        if output["output_type"] == "stream" and output["name"] == "stdout":
            parts.append(output["text"])
        elif output["output_type"] in ("display_data", "execute_result"):
            data = output["data"]
            if "application/vnd.jupyter.widget-view+json" in data:
                continue  # a widget (progress bar, explorer): its text is drawn by the front end
            if any(kind.startswith("image/") for kind in data):
                continue  # a figure, shown as its picture ("<Figure size ... with 2 Axes>" is
                #           its text fallback); the words on it are read from matplotlib below
            parts.append(data.get("text/markdown") or data.get("text/html")
                         or data.get("text/plain", ""))
    return "\n".join(parts)


@pytest.mark.parametrize("path", course_notebooks(ZH_DIR), ids=lambda p: p.stem)
def test_the_chinese_notebook_runs_offline_and_shows_no_english(path, tmp_path):
    nb = nbformat.read(path, as_version=4)
    nb.cells = [new_code_cell(RECORD), *nb.cells, new_code_cell(DUMP)]
    env = run_env(tmp_path / "torch-home")  # offline; the edition from the folder, as in Jupyter
    NotebookClient(nb, timeout=1200, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute(env=env)
    # the website's run (make site)
    keep_run(path, nbformat.from_dict({**nb, "cells": nb.cells[1:-1]}))
    names = NAMES + categories()
    found = {}
    for index, cell in enumerate(nb.cells[1:-1]):
        if cell.cell_type == "code" and (english := english_sentences(_shown(cell), names)):
            found[f"cell {index}"] = english
    plot_texts = json.loads(_shown(nb.cells[-1]).split("PLOT-TEXTS ", 1)[1])
    if english := english_sentences("\n".join(plot_texts), names):
        found["plots"] = sorted(set(english))
    assert not found, f"{path.name} shows English: {found}"
