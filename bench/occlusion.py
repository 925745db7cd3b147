"""captum's Occlusion against IncrementalOcclusion (captum_helpers/incremental.py), in one run.

    python bench/occlusion.py [--repeats 2] [--threads 2] [--size 224]

On ResNet18 (random weights: the time does not depend on them, and this machine cannot download
the trained ones) and EfficientNet-Lite0, on one 224 x 224 photo, at the walkthrough's settings
(window 3 x 15 x 15, strides 3 x 8 x 8) and at a coarser one (45 / 20). captum gets its best
``perturbations_per_eval`` of 16, 28 and 64 (each timed once first); then the two alternate, each
first in turn, best of ``--repeats``. Printed: wall time, the ratio, the convolutions'
multiply-adds IncrementalOcclusion computed against recomputing every occluded copy and the
photo, and the largest difference from captum's map as a share of its range.
"""
from __future__ import annotations

import argparse
import os
import time
import warnings

import torch
import torchvision
from captum.attr import Occlusion

from captum_helpers import IncrementalOcclusion, load_model

SETTINGS = {"walkthrough 15/8": ((3, 15, 15), (3, 8, 8)),
            "coarse 45/20": ((3, 45, 45), (3, 20, 20))}  # windows fit a photo of 45 or more
BATCHES = (16, 28, 64)


def timed(call) -> tuple[float, torch.Tensor]:
    start = time.perf_counter()
    result = call()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=224, help="the photo's side (a smoke run: 48)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    torch.manual_seed(0)
    models = {"ResNet18": torchvision.models.resnet18().eval(),
              "EfficientNet-Lite0": load_model("efficientnet_lite0", verbose=False).eval()}
    photo = torch.rand(1, 3, args.size, args.size)
    print(f"{os.cpu_count()} CPUs, {args.threads} threads, torch {torch.__version__}, "
          f"{args.size} x {args.size} photo, load average {os.getloadavg()[0]:.2f}")
    for name, model in models.items():
        for setting, (window, strides) in SETTINGS.items():
            kwargs = dict(target=3, sliding_window_shapes=window, strides=strides, baselines=0)
            batch = min(BATCHES, key=lambda b: timed(lambda: Occlusion(model).attribute(
                photo, perturbations_per_eval=b, **kwargs))[0])
            ways = {f"captum (perturbations_per_eval={batch})":
                    lambda: Occlusion(model).attribute(photo, perturbations_per_eval=batch,
                                                       **kwargs),
                    "IncrementalOcclusion": lambda: explainer.attribute(photo, **kwargs)}
            explainer, best, maps = IncrementalOcclusion(model), {}, {}
            names = list(ways)
            for repeat in range(args.repeats):
                for way in names[repeat % 2:] + names[:repeat % 2]:
                    seconds, maps[way] = timed(ways[way])
                    best[way] = min(best.get(way, seconds), seconds)
            captum_map, fast_map = maps[names[0]], maps[names[1]]
            gap = ((fast_map - captum_map).abs().max()
                   / (captum_map.max() - captum_map.min())).item()
            print(f"\n{name}, {setting}:")
            for way in names:
                print(f"  {way:38s} {best[way]:6.2f} s")
            print(f"  captum / incremental: {best[names[0]] / best[names[1]]:.2f}x; "
                  f"multiply-adds {explainer.macs / explainer.full_macs:.1%} of recomputing "
                  f"every copy; largest difference {gap:.1e} of the map's range")
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
