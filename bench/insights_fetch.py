"""Time one Captum Insights Fetch: stock captum 0.8.0 against the suite's server, same run.

    python bench/insights_fetch.py [--repeats 3] [--n-steps 25] [--model efficientnet_lite0]

Both answer the POST /fetch that the page's Fetch button sends (Integrated Gradients,
Gauss-Legendre, the bundled photos), through a Flask test client so that no network or
browser time is counted. Stock is captum's own app (``captum.insights.attr_vis.server``),
the suite's is ``captum_helpers.insights.create_app``. Each runs once to warm up, then
``--repeats`` times, alternating; the best wall time of each is compared. CPU time is shown
too: on a shared machine it varies less than wall time.

Each Fetch's time is split by where it goes (model passes for the attributions, prediction
forward passes, pictures) by wrapping those calls on the two visualizers' instances.
"""
from __future__ import annotations

import argparse
import os
import time
import warnings
from collections import defaultdict
from typing import Any, Callable

from captum.insights.attr_vis import server as captum_server

from captum_helpers import load_model, photo_paths
from captum_helpers.insights import build_visualizer, create_app


def fetch_body(n_steps: int) -> dict:
    return {"attribution_method": "Integrated Gradients", "arguments": {"n_steps": n_steps, "method": "gausslegendre"},
            "prediction": "all", "classes": []}


def timed(totals: dict[str, float], name: str, func: Callable) -> Callable:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            totals[name] += time.perf_counter() - start
    return wrapper


def split_time(visualizer: Any, totals: dict[str, float]) -> None:
    """Add the time of the visualizer's model passes and pictures to ``totals``."""
    calc = visualizer.attribution_calculation
    calc.calculate_attribution = timed(totals, "attribution passes", calc.calculate_attribution)
    calc.calculate_predicted_scores = timed(totals, "prediction passes", calc.calculate_predicted_scores)
    for feature in visualizer.features:
        feature.visualize = timed(totals, "pictures", feature.visualize)


def stock_client(model: Any, totals: dict[str, float]) -> Any:
    visualizer = build_visualizer(model)
    split_time(visualizer, totals)
    captum_server.visualizer = visualizer  # captum's app serves one module-global visualizer
    return captum_server.app.test_client()


def suite_client(model: Any, totals: dict[str, float]) -> Any:
    app = create_app(build_visualizer(model))
    split_time(app.explorer, totals)
    return app.test_client()


def run_fetch(client: Any, body: dict) -> tuple[float, float, int]:
    wall, cpu = time.perf_counter(), time.process_time()
    response = client.post("/fetch", json=body)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if response.status_code != 200:
        raise SystemExit(f"Fetch failed: {response.status_code} {response.get_data(as_text=True)[:300]}")
    return wall, cpu, len(response.get_json())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n-steps", type=int, default=25)
    parser.add_argument("--model", default="efficientnet_lite0", help="as for load_model (default: the CI model)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # captum's per-call warnings would drown the table

    model = load_model(args.model)
    photos = len(photo_paths())
    body = fetch_body(args.n_steps)
    stock, suite = "stock captum 0.8.0", "captum_helpers"
    totals: dict[str, dict[str, float]] = {stock: defaultdict(float), suite: defaultdict(float)}
    clients = {stock: stock_client(model, totals[stock]), suite: suite_client(model, totals[suite])}
    print(f"{photos} photos, Integrated Gradients n_steps={args.n_steps}, load average {os.getloadavg()[0]:.1f}")

    best: dict[str, tuple[float, float, int]] = {}
    for repeat in range(args.repeats + 1):
        for name, client in clients.items():
            if repeat == 1:
                totals[name].clear()  # split the measured Fetches, not the warm-up
            wall, cpu, rows = run_fetch(client, body)
            if repeat == 0:
                continue  # warm-up: first-call costs (lazy imports, allocator growth)
            print(f"  {name:20s} {wall:6.2f} s wall {cpu:6.2f} s CPU  {rows} rows")
            if name not in best or wall < best[name][0]:
                best[name] = (wall, cpu, rows)

    print(f"\nwhere a Fetch's time went (mean of {args.repeats}; the rest is JSON and HTTP):")
    for name in clients:
        parts = sorted(totals[name].items(), key=lambda kv: -kv[1])
        print(f"  {name:20s} " + ", ".join(f"{part} {seconds / args.repeats:.2f} s" for part, seconds in parts))
    (s_wall, s_cpu, s_rows), (h_wall, h_cpu, h_rows) = best[stock], best[suite]
    print(f"\nbest of {args.repeats}: stock {s_wall:.2f} s ({s_rows} rows), captum_helpers {h_wall:.2f} s "
          f"({h_rows} rows): {s_wall / h_wall:.1f}x faster (CPU time {s_cpu / h_cpu:.1f}x less); "
          f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
