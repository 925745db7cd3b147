"""The walkthrough's three attributions, as written, against the calls the notebooks make.

    python bench/attributions.py            # full run, ResNet18 at 224 px (4-8 minutes on an idle 2-core machine)
    python bench/attributions.py --quick    # smoke run: 64 px, 50 IG steps, one run each (about 30 s)

Runs, in one run and on the same model and photo, per method (Integrated Gradients,
Occlusion, Layer GradCAM):

* ``baseline``: the walkthrough's call exactly as written (its model set-up, its arguments);
* ``suite``: the call the notebooks make: the same parameters (``n_steps=200``, the occlusion
  window, strides and baseline, the GradCAM layer ``model.layer3[1].conv2``) made cheap with
  ``captum_helpers.speed.fast_model`` and batching arguments;
* ``bf16`` (only with ``--bf16``): the suite's call under ``torch.autocast("cpu", dtype=torch.bfloat16)``.

Every run of a call happens in a fresh Python process, so that its peak resident memory
(``getrusage(RUSAGE_SELF).ru_maxrss`` of that process) belongs to that call alone; the
process also holds Python, torch and the model, shown separately as ``before call``. The
time is the median of several runs of the call (each after a one-image warm-up forward
pass), the baseline's and the suite's runs taking turns so that a change in the machine's
load hits both alike (GradCAM, at 0.03 s a call, does all its runs in one process).
The table gives the ratio baseline/suite for time and memory and the largest difference
between the two attributions, checked against a float32-noise tolerance.

Timing does not depend on weight values: by default the model is torchvision's ResNet18
architecture with random weights from ``torch.manual_seed(0)`` (``--weights imagenet`` uses
the IMAGENET1K_V1 weights if they are cached or downloadable).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

METHODS = ("ig", "occlusion", "gradcam")
METHOD_NAMES = {"ig": "Integrated Gradients", "occlusion": "Occlusion", "gradcam": "Layer GradCAM"}
# Largest difference allowed between the suite's and the baseline's attribution, relative to
# the largest magnitude of the baseline's. float32 rounding in another order (memory layout)
# moves the attributions by ~1e-6 of their maximum, except where it flips the sign of a
# pre-activation that is zero up to rounding: that ReLU then passes or blocks its gradient,
# which moved the Integrated Gradients map by 2e-4 here. The walkthrough's own fp32 IG map
# differs from a float64 computation by 1.2e-2 (max) / 1.1e-3 (L2), so 1e-3 is well inside
# float32 noise, and far below what a change of the computation (window, steps, target) gives.
RTOL = 1e-3

# The suite's settings (overridable here for sweeps).
from captum_helpers.speed import INTEGRATED_GRADIENTS_BATCH as DEFAULT_IG_BATCH  # noqa: E402
from captum_helpers.speed import OCCLUSION_BATCH as DEFAULT_OCCLUSION_BATCH  # noqa: E402


# --------------------------------------------------------------------------------------------
# The calls. The baseline lines are the walkthrough's, verbatim; the suite's are the notebooks'.
# --------------------------------------------------------------------------------------------

def attribute(method: str, variant: str, model, input_img, pred_label_idx, cfg: dict):
    """Run one attribution call; return the attribution tensor."""
    from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam, Occlusion

    n_steps = cfg["n_steps"]
    if variant == "baseline":
        if method == "ig":
            integrated_gradients = IntegratedGradients(model)
            attributions_ig = integrated_gradients.attribute(input_img, target=pred_label_idx, n_steps=n_steps)
            return attributions_ig
        if method == "occlusion":
            occlusion = Occlusion(model)
            attributions_occ = occlusion.attribute(input_img,
                                                   target=pred_label_idx,
                                                   strides=(3, 8, 8),
                                                   sliding_window_shapes=(3, 15, 15),
                                                   baselines=0)
            return attributions_occ
        if method == "gradcam":
            layer_gradcam = LayerGradCam(model, model.layer3[1].conv2)
            attributions_lgc = layer_gradcam.attribute(input_img, target=pred_label_idx)
            upsamp_attr_lgc = LayerAttribution.interpolate(attributions_lgc, input_img.shape[2:])
            return upsamp_attr_lgc
    else:  # "suite" and "bf16": the model went through fast_model() once, in the worker
        if method == "ig":
            integrated_gradients = IntegratedGradients(model)
            attributions_ig = integrated_gradients.attribute(
                input_img, target=pred_label_idx, n_steps=n_steps, internal_batch_size=cfg["ig_batch"]
            )
            return attributions_ig
        if method == "occlusion":
            occlusion = Occlusion(model)
            attributions_occ = occlusion.attribute(input_img,
                                                   target=pred_label_idx,
                                                   strides=(3, 8, 8),
                                                   sliding_window_shapes=(3, 15, 15),
                                                   baselines=0,
                                                   perturbations_per_eval=cfg["occlusion_batch"])
            return attributions_occ
        if method == "gradcam":
            layer_gradcam = LayerGradCam(model, model.layer3[1].conv2)
            attributions_lgc = layer_gradcam.attribute(input_img, target=pred_label_idx)
            upsamp_attr_lgc = LayerAttribution.interpolate(attributions_lgc, input_img.shape[2:])
            return upsamp_attr_lgc
    raise ValueError(f"unknown method/variant {method}/{variant}")


# --------------------------------------------------------------------------------------------
# Worker: one (method, variant) in a fresh process.
# --------------------------------------------------------------------------------------------

def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def build(cfg: dict):
    """The model, the photo's input tensor and the walkthrough's target, as a notebook has them."""
    import torch
    import torch.nn.functional as F
    import torchvision

    from captum_helpers import load_image, preprocess

    if cfg["threads"]:
        torch.set_num_threads(cfg["threads"])
    if cfg["weights"] == "imagenet":
        from captum_helpers import load_model

        model = load_model("resnet18", verbose=False)
    else:
        torch.manual_seed(0)
        model = torchvision.models.resnet18()
    model = model.eval()
    _, input_img = preprocess(load_image(cfg["image"]))
    if cfg["size"] != input_img.shape[-1]:
        input_img = F.interpolate(input_img, size=(cfg["size"], cfg["size"]), mode="bilinear", align_corners=False)
    # The walkthrough's prediction (without building a graph: it is not what is measured).
    with torch.no_grad():
        output = F.softmax(model(input_img), dim=1)
    prediction_score, pred_label_idx = torch.topk(output, 1)
    pred_label_idx.squeeze_()
    return model, input_img, pred_label_idx


def worker(method: str, variant: str, runs: int, cfg: dict, out: Path, tag: str) -> None:
    """Build the model, run the call ``runs`` times, write ``{tag}.json`` (and ``{tag}.pt``, the attribution)."""
    import torch

    from captum_helpers.speed import fast_model

    model, input_img, pred_label_idx = build(cfg)
    if variant != "baseline":
        model = fast_model(model)
    autocast = (
        (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if variant == "bf16" else contextlib.nullcontext
    )
    with torch.no_grad(), autocast():  # warm-up: one image through the network
        model(input_img)
    rss_before = _rss_mb()
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        with autocast():
            attr = attribute(method, variant, model, input_img, pred_label_idx, cfg)
        times.append(time.perf_counter() - start)
        if result is None:
            result = attr.detach().float().contiguous().clone()
        del attr
    torch.save(result, out / f"{tag}.pt")
    info = {
        "times": times,
        "rss_before_mb": rss_before,
        "peak_mb": _peak_rss_mb(),
        "target": int(pred_label_idx),
        "threads": torch.get_num_threads(),
    }
    (out / f"{tag}.json").write_text(json.dumps(info))


# --------------------------------------------------------------------------------------------
# Main: run the workers one after another, compare, print the table.
# --------------------------------------------------------------------------------------------

def spearman(a, b) -> float:
    """Rank correlation of two attribution maps, summed over channels (what the heat maps show)."""
    import numpy as np

    def ranks(x):
        x = np.asarray(x, dtype=np.float64).ravel()
        r = np.empty(x.size)
        r[np.argsort(x, kind="stable")] = np.arange(x.size)
        return r

    a = a.sum(dim=1) if a.dim() == 4 else a
    b = b.sum(dim=1) if b.dim() == 4 else b
    ra, rb = ranks(a.numpy()), ranks(b.numpy())
    return float(np.corrcoef(ra, rb)[0, 1])


def compare(base, other) -> dict:
    diff = float((other - base).abs().max())
    scale = float(base.abs().max())
    return {"max_diff": diff, "rel_diff": diff / scale if scale else float("inf"), "spearman": spearman(base, other)}


def fmt_mb(mb: float) -> str:
    return f"{mb / 1024:.2f} GB" if mb >= 1024 else f"{mb:.0f} MB"


def fmt_s(s: float) -> str:
    return f"{s:.2f} s" if s < 10 else f"{s:.1f} s"


@contextlib.contextmanager
def busy_loops(n: int):
    """Keep ``n`` other processes spinning (pure Python loops) while the block runs."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def run_all(args: argparse.Namespace) -> int:
    cfg = {
        "image": str(args.image),
        "size": args.size,
        "n_steps": args.n_steps,
        "ig_batch": args.ig_batch,
        "occlusion_batch": args.occlusion_batch,
        "threads": args.threads,
        "weights": args.weights,
    }
    variants = ["baseline", "suite"] + (["bf16"] if args.bf16 else [])
    cfg["repeats"] = {
        m: {
            v: (
                args.baseline_occlusion_repeats if (m, v) == ("occlusion", "baseline")
                else max(args.repeats, 5) if m == "gradcam"
                else args.repeats
            )
            for v in variants
        }
        for m in args.methods
    }
    results: dict = {}
    load_before = os.getloadavg()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-attr-") as tmp:
        out = Path(tmp)
        (out / "cfg.json").write_text(json.dumps(cfg))
        import torch  # only to read the results; the measured work runs in the workers

        for method in args.methods:
            # Variants take turns, one run per fresh process, so that a change in the machine's
            # load hits them alike. GradCAM (0.03 s a call) does all its runs in one process.
            in_one = method == "gradcam"
            turns = {v: 1 if in_one else cfg["repeats"][method][v] for v in variants}
            for turn in range(max(turns.values())):
                for variant in variants:
                    if turn >= turns[variant]:
                        continue
                    runs = cfg["repeats"][method][variant] if in_one else 1
                    tag = f"{method}-{variant}-{turn}"
                    with busy_loops(args.busy):
                        proc = subprocess.run(
                            [sys.executable, __file__, "--worker", method, variant, str(runs), str(out), tag],
                            cwd=ROOT,
                        )
                        load = os.getloadavg()[0]
                    if proc.returncode != 0:
                        print(f"[bench] worker {tag} failed (exit {proc.returncode})", file=sys.stderr)
                        return 2
                    info = json.loads((out / f"{tag}.json").read_text())
                    print(f"[bench] {METHOD_NAMES[method]}, {variant}: "
                          + ", ".join(fmt_s(t) for t in info["times"])
                          + f"; peak {fmt_mb(info['peak_mb'])}; load {load:.1f}", file=sys.stderr, flush=True)
                    if (method, variant) not in results:
                        info["attr"] = torch.load(out / f"{tag}.pt")
                        info["loads"] = []
                        results[method, variant] = info
                    else:
                        r = results[method, variant]
                        r["times"] += info["times"]
                        r["peak_mb"] = max(r["peak_mb"], info["peak_mb"])
                        r["rss_before_mb"] = max(r["rss_before_mb"], info["rss_before_mb"])
                    results[method, variant]["loads"].append(load)
            for variant in variants:
                r = results[method, variant]
                r["median"] = statistics.median(r["times"])
                r["load"] = max(r["loads"])
    elapsed = time.perf_counter() - started
    load_after = os.getloadavg()

    # ---- the table ----
    threads = results[args.methods[0], "baseline"]["threads"]
    print()
    print(f"ResNet18 ({'random weights, torch.manual_seed(0)' if args.weights == 'random' else 'IMAGENET1K_V1 weights'}), "
          f"{Path(args.image).name} at {args.size}x{args.size}, n_steps={args.n_steps}, fp32 unless marked bf16; "
          f"torch {torch.__version__}, {threads} threads, {os.cpu_count()} CPUs ({platform.processor() or platform.machine()})")
    print(f"suite: fast_model(model) (eval + channels_last), IG internal_batch_size={args.ig_batch}, "
          f"Occlusion perturbations_per_eval={args.occlusion_batch}")
    if args.busy:
        print(f"busy: {args.busy} busy-loop process(es) ran beside every measured call")
    print()
    header = ["method", "variant", "runs", "time: median (min-max)", "peak RSS", "before call",
              "speed-up", "memory ratio", "max |diff|", "rel. diff", "rank corr.", "agrees", "load"]
    rows = []
    failures = []
    for method in args.methods:
        base = results[method, "baseline"]
        for variant in variants:
            r = results[method, variant]
            spread = f" ({min(r['times']):.{1 if min(r['times']) >= 10 else 2}f}-{fmt_s(max(r['times']))})" \
                if len(r["times"]) > 1 else ""
            row = [METHOD_NAMES[method], variant, str(len(r["times"])), fmt_s(r["median"]) + spread,
                   fmt_mb(r["peak_mb"]), fmt_mb(r["rss_before_mb"])]
            if variant == "baseline":
                row += ["1.00x", "1.00x", "", "", "", ""]
            else:
                c = compare(base["attr"], r["attr"])
                r["compare"] = c
                if variant == "suite":
                    ok = c["rel_diff"] <= RTOL
                    if not ok:
                        failures.append(method)
                    verdict = "yes" if ok else f"NO (> {RTOL:g})"
                else:
                    verdict = "(not checked)"
                row += [f"{base['median'] / r['median']:.2f}x", f"{base['peak_mb'] / r['peak_mb']:.2f}x",
                        f"{c['max_diff']:.1e}", f"{c['rel_diff']:.1e}", f"{c['spearman']:.4f}", verdict]
            row.append(f"{r['load']:.1f}")
            rows.append(row)
    for variant in variants[1:]:
        if len(args.methods) > 1:
            tb = sum(results[m, "baseline"]["median"] for m in args.methods)
            tv = sum(results[m, variant]["median"] for m in args.methods)
            rows.append(["all three" if len(args.methods) == 3 else "together", f"baseline / {variant}", "",
                         f"{fmt_s(tb)} / {fmt_s(tv)}", "", "", f"{tb / tv:.2f}x", "", "", "", "", "", ""])
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()
    print("time: wall clock of one call, median of the runs; each run in a fresh process after a one-image warm-up, "
          "baseline and suite taking turns (GradCAM: all runs in one process).")
    print("peak RSS: the largest ru_maxrss of those processes, each of which ran only that call "
          "(it includes 'before call': Python, torch, model, input).")
    print(f"agrees: max |suite - baseline| <= {RTOL:g} x max |baseline| (float32 rounding); "
          f"rank corr.: Spearman of the channel-summed maps.")
    print(f"load: highest 1-minute load average as the row's processes ended (includes --busy loops); "
          f"the machine's load before/after the benchmark: {load_before[0]:.2f} / {load_after[0]:.2f}; "
          f"benchmark wall time {elapsed:.0f} s")

    # ---- the targets (meaningful for the full run only) ----
    if set(args.methods) == set(METHODS) and args.size == 224 and args.n_steps == 200:
        occ = results["occlusion", "baseline"]["median"] / results["occlusion", "suite"]["median"]
        ig_t = results["ig", "baseline"]["median"] / results["ig", "suite"]["median"]
        ig_m = results["ig", "suite"]["peak_mb"]
        tb = sum(results[m, "baseline"]["median"] for m in METHODS)
        ts = sum(results[m, "suite"]["median"] for m in METHODS)
        checks = [
            (f"Occlusion >= 6x faster: {occ:.2f}x", occ >= 6),
            (f"Integrated Gradients peak <= 1.5 GB: {fmt_mb(ig_m)}", ig_m <= 1.5 * 1024),
            (f"Integrated Gradients no slower: {ig_t:.2f}x", ig_t >= 1),
            (f"all three >= 4x faster: {tb / ts:.2f}x", tb / ts >= 4),
        ]
        print("targets: " + "; ".join(f"{text} {'ok' if ok else 'MISSED'}" for text, ok in checks))
    else:
        print("targets: not checked (they apply to the full run: all methods, 224 px, n_steps=200)")
    if failures:
        print(f"AGREEMENT FAILED for: {', '.join(failures)}")
        return 1
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python bench/attributions.py",
        description="Time the walkthrough's attribution calls (baseline) against the notebooks' calls (suite).",
    )
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: --size 64 --n-steps 50 --repeats 1 (numbers not comparable to the full run)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="runs per call, the median is reported (default 3; GradCAM at least 5)")
    parser.add_argument("--baseline-occlusion-repeats", type=int, default=None,
                        help="runs of the walkthrough's occlusion (default 3; 1 with --quick, and with --busy, "
                             "where one run takes 1.5-3 minutes)")
    parser.add_argument("--busy", type=int, default=0, metavar="N",
                        help="run N busy-loop processes beside each measured call, like a laptop where "
                             "something else (a browser, another kernel) keeps a core busy (default 0)")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help=f"comma-separated subset of {','.join(METHODS)} (default: all)")
    parser.add_argument("--bf16", action="store_true",
                        help="also run the suite's calls under bf16 autocast and report agreement with fp32")
    parser.add_argument("--size", type=int, default=None, help="input size in pixels (default 224)")
    parser.add_argument("--n-steps", type=int, default=None, help="Integrated Gradients steps (default 200)")
    parser.add_argument("--ig-batch", type=int, default=DEFAULT_IG_BATCH,
                        help=f"suite: IG internal_batch_size (default {DEFAULT_IG_BATCH})")
    parser.add_argument("--occlusion-batch", type=int, default=DEFAULT_OCCLUSION_BATCH,
                        help=f"suite: Occlusion perturbations_per_eval (default {DEFAULT_OCCLUSION_BATCH})")
    parser.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--weights", choices=["random", "imagenet"], default="random",
                        help="ResNet18 weights: seeded random (default) or IMAGENET1K_V1 (cached/downloaded)")
    parser.add_argument("--image", type=Path, default=ROOT / "img" / "chelsea.png", help="photo (default img/chelsea.png)")
    args = parser.parse_args(argv)
    quick = args.quick
    args.size = args.size or (64 if quick else 224)
    args.n_steps = args.n_steps or (50 if quick else 200)
    args.repeats = args.repeats or (1 if quick else 3)
    # The walkthrough's occlusion takes 20-25 s on an idle 2-core machine, 1.5-3 minutes on a busy one.
    args.baseline_occlusion_repeats = args.baseline_occlusion_repeats or (1 if quick or args.busy else 3)
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown or not args.methods:
        parser.error(f"--methods: unknown {unknown}; choose from {','.join(METHODS)}")
    if min(args.repeats, args.baseline_occlusion_repeats, args.ig_batch, args.occlusion_batch, args.n_steps) < 1:
        parser.error("counts and batch sizes must be at least 1")
    if not 0 <= args.busy <= 8:
        parser.error("--busy must be between 0 and 8")
    if args.size < 16:
        parser.error("--size must be at least 16 (the occlusion window is 15 px)")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        method, variant, runs, out, tag = argv[1], argv[2], int(argv[3]), Path(argv[4]), argv[5]
        worker(method, variant, runs, json.loads((out / "cfg.json").read_text()), out, tag)
        return 0
    return run_all(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
