"""The cost columns of the cheat-sheet (docs/cheatsheet.md and its Chinese twin): for each
method at the course's settings, how many images go through the model, how many backward
passes run, and how long one photo takes on this machine.

    python bench/cheatsheet.py                 # print the table
    python bench/cheatsheet.py --update-docs   # also write it into both cheat-sheets

Images are counted as captum runs them, by a forward hook on the model that adds up each batch's
size; backward passes by a hook on the gradient of each batch's output. The seconds are the better
of two calls on the model ``load_model`` picks, one thread per process as on a class's hub, and the
table names the machine, the model and the load average before the run: measure on an idle machine.
tests/test_cheatsheet.py holds the counts in the docs to what captum does.
"""
from __future__ import annotations

import argparse
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

import torch
from captum.attr import (GuidedBackprop, GuidedGradCam, IntegratedGradients, LayerAttribution,
                         LayerGradCam, NoiseTunnel, Occlusion, Saliency)

ROOT = Path(__file__).resolve().parents[1]
DOCS = {"en": ROOT / "docs" / "cheatsheet.md", "zh": ROOT / "docs" / "cheatsheet.zh-CN.md"}
BEGIN, END = "<!-- costs: bench/cheatsheet.py --update-docs -->", "<!-- end of costs -->"
# The course's settings: the walkthrough's IG and Occlusion calls (notebooks 02 and 03, with
# captum_helpers.speed's batches), GradCAM on gradcam_layer (04), SmoothGrad as in 06.
IG_STEPS, IG_BATCH = 200, 10
WINDOW, STRIDES, OCCLUSION_BATCH = (3, 15, 15), (3, 8, 8), 28
SMOOTHGRAD_SAMPLES = 10
SETTINGS = {
    "Saliency": "`abs=False`",
    "Integrated Gradients": f"`n_steps={IG_STEPS}`, `internal_batch_size={IG_BATCH}`",
    "SmoothGrad": f"NoiseTunnel(Saliency), `nt_samples={SMOOTHGRAD_SAMPLES}`",
    "Occlusion": f"window {WINDOW}, strides {STRIDES}, `perturbations_per_eval={OCCLUSION_BATCH}`",
    "Layer GradCAM": "the layer of `gradcam_layer(model)`",
    "Guided Backprop": "",
    "Guided GradCAM": "the layer of `gradcam_layer(model)`",
}


def methods(model: torch.nn.Module, layer: torch.nn.Module) -> dict[str, Callable]:
    """Each method as (inputs, target) -> attributions, at the course's settings."""
    def gradcam(x, t):
        return LayerAttribution.interpolate(LayerGradCam(model, layer).attribute(x, target=t),
                                            x.shape[2:])

    return {
        "Saliency": lambda x, t: Saliency(model).attribute(x, target=t, abs=False),
        "Integrated Gradients": lambda x, t: IntegratedGradients(model).attribute(
            x, target=t, n_steps=IG_STEPS, internal_batch_size=IG_BATCH),
        "SmoothGrad": lambda x, t: NoiseTunnel(Saliency(model)).attribute(
            x, target=t, nt_type="smoothgrad", nt_samples=SMOOTHGRAD_SAMPLES, stdevs=0.1),
        "Occlusion": lambda x, t: Occlusion(model).attribute(
            x, target=t, sliding_window_shapes=WINDOW, strides=STRIDES, baselines=0,
            perturbations_per_eval=OCCLUSION_BATCH),
        "Layer GradCAM": gradcam,
        "Guided Backprop": lambda x, t: GuidedBackprop(model).attribute(x, target=t),
        "Guided GradCAM": lambda x, t: GuidedGradCam(model, layer).attribute(x, target=t),
    }


def count(model: torch.nn.Module, explain: Callable, x: torch.Tensor,
          target: int) -> tuple[int, int]:
    """(images through the model, backward passes) of one call of ``explain``."""
    images, backward = [0], [0]

    def forward_hook(module, inputs, output):
        images[0] += inputs[0].shape[0]
        if output.requires_grad:
            output.register_hook(lambda grad: backward.__setitem__(0, backward[0] + 1))

    handle = model.register_forward_hook(forward_hook)
    try:
        explain(x.clone(), target)
    finally:
        handle.remove()
    return images[0], backward[0]


def measure(model: torch.nn.Module, layer: torch.nn.Module, x: torch.Tensor, target: int,
            repeats: int = 2) -> list[dict]:
    """Each method's counts and its best time over ``repeats`` counted calls."""
    rows = []
    for name, explain in methods(model, layer).items():
        calls = []
        for _ in range(repeats):
            start = time.perf_counter()
            counts = count(model, explain, x, target)
            calls.append((time.perf_counter() - start, counts))
        if len({c for _, c in calls}) != 1:
            raise RuntimeError(f"{name} ran a different number of passes on each call: {calls}")
        images, backward = calls[0][1]
        rows.append({"method": name, "settings": SETTINGS[name], "images": images,
                     "backward": backward, "seconds": min(t for t, _ in calls)})
    return rows


HEADERS = {"en": ("method", "settings", "images through the model", "backward passes",
                  "seconds, one photo"),
           "zh": ("方法", "设置", "经过模型的图片数", "反向传播次数", "秒（一张照片）")}
NOTE = {"en": "Measured with `python bench/cheatsheet.py` on {model}, {machine}, one thread, "
              "load average {load:.2f} before the run, {date}; better of two calls.",
        "zh": "由 `python bench/cheatsheet.py` 在 {model}、{machine} 上测得，单线程，"
              "运行前负载均值 {load:.2f}，{date}；两次调用取较快者。"}


def table(rows: list[dict], language: str, context: dict) -> str:
    head = HEADERS[language]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---:|" * 3]
    for r in rows:
        lines.append(f"| {r['method']} | {r['settings']} | {r['images']} | {r['backward']} | "
                     f"{r['seconds']:.2f} |")
    return "\n".join(lines) + "\n\n" + NOTE[language].format(**context)


def update_docs(rows: list[dict], context: dict) -> None:
    for language, path in DOCS.items():
        text = path.read_text(encoding="utf-8")
        block = f"{BEGIN}\n{table(rows, language, context)}\n{END}"
        new, n = re.subn(re.escape(BEGIN) + r".*?" + re.escape(END), lambda _: block, text,
                         flags=re.S)
        if n != 1:
            raise SystemExit(f"{path} needs one {BEGIN} ... {END} block")
        path.write_text(new, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--update-docs", action="store_true",
                        help="write the table into both cheat-sheets")
    args = parser.parse_args(argv)
    import datetime
    import platform

    from captum_course.doctor import cpu_name
    from captum_helpers import (gradcam_layer, load_image, load_model, model_name, photo_paths,
                                preprocess)

    torch.set_num_threads(1)
    load = os.getloadavg()[0]
    model = load_model()
    _, x = preprocess(load_image(photo_paths(include_walkthrough=False)[0]))
    with torch.no_grad():
        target = model(x).argmax(1).item()
    rows = measure(model, gradcam_layer(model), x, target)
    context = {"model": model_name(model),
               "machine": f"{cpu_name()} ({os.cpu_count()} cores, {platform.machine()})",
               "load": load, "date": datetime.date.today().isoformat()}
    print(table(rows, "en", context))
    if args.update_docs:
        update_docs(rows, context)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
