"""The walkthrough's three attributions, as written, against the calls the notebooks make.

    # full run, report also written to a file
    python bench/attributions.py --markdown bench/results.md
    # smoke run: 64 px, 50 IG steps, one process
    python bench/attributions.py --quick

Per method, on the same model and photo: ``baseline`` is the walkthrough's call as written;
``suite`` the same call on ``fast_model(model)`` plus the batching arguments of
``captum_helpers.speed``; ``bf16`` (``--bf16``) the suite's call under bf16 autocast. Each run
of a call is a fresh process, so its peak RSS is that call's; baseline and suite take turns, so
a change in the machine's load hits both alike. bench/README.md explains the report.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam, Occlusion

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from captum_helpers import load_image, preprocess  # noqa: E402
from captum_helpers.speed import (INTEGRATED_GRADIENTS_BATCH, OCCLUSION_BATCH,  # noqa: E402
                                  fast_model, occlusion_windows)

METHODS = {"ig": "Integrated Gradients", "occlusion": "Occlusion", "gradcam": "Layer GradCAM"}
# max |suite - baseline| <= RTOL * max |baseline|. float32 rounding in another order (memory
# layout) moves the maps by ~1e-6 of their maximum, except where it flips a pre-activation that is
# zero up to rounding: that ReLU then passes or blocks its gradient (2e-4 of the IG map here). The
# walkthrough's own fp32 IG map differs from float64 by 1.2e-2 (max), so 1e-3 is float32 noise.
RTOL = 1e-3
WINDOW, STRIDES = (3, 15, 15), (3, 8, 8)


# The calls, the walkthrough's lines; ``batching`` is empty for the baseline.
def integrated_gradients(model, input_img, pred_label_idx, n_steps=200, **batching):
    integrated_gradients = IntegratedGradients(model)
    attributions_ig = integrated_gradients.attribute(input_img, target=pred_label_idx,
                                                     n_steps=n_steps, **batching)
    return attributions_ig


def occlusion(model, input_img, pred_label_idx, n_steps=None, **batching):
    occlusion = Occlusion(model)
    attributions_occ = occlusion.attribute(input_img,
                                           target=pred_label_idx,
                                           strides=STRIDES,
                                           sliding_window_shapes=WINDOW,
                                           baselines=0,
                                           **batching)
    return attributions_occ


def gradcam(model, input_img, pred_label_idx, n_steps=None):
    layer_gradcam = LayerGradCam(model, model.layer3[1].conv2)
    attributions_lgc = layer_gradcam.attribute(input_img, target=pred_label_idx)
    upsamp_attr_lgc = LayerAttribution.interpolate(attributions_lgc, input_img.shape[2:])
    return upsamp_attr_lgc


CALLS = {"ig": integrated_gradients, "occlusion": occlusion, "gradcam": gradcam}
# The argument the suite adds to each call; its value is cfg["ig_batch"] / cfg["occlusion_batch"].
SUITE_ARGUMENT = {"ig": "internal_batch_size", "occlusion": "perturbations_per_eval"}


def build(cfg: dict, fast: bool):
    """The model (through ``fast_model`` if ``fast``), the photo's input tensor and the
    walkthrough's target, as a notebook has them."""
    torch.manual_seed(0)
    model = torchvision.models.resnet18()  # random weights: time and memory do not depend on them
    model = fast_model(model) if fast else model.eval()
    _, input_img = preprocess(load_image(cfg["image"]))
    if cfg["size"] != input_img.shape[-1]:
        input_img = F.interpolate(input_img, size=(cfg["size"], cfg["size"]), mode="bilinear",
                                  align_corners=False)
    with torch.no_grad():  # the prediction, also the warm-up forward pass
        pred_label_idx = model(input_img).argmax(dim=1).squeeze()
    return model, input_img, pred_label_idx


def worker(method: str, variant: str, runs: int, cfg: dict) -> dict:
    """Build the model, run one call ``runs`` times and measure it (``method="rate"``: the rate
    for the float32 bound, seconds per image of batched forward passes of the suite's model)."""
    model, input_img, pred_label_idx = build(cfg, fast=variant != "baseline")
    info = {"before_mb": _rss_mb(), "threads": torch.get_num_threads(), "times": [], "attr": None}
    with torch.no_grad():
        for size in sorted({8, 16, 32, 64, cfg["occlusion_batch"]}) * 2 if method == "rate" else []:
            start = time.perf_counter()  # each size twice: the first round warms up
            model(input_img.expand(size, -1, -1, -1).contiguous())
            info["times"].append((time.perf_counter() - start) / size)
    suite = variant != "baseline" and method in SUITE_ARGUMENT
    extra = {SUITE_ARGUMENT[method]: cfg[f"{method}_batch"]} if suite else {}
    for _ in range(runs if method != "rate" else 0):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=variant == "bf16"):
            attr = CALLS[method](model, input_img, pred_label_idx, n_steps=cfg["n_steps"], **extra)
        info["times"].append(time.perf_counter() - start)
        info["attr"] = attr.detach().float().contiguous()
    # ru_maxrss: kB on Linux
    return {**info, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure(args: argparse.Namespace, cfg: dict, variants: list[str]) -> dict:
    """Run every (method, variant), each run in a fresh process (all in this one with ``--quick``),
    baseline and suite taking turns; merge the runs of each."""
    results: dict = {}
    rate = ["rate"] if "occlusion" in args.methods and not args.quick else []
    with tempfile.TemporaryDirectory(prefix="bench-attr-") as tmp:
        for method in args.methods + rate:
            runs = max(args.repeats, 5) if method == "gradcam" else args.repeats
            # GradCAM: 0.03 s, one process
            turns = ([("suite", 1)] if method == "rate"
                     else [(v, runs) for v in variants] if method == "gradcam"
                     else [(v, 1) for _ in range(runs) for v in variants])
            for variant, n in turns:
                if args.quick:
                    info = worker(method, variant, n, cfg)
                else:
                    torch.save(cfg, Path(tmp, "cfg.pt"))
                    subprocess.run([sys.executable, __file__, "--worker", method, variant, str(n),
                                    tmp], check=True)
                    info = torch.load(Path(tmp, "result.pt"))
                load = os.getloadavg()[0]
                print(f"[bench] {method}, {variant}: "
                      f"{', '.join(f'{t:.3g} s' for t in info['times'])}; load {load:.1f}",
                      file=sys.stderr, flush=True)
                r = results.setdefault((method, variant), {"times": [], "peak_mb": 0.0,
                                                           "before_mb": 0.0, "load": 0.0})
                r.update(attr=info["attr"], threads=info["threads"],
                         times=r["times"] + info["times"],
                         load=max(r["load"], load), peak_mb=max(r["peak_mb"], info["peak_mb"]),
                         before_mb=max(r["before_mb"], info["before_mb"]))
    for (method, variant), r in results.items():
        if method != "rate" and variant != "baseline":
            r["compare"] = compare(results[method, "baseline"]["attr"], r["attr"])
    return results


def compare(base, other) -> dict:
    """Largest difference, relative to the baseline's largest magnitude, and the rank correlation
    of the channel-summed maps (what the heat maps show)."""
    def ranks(t):
        return ((t.sum(dim=1) if t.dim() == 4 else t).flatten().argsort(stable=True).argsort()
                .double())

    diff, scale = float((other - base).abs().max()), float(base.abs().max())
    corr = float(torch.corrcoef(torch.stack([ranks(base), ranks(other)]))[0, 1])
    return {"max_diff": diff, "rel_diff": diff / scale if scale else float("inf"),
            "rank_corr": corr}


def fmt_mb(mb: float) -> str:
    return f"{mb / 1024:.2f} GB" if mb >= 1024 else f"{mb:.0f} MB"


def fmt_s(s: float) -> str:
    return f"{s:.2f} s" if s < 10 else f"{s:.1f} s"


def median(results: dict, method: str, variant: str) -> float:
    return statistics.median(results[method, variant]["times"])


def table(results: dict, methods: list[str], variants: list[str]) -> list[str]:
    """The comparison as Markdown table rows, from the measured numbers."""
    lines = ["| method | variant | runs | time: median (min-max) | peak RSS | before call | "
             "speed-up | memory ratio | max \\|diff\\| | rel. diff | rank corr. | agrees | load |",
             "|---" * 13 + "|"]
    for method in methods:
        base = results[method, "baseline"]
        for variant in variants:
            r, t = results[method, variant], median(results, method, variant)
            spread = (f" ({fmt_s(min(r['times']))[:-2]}-{fmt_s(max(r['times']))})"
                      if len(r["times"]) > 1 else "")
            cells = [METHODS[method], variant, str(len(r["times"])), fmt_s(t) + spread,
                     fmt_mb(r["peak_mb"]), fmt_mb(r["before_mb"]),
                     f"{median(results, method, 'baseline') / t:.2f}x",
                     f"{base['peak_mb'] / r['peak_mb']:.2f}x"]
            c = r.get("compare")
            verdict = "" if not c else "(not checked)" if variant != "suite" else \
                "yes" if c["rel_diff"] <= RTOL else f"NO (> {RTOL:g})"
            cells += ([f"{c['max_diff']:.1e}", f"{c['rel_diff']:.1e}", f"{c['rank_corr']:.4f}"]
                      if c else ["", "", ""])
            lines.append("| " + " | ".join(cells + [verdict, f"{r['load']:.1f}"]) + " |")
    for variant in variants[1:]:
        tb, tv = (sum(median(results, m, v) for m in methods) for v in ("baseline", variant))
        name = "all three" if len(methods) == 3 else "together"
        lines.append(f"| {name} | baseline / {variant} | | {fmt_s(tb)} / {fmt_s(tv)} | | | "
                     f"{tb / tv:.2f}x |" + " |" * 6)
    return lines


def targets(results: dict, windows: int) -> list[str]:
    """Today's goals, each PASS or MISSED, with the figures it compared."""
    rate = min(results["rate", "suite"]["times"])
    bound, occ = windows * rate, median(results, "occlusion", "suite")
    ig_peak = results["ig", "suite"]["peak_mb"]
    ig_speed = median(results, "ig", "baseline") / median(results, "ig", "suite")
    tb, ts = (sum(median(results, m, v) for m in METHODS) for v in ("baseline", "suite"))
    checks = [
        (occ <= 1.1 * bound, f"Occlusion within 1.1x of the float32 bound: {fmt_s(occ)} = "
                             f"{occ / bound:.2f}x the bound {fmt_s(bound)} ({windows} occluded "
                             f"forward passes at {rate * 1e3:.1f} ms/image, "
                             "the best batched rate in this run)"),
        (ig_peak <= 1.5 * 1024, f"Integrated Gradients peak RSS at most 1.5 GB: {fmt_mb(ig_peak)}"),
        (ig_speed >= 1, f"Integrated Gradients not slower than the walkthrough's: {ig_speed:.2f}x"),
        (tb > ts, "the three together faster than the walkthrough's: "
                  f"{fmt_s(tb)} / {fmt_s(ts)} = {tb / ts:.2f}x"),
    ]
    return ["targets:", ""] + [f"- {'PASS' if ok else 'MISSED'}: {text}" for ok, text in checks]


def report(args: argparse.Namespace, results: dict, variants: list[str],
           context: dict) -> list[str]:
    """The whole report as Markdown lines: where and how it ran, the table, its notes, the
    targets."""
    some = next(r for key, r in results.items() if key[0] != "rate")
    lines = [
        f"`{context['command']}` at commit {context['commit']}, {context['date']}; ResNet18 "
        f"(random weights, torch.manual_seed(0)), {args.image.name} at {args.size}x{args.size}, "
        f"n_steps={args.n_steps}, fp32 unless marked bf16; "
        f"torch {context['torch']}, {some['threads']} threads, {os.cpu_count()} CPUs "
        f"({platform.processor() or platform.machine()}); "
        f"load before/after {context['load_before']:.2f} / "
        f"{context['load_after']:.2f}; wall time {context['elapsed']:.0f} s",
        "",
        f"suite: `fast_model(model)`, IG `internal_batch_size={args.ig_batch}`, "
        f"Occlusion `perturbations_per_eval={args.occlusion_batch}`",
        "", *table(results, args.methods, variants), "",
        f"agrees: max \\|suite - baseline\\| <= {RTOL:g} x max \\|baseline\\|; "
        "the other columns: bench/README.md",
        "",
    ]
    if args.quick:
        return lines + ["smoke run (--quick): every call in one process, so peak RSS is that "
                        "process's running peak; numbers not comparable to the full run; "
                        "targets not checked"]
    if set(args.methods) != set(METHODS) or args.size != 224 or args.n_steps != 200:
        return lines + ["targets: not checked "
                        "(they apply to the full run: all methods, 224 px, n_steps=200)"]
    return lines + targets(results, occlusion_windows((3, args.size, args.size), WINDOW, STRIDES))


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python bench/attributions.py",
                                     description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--quick", action="store_true",
        help="smoke run: 64 px, 50 IG steps, one run each, all in one process")
    add("--markdown", type=Path, metavar="FILE", help="also write the report to FILE (Markdown)")
    add("--repeats", type=int,
        help="runs per call, median reported (default 3; GradCAM at least 5)")
    add("--methods", default=",".join(METHODS), help=f"a subset of {','.join(METHODS)}")
    add("--bf16", action="store_true", help="also run the suite's calls under bf16 autocast")
    add("--size", type=int, help="input size in pixels (default 224)")
    add("--n-steps", type=int, help="Integrated Gradients steps (default 200)")
    add("--ig-batch", type=int, default=INTEGRATED_GRADIENTS_BATCH,
        help="suite: IG internal_batch_size")
    add("--occlusion-batch", type=int, default=OCCLUSION_BATCH,
        help="suite: Occlusion perturbations_per_eval")
    add("--image", type=Path, default=ROOT / "img" / "chelsea.png",
        help="photo (default img/chelsea.png)")
    args = parser.parse_args(argv)
    args.size = args.size or (64 if args.quick else 224)
    args.n_steps = args.n_steps or (50 if args.quick else 200)
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not args.methods or not set(args.methods) <= set(METHODS):
        parser.error(f"--methods: choose from {','.join(METHODS)}")
    if min(args.repeats, args.ig_batch, args.occlusion_batch, args.n_steps) < 1:
        parser.error("counts and batch sizes must be at least 1")
    if args.size <= WINDOW[1]:
        parser.error(f"--size must be at least {WINDOW[1] + 1} "
                     f"(the occlusion window is {WINDOW[1]} px)")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        tmp = Path(argv[4])
        torch.save(worker(argv[1], argv[2], int(argv[3]), torch.load(tmp / "cfg.pt")),
                   tmp / "result.pt")
        return 0
    args = parse_args(argv)
    variants = ["baseline", "suite"] + (["bf16"] if args.bf16 else [])
    cfg = {k: getattr(args, k) for k in ("size", "n_steps", "ig_batch", "occlusion_batch", "quick")}
    cfg["image"] = str(args.image)
    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                         text=True)
    context = {"command": " ".join(["python bench/attributions.py", *argv]),
               "commit": git.stdout.strip() or "?",
               "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
               "torch": torch.__version__, "load_before": os.getloadavg()[0]}
    started = time.perf_counter()
    results = measure(args, cfg, variants)
    context.update(load_after=os.getloadavg()[0], elapsed=time.perf_counter() - started)
    text = "\n".join(report(args, results, variants, context)) + "\n"
    print("\n" + text, end="")
    if args.markdown:
        args.markdown.write_text(text)
    failed = [METHODS[m] for m in args.methods if results[m, "suite"]["compare"]["rel_diff"] > RTOL]
    if failed:
        print(f"AGREEMENT FAILED for: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
