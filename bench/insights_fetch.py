"""Time Captum Insights Fetches on the photos in img/: what the explorer's settings cost.

    python bench/insights_fetch.py [--repeats 2] [--model efficientnet_lite0] [--budget]

Each Fetch is the POST /fetch the page's button sends, through a Flask test client (no
network or browser time). In one run, alternating, best of ``--repeats`` after a warm-up:

* stock captum 0.8.0's own app against the course's (``captum_helpers.insights``), with the
  explorer's default Integrated Gradients (n_steps 25). Stock repeats a 3-photo dataset to
  fill 4 rows, so seconds per row are compared too;
* the course's app with ``model`` against ``fast_model(model)`` (channels_last): notebook 05
  uses ``fast_model`` only if it saves at least 20% of a Fetch;
* with ``--budget``: the explorer's default Occlusion (window 3 32 32, strides 3 32 32), the
  walkthrough's Occlusion on one photo, and the largest Integrated Gradients and Occlusion
  Fetches MAX_PASSES allows, each with its pass count and seconds per pass. The aim: defaults
  under 10 s for three photos, any allowed Fetch under about 30 s on 2 cores.

CPU time is printed beside wall time: on a shared machine it varies less. The load average
is printed; quote figures only from an idle run.
"""
from __future__ import annotations

import argparse
import copy
import os
import time
import warnings

from captum.insights.attr_vis import server as captum_server

from captum_helpers import fast_model, load_model, photo_paths
from captum_course.insights import build_visualizer
from captum_helpers.insights import MAX_PASSES, create_app, passes_per_example

SHAPE = (3, 224, 224)


def ig(n_steps: int) -> dict:
    return {"attribution_method": "Integrated Gradients", "arguments": {"n_steps": n_steps, "method": "gausslegendre"},
            "prediction": "all", "classes": []}


def occlusion(window: int, stride: int, classes: list[str] | None = None) -> dict:
    return {"attribution_method": "Occlusion", "prediction": "all", "classes": classes or [],
            "arguments": {"sliding_window_shapes": f"3 {window} {window}", "strides": f"3 {stride} {stride}",
                          "perturbations_per_eval": 16}}


def stock_client(model):
    captum_server.visualizer = build_visualizer(model)  # captum's app serves one module-global visualizer
    return captum_server.app.test_client(), "/"


def course_client(model, paths=None):
    app = create_app(build_visualizer(model, paths), "bench")
    return app.test_client(), "/bench/"


def fetch(client, body: dict) -> tuple[float, float, int]:
    web, prefix = client
    wall, cpu = time.perf_counter(), time.process_time()
    response = web.post(prefix + "fetch", json=body)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if response.status_code != 200:
        raise SystemExit(f"Fetch failed: {response.status_code} {response.get_data(as_text=True)[:300]}")
    return wall, cpu, len(response.get_json())


def compare(title: str, clients: dict, body: dict, repeats: int) -> dict[str, tuple[float, float, int]]:
    print(f"\n{title}")
    best: dict[str, tuple[float, float, int]] = {}
    for repeat in range(repeats + 1):
        for name, client in clients.items():
            result = fetch(client, body)
            if repeat and (name not in best or result[0] < best[name][0]):
                best[name] = result  # repeat 0 warms up: lazy imports, allocator growth
    for name, (wall, cpu, rows) in best.items():
        print(f"  {name:28s} {wall:6.2f} s wall {cpu:6.2f} s CPU  {rows} rows  {wall / rows:5.2f} s/row")
    return best


def budget(model, photos: int) -> None:
    print(f"\nwhat settings cost (MAX_PASSES = {MAX_PASSES}), {photos} photos:")
    rows = min(4, photos)
    walkthrough = passes_per_example("Occlusion", {"sliding_window_shapes": (3, 15, 15), "strides": (3, 8, 8)}, SHAPE)
    n_steps = MAX_PASSES // (3 * rows)
    window = next(w for w in range(32, 0, -1) if passes_per_example(
        "Occlusion", {"sliding_window_shapes": (3, w, w), "strides": (3, w, w)}, SHAPE) * rows > MAX_PASSES) + 1
    cases = [
        ("default Integrated Gradients", ig(25), 3 * 25 * rows),
        ("default Occlusion 32/32", occlusion(32, 32), passes_per_example(
            "Occlusion", {"sliding_window_shapes": (3, 32, 32), "strides": (3, 32, 32)}, SHAPE) * rows),
        ("walkthrough Occlusion 15/8, 1 photo", occlusion(15, 8), walkthrough),
        (f"largest IG: n_steps {n_steps}", ig(n_steps), 3 * n_steps * rows),
        (f"largest Occlusion: {window}/{window}", occlusion(window, window), passes_per_example(
            "Occlusion", {"sliding_window_shapes": (3, window, window), "strides": (3, window, window)}, SHAPE) * rows),
    ]
    client, one_photo = course_client(model), course_client(model, photo_paths()[:1])
    for name, body, passes in cases:
        wall, cpu, shown = fetch(one_photo if "1 photo" in name else client, body)
        print(f"  {name:38s} {passes:5d} passes {wall:6.2f} s wall {cpu:6.2f} s CPU  "
              f"{1000 * wall / passes:5.1f} ms/pass  {shown} rows")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--model", default="efficientnet_lite0", help="as for load_model (default: the CI model)")
    parser.add_argument("--budget", action="store_true", help="also time the budget's edges")
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # captum's per-call warnings would drown the table

    model = load_model(args.model)
    photos = len(photo_paths())
    print(f"{photos} photos, {args.model}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    best = compare("stock captum against the course's app (Integrated Gradients, n_steps 25):",
                   {"stock captum 0.8.0": stock_client(model), "captum_helpers": course_client(model)}, ig(25),
                   args.repeats)
    ratio = (best["stock captum 0.8.0"][0] / best["stock captum 0.8.0"][2]) / (best["captum_helpers"][0] / photos)
    print(f"  per row: stock {ratio:.2f}x the course's time")
    best = compare("model against fast_model(model) (channels_last), the course's app:",
                   {"model": course_client(model), "fast_model(model)": course_client(fast_model(copy.deepcopy(model)))},
                   ig(25), args.repeats)
    saving = 1 - best["fast_model(model)"][0] / best["model"][0]
    print(f"  fast_model saves {100 * saving:.0f}% of a Fetch ({'>=' if saving >= 0.2 else '<'} 20%)")
    if args.budget:
        budget(model, photos)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
