"""notebook 05's widget before and after the course's own explorer, in one run: captum 0.8.0's
front end and engine (``captum_helpers.insights``) against ``captum_explorer``, on the photos
in img/, at the page's defaults (Integrated Gradients n_steps 25; Occlusion window 3 32 32,
strides 3 32 32), each first in turn, best of ``--repeats`` after a warm-up. Also the bytes of
a Fetch's rows as JSON, what the widget sends to the page.

    python bench/explorer_vs_old.py [--repeats 3] [--model efficientnet_lite0]
"""
from __future__ import annotations

import argparse
import json
import os
import time
import warnings

import torch

import captum_explorer
from captum_course.insights import build_visualizer as build_new
from captum_helpers import categories, load_image, load_model, photo_label, photo_paths
from captum_helpers import transform, transform_normalize
from captum_helpers.insights import InsightsWidget as OldWidget


def build_old(model):
    from captum.insights import AttributionVisualizer, Batch
    from captum.insights.attr_vis.features import ImageFeature

    paths = photo_paths()
    return AttributionVisualizer(
        models=[model], score_func=lambda o: torch.nn.functional.softmax(o, 1),
        classes=list(categories()),
        features=[ImageFeature("Photo", baseline_transforms=[lambda x: x * 0],
                               input_transforms=[transform_normalize])],
        dataset=[Batch(torch.stack([transform(load_image(p)) for p in paths]),
                       labels=[photo_label(p) for p in paths])])


SETTINGS = {"Integrated Gradients, n_steps 25": ("Integrated Gradients", {}),
            "Occlusion, 3 32 32 / 3 32 32": ("Occlusion", {})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default="efficientnet_lite0")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    model = load_model(args.model, verbose=False)
    widgets = {"captum 0.8.0's (captum_helpers.insights)": OldWidget(build_old(model)),
               "the course's (captum_explorer)": captum_explorer.InsightsWidget(build_new(model))}
    print(f"{len(photo_paths())} photos, {args.model}, {os.cpu_count()} CPUs, "
          f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f}")
    for title, (method, arguments) in SETTINGS.items():
        best, names = {}, list(widgets)
        for repeat in range(args.repeats + 1):
            for name in names[repeat % 2:] + names[:repeat % 2]:
                wall = time.perf_counter()
                rows = widgets[name].fetch(method, **arguments)
                wall = time.perf_counter() - wall
                if repeat:
                    best[name] = min(best.get(name, wall), wall)
                sizes = len(json.dumps(rows))
        print(f"\n{title}:")
        for name, wall in best.items():
            size = len(json.dumps(widgets[name].output))
            print(f"  {name:42s} {wall:6.2f} s  rows as JSON {size / 2**20:.2f} MB")
        old, new = best[names[0]], best[names[1]]
        print(f"  new / old: {new / old:.2f}")
        del sizes
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")
    for widget in widgets.values():
        widget.close()


if __name__ == "__main__":
    main()
