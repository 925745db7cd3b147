"""Time the explorer's Fetches on the photos in img/: what the explorer's settings cost.

    python bench/insights_fetch.py [--repeats 2] [--model efficientnet_lite0] [--budget]

A Fetch is what the button does: in notebook 05's widget (``captum_explorer.InsightsWidget``),
setting its ``config`` trait and waiting for the rows, which the widget's thread computes; in the
command line's served page (``captum_course.insights.create_app``), the POST /fetch the page
sends, through a Flask test client (no network or browser time). Either returns a flat list of
rows, one per photo and model. In one run, alternating (each first in turn), best of
``--repeats`` after a warm-up:

* notebook 05's widget against the command line's server, with the explorer's default
  Integrated Gradients (n_steps 25): the widget must be no slower than the server. The bytes of
  a Fetch's rows as JSON are printed. (captum 0.9 has no Insights of its own to compare with;
  ``bench/explorer_vs_old.md`` holds the last comparison with captum 0.8.0's.)
* the widget with ``model`` against ``fast_model(model)`` (channels_last): notebook 05
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
import json
import os
import time
import warnings

from captum_course.insights import build_visualizer, create_app
from captum_explorer import MAX_PASSES, InsightsWidget, check_settings
from captum_helpers import fast_model, load_model, photo_paths
from captum_helpers.speed import passes_per_example

SHAPE = (3, 224, 224)


def ig(n_steps: int) -> dict:
    return {"attribution_method": "Integrated Gradients",
            "arguments": {"n_steps": n_steps, "method": "gausslegendre"},
            "prediction": "all", "classes": []}


def occlusion(window: int, stride: int, classes: list[str] | None = None) -> dict:
    return {"attribution_method": "Occlusion", "prediction": "all", "classes": classes or [],
            "arguments": {"sliding_window_shapes": f"3 {window} {window}",
                          "strides": f"3 {stride} {stride}", "perturbations_per_eval": 16}}


def served(app, prefix: str):
    """A Fetch through a served page: the POST the page sends, answered by ``app``."""
    web = app.test_client()

    def fetch(body: dict) -> list:
        response = web.post(prefix + "fetch", json=body)
        if response.status_code != 200:
            raise SystemExit(f"Fetch failed: {response.status_code} "
                             f"{response.get_data(as_text=True)[:300]}")
        return response.get_json()
    return fetch


def course_client(model, paths=None):
    return served(create_app(build_visualizer(model, paths), "bench"), "/bench/")


def widget_client(model, paths=None):
    widget = InsightsWidget(build_visualizer(model, paths))

    def fetch(body: dict) -> list:
        settings = check_settings(body)
        return widget.fetch(settings["attribution_method"], settings["prediction"],
                            settings["classes"], **body["arguments"])
    return fetch


def fetch(client, body: dict) -> tuple[float, float, int]:
    # CPU of every thread: the widget computes in one
    wall, cpu = time.perf_counter(), time.process_time()
    rows = client(body)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return wall, cpu, len(rows)


def compare(title: str, clients: dict, body: dict,
            repeats: int) -> dict[str, tuple[float, float, int]]:
    print(f"\n{title}")
    best: dict[str, tuple[float, float, int]] = {}
    names = list(clients)
    for repeat in range(repeats + 1):
        # each goes first in turn
        for name in names[repeat % len(names):] + names[:repeat % len(names)]:
            result = fetch(clients[name], body)
            if repeat and (name not in best or result[0] < best[name][0]):
                best[name] = result  # repeat 0 warms up: lazy imports, allocator growth
    for name, (wall, cpu, rows) in best.items():
        print(f"  {name:28s} {wall:6.2f} s wall {cpu:6.2f} s CPU  {rows} rows  "
              f"{wall / rows:5.2f} s/row")
    return best


def budget(model, photos: int) -> None:
    print(f"\nwhat settings cost (MAX_PASSES = {MAX_PASSES}), {photos} photos:")
    rows = min(4, photos)
    walkthrough = passes_per_example(
        "Occlusion", {"sliding_window_shapes": (3, 15, 15), "strides": (3, 8, 8)}, SHAPE)
    n_steps = MAX_PASSES // (3 * rows)
    window = next(w for w in range(32, 0, -1) if passes_per_example(
        "Occlusion", {"sliding_window_shapes": (3, w, w), "strides": (3, w, w)}, SHAPE) * rows
        > MAX_PASSES) + 1
    cases = [
        ("default Integrated Gradients", ig(25), 3 * 25 * rows),
        ("default Occlusion 32/32", occlusion(32, 32), passes_per_example(
            "Occlusion", {"sliding_window_shapes": (3, 32, 32), "strides": (3, 32, 32)},
            SHAPE) * rows),
        ("walkthrough Occlusion 15/8, 1 photo", occlusion(15, 8), walkthrough),
        (f"largest IG: n_steps {n_steps}", ig(n_steps), 3 * n_steps * rows),
        (f"largest Occlusion: {window}/{window}", occlusion(window, window), passes_per_example(
            "Occlusion", {"sliding_window_shapes": (3, window, window),
                          "strides": (3, window, window)}, SHAPE) * rows),
    ]
    client, one_photo = widget_client(model), widget_client(model, photo_paths()[:1])
    for name, body, passes in cases:
        wall, cpu, shown = fetch(one_photo if "1 photo" in name else client, body)
        print(f"  {name:38s} {passes:5d} passes {wall:6.2f} s wall {cpu:6.2f} s CPU  "
              f"{1000 * wall / passes:5.1f} ms/pass  {shown} rows")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--model", default="efficientnet_lite0",
                        help="as for load_model (default: the CI model)")
    parser.add_argument("--budget", action="store_true", help="also time the budget's edges")
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # captum's per-call warnings would drown the table

    model = load_model(args.model)
    photos = len(photo_paths())
    print(f"{photos} photos, {args.model}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    best = compare("notebook 05's widget against the served page (Integrated Gradients, "
                   "n_steps 25):",
                   {"widget (captum_explorer)": widget_client(model),
                    "server (captum_course)": course_client(model)}, ig(25), args.repeats)
    widget, server = best["widget (captum_explorer)"][0], best["server (captum_course)"][0]
    print(f"  widget / server: {widget / server:.2f} (no slower: at most 1 plus the noise)")
    sizes = [len(json.dumps(row)) for row in widget_client(model)(ig(25))]
    print(f"  bytes per row as JSON: {', '.join(f'{size / 1024:.0f} KB' for size in sizes)}; "
          f"a Fetch of {len(sizes)}: {sum(sizes) / 2**20:.2f} MB "
          "(a websocket message: about 10 MB)")
    best = compare("model against fast_model(model) (channels_last), the widget:",
                   {"model": widget_client(model),
                    "fast_model(model)": widget_client(fast_model(copy.deepcopy(model)))},
                   ig(25), args.repeats)
    saving = 1 - best["fast_model(model)"][0] / best["model"][0]
    print(f"  fast_model saves {100 * saving:.0f}% of a Fetch "
          f"({'>=' if saving >= 0.2 else '<'} 20%)")
    if args.budget:
        budget(model, photos)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
