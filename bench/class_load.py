"""A whole class on one machine: N simulated learners work through the course notebooks at once.

    python bench/class_load.py                                  # N = 1, 2, 4; every notebook; kernels left open
    python bench/class_load.py --learners 1 --notebooks 00 02   # a quick look: one learner, two notebooks
    python bench/class_load.py --shut                           # each kernel shut down after its notebook
    python bench/class_load.py --learners 1 --out bench/NAME    # also writes NAME.json and NAME.md

Each learner runs each notebook in a kernel of its own, with nbclient (the kernel JupyterLab
starts, cells run in order as Run All does, cells tagged ``raises-exception`` may fail),
started in notebooks/. In notebook 05 each learner then presses Fetch in the explorer, as the
notebook asks (``--fetches``, default 1; through the widget's traits, what the button does: the
page's default Integrated Gradients on the photos). The learners start each notebook together, as a class following the
instructor does, so the wall time of a notebook is what a learner waits when N learners share
this machine's cores. By default a learner never shuts a kernel, as JupyterLab leaves every
opened notebook's kernel running; with ``--shut`` each kernel is shut down after its notebook.

Memory is the RSS of each kernel and its child processes (what jupyter-resource-usage's meter
adds up), sampled every ``--interval`` seconds: the learner's peak is the largest sum over their
live kernels. Before a kernel is shut down the run measures what it gives back after
``gc.collect()`` and then after glibc's ``malloc_trim(0)``. CPU-seconds are the kernel's user +
system time. The kernels inherit the environment, so CAPTUM_HELPERS_MODEL picks the model.

The report names the machine, the torch build and the load, gives per-notebook figures, per-learner
memory and, from a one-learner run with every kernel open, a hub's sizing. The docs quote a named run.
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import psutil
from nbclient import NotebookClient

from captum_course.doctor import cpu_name
from captum_course.handouts import first_line, model_in_use
from captum_course.jupyter import server_command, wait_until_answers
from captum_course.lab import free_port

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS_DIR = ROOT / "notebooks"
GB = 1024**3
CELL_TIMEOUT_S = 900  # the slowest cell (Occlusion) with four learners on two cores
GC_PROBE = "import gc as _gc\n_gc.collect()"
EXPLORER = "insights = open_insights("  # notebook 05's cell that opens Captum Insights
FETCH = "insights.fetch()"  # its Fetch button, the page's defaults
TRIM_PROBE = "import ctypes as _ctypes\ntry:\n    _ctypes.CDLL('libc.so.6').malloc_trim(0)\nexcept (OSError, AttributeError):\n    pass"
# Sizing rules, stated in the report.
HEADROOM = 1.10  # limit = measured peak x 1.10, rounded up to whole GB
SYSTEM_RESERVE_GB = 2  # memory a hub server keeps for the OS, the hub and the proxy
SERVERS = [(4, 16), (8, 32), (16, 64), (32, 128), (64, 256)]  # (cores, GB) in the capacity table


def gb(n: float) -> str:
    return f"{n / GB:.2f} GB"


def tree_sum(proc: psutil.Process, read) -> float:
    """``read(p)`` added up over a process and its descendants; processes that are gone count 0."""
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        try:
            total += read(p)
        except psutil.Error:
            pass
    return total


def rss(p: psutil.Process) -> int:
    return p.memory_info().rss


def pss(p: psutil.Process) -> int:
    """Shared library pages divided among their users; RSS where the system has no PSS (overstates)."""
    try:
        return p.memory_full_info().pss
    except AttributeError:
        return rss(p)


def cpu(p: psutil.Process) -> float:
    return sum(p.cpu_times()[:4])  # user, system, children_user, children_system


@dataclass
class NotebookRun:
    """One learner's run of one notebook in its own kernel."""
    notebook: str
    wall_s: float = 0.0  # kernel start to last cell done
    cpu_s: float = 0.0
    peak: int = 0  # this kernel's largest sampled RSS, bytes
    kept: int = 0  # this kernel's RSS when its last cell is done
    learner_after: int = 0  # all the learner's live kernels when this notebook is done
    idle_before_probe: int | None = None  # RSS right before the probes
    after_gc: int | None = None  # ... after gc.collect()
    after_trim: int | None = None  # ... and then malloc_trim(0)
    model: str = "-"
    fetches: int = 0  # Fetches pressed in the notebook's explorer after its cells
    error: str | None = None


@dataclass
class Learner:
    index: int
    runs: list[NotebookRun] = field(default_factory=list)
    peak: int = 0  # largest sampled sum over live kernels
    final: int = 0  # sum over live kernels after the last notebook
    final_pss: int = 0
    live: dict = field(default_factory=dict, repr=False)  # notebook -> (kernel process, its run)

    def total(self, read=rss) -> int:
        return sum(tree_sum(proc, read) for proc, _ in list(self.live.values()))

    def sample(self) -> None:
        for proc, run in list(self.live.values()):
            run.peak = max(run.peak, tree_sum(proc, rss))
        self.peak = max(self.peak, self.total())


async def run_notebook(learner: Learner, path: Path, env: dict[str, str], cell_timeout: float, fetches: int = 1):
    """Start a kernel for ``path`` and run its cells, then press Fetch ``fetches`` times if it opens
    Captum Insights; return the run and its client, kernel still up."""
    run = NotebookRun(path.stem)
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=cell_timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    client.create_kernel_manager()
    start = time.monotonic()
    try:
        # the kernel's own log lines (e.g. ipykernel's warning about TCP) would drown the report
        await client.async_start_new_kernel(env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        learner.live[path.stem] = (psutil.Process(client.km.provisioner.pid), run)
        await client.async_start_new_kernel_client()
        for index, cell in enumerate(nb.cells):
            await client.async_execute_cell(cell, index)
        if any(cell.cell_type == "code" and EXPLORER in cell.source for cell in nb.cells):
            for _ in range(fetches):
                reply = await client.kc.execute_interactive(FETCH, timeout=cell_timeout, output_hook=lambda _: None)
                if reply["content"]["status"] != "ok":
                    raise RuntimeError(f"Fetch: {reply['content'].get('ename')}: {reply['content'].get('evalue')}")
                run.fetches += 1
    except Exception as err:  # noqa: BLE001: a cell's error, a timeout, a dead kernel; the class goes on
        run.error = first_line(err)
    run.wall_s = time.monotonic() - start
    if path.stem in learner.live:
        proc = learner.live[path.stem][0]
        run.cpu_s, run.kept = tree_sum(proc, cpu), tree_sum(proc, rss)
        run.peak = max(run.peak, run.kept)
    run.model = model_in_use(nb) or "-"
    return run, client


async def give_back(learner: Learner, client: NotebookClient, run: NotebookRun) -> None:
    """Measure what gc.collect() and malloc_trim(0) hand back, then shut the kernel down."""
    entry = learner.live.pop(run.notebook, None)
    try:
        if entry and client.kc is not None:
            proc = entry[0]
            run.idle_before_probe = tree_sum(proc, rss)
            for probe, attr in ((GC_PROBE, "after_gc"), (TRIM_PROBE, "after_trim")):
                reply = await client.kc.execute_interactive(probe, timeout=60, output_hook=lambda _: None)
                if reply["content"]["status"] != "ok":
                    raise RuntimeError(f"{reply['content'].get('ename')}: {reply['content'].get('evalue')}")
                setattr(run, attr, tree_sum(proc, rss))
    except Exception as err:  # noqa: BLE001: the probe failed; the kernel still goes
        run.error = run.error or f"probe: {first_line(err)}"
    finally:
        await client._async_cleanup_kernel()


async def simulate(n: int, paths: list[Path], keep_open: bool, env: dict[str, str], interval: float,
                   cell_timeout: float, fetches: int = 1) -> list[Learner]:
    """N learners through ``paths``, each notebook started by all of them together."""
    learners = [Learner(i + 1) for i in range(n)]
    open_kernels: list[tuple[Learner, NotebookClient, NotebookRun]] = []

    async def sampler() -> None:
        while True:
            for learner in learners:
                learner.sample()
            await asyncio.sleep(interval)

    async def one(learner: Learner, path: Path) -> None:
        run, client = await run_notebook(learner, path, env, cell_timeout, fetches)
        learner.runs.append(run)
        learner.sample()
        run.learner_after = learner.total()
        if keep_open and path.stem in learner.live:
            open_kernels.append((learner, client, run))
        else:
            await give_back(learner, client, run)

    sampling = asyncio.create_task(sampler())
    try:
        for path in paths:
            await asyncio.gather(*(one(learner, path) for learner in learners))
        for learner in learners:
            learner.final, learner.final_pss = learner.total(), learner.total(pss)
    finally:
        sampling.cancel()
        for learner, client, run in open_kernels:  # one at a time: nobody probes while others still compute
            await give_back(learner, client, run)
    return learners


def server_rss() -> int:
    """RSS of an idle JupyterLab server with the course's settings, its page loaded once: what each
    learner's server adds to their kernels (the memory meter and a hub's limit count it too)."""
    port, token = free_port(), os.urandom(16).hex()
    proc = subprocess.Popen(server_command("lab", NOTEBOOKS_DIR, port), env={**os.environ, "JUPYTER_TOKEN": token},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for page in ("api/status", "lab"):
            if not wait_until_answers(f"http://127.0.0.1:{port}/{page}?token={token}", proc, timeout=120):
                raise RuntimeError(f"JupyterLab did not answer on port {port} (exit status {proc.poll()})")
        return tree_sum(psutil.Process(proc.pid), rss)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --------------------------------------------------------------------------- sizing and report


@dataclass
class Sizing:
    """Per-learner figures for a hub, from a one-learner run by the rules in the report.

    The peaks include the learner's Jupyter server (``server``, bytes), as the meter and a hub's limit do."""
    server: int
    open_peak: int  # a learner who leaves every kernel open, bytes
    culled_peak: int  # a learner whose kernel of the previous notebook is still up, the rest culled
    shut_peak: int  # a learner who shuts each kernel after its notebook
    limit_gb: int
    guarantee_gb: int
    cpu_limit: float
    cpu_guarantee: float
    heaviest: str
    heaviest_cpu_s: float

    def learners_on(self, cores: int, memory_gb: int, per_learner_gb: float) -> int:
        by_cpu = math.floor(cores / self.cpu_guarantee)
        by_memory = math.floor((memory_gb - SYSTEM_RESERVE_GB) / per_learner_gb)
        return max(0, min(by_cpu, by_memory))


def sizing(alone: list[Learner], wait_s: float, cores: int, server: int = 0) -> Sizing:
    """The hub's per-learner numbers from the one-learner run (``alone``) and a server's RSS."""
    runs = [lr.runs for lr in alone]
    open_peak = server + max(lr.peak for lr in alone)
    shut_peak = server + max(r.peak for rs in runs for r in rs)
    # culled: the kernel of the notebook before is still up (idle less than the culling timeout)
    culled_peak = server + max(max((rs[k - 1].kept if k else 0) + rs[k].peak for k in range(len(rs))) for rs in runs)
    heaviest = max((r for rs in runs for r in rs), key=lambda r: r.cpu_s)
    used_cores = max(r.cpu_s / r.wall_s for rs in runs for r in rs if r.wall_s > 0)
    cpu_limit = float(min(cores, max(1, round(used_cores))))
    cpu_guarantee = min(cpu_limit, max(0.1, math.ceil(heaviest.cpu_s / wait_s * 10) / 10))
    def limit(peak: int) -> int:  # whole GB with headroom
        return max(1, math.ceil(peak * HEADROOM / GB))

    return Sizing(server, open_peak, culled_peak, shut_peak, limit(open_peak), limit(culled_peak), cpu_limit,
                  cpu_guarantee, heaviest.notebook, heaviest.cpu_s)


def machine(load_before: float, keep_open: bool, notebooks: list[str], extra_env: list[str], fetches: int = 1) -> dict:
    import torch

    build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU build"
    return {"date": str(datetime.date.today()), "cpu": cpu_name(), "cores": os.cpu_count(),
            "memory_gb": round(psutil.virtual_memory().total / GB), "system": platform.system(),
            "torch": f"torch {torch.__version__} ({build}, {torch.get_num_threads()} threads)",
            "python": platform.python_version(), "model": os.environ.get("CAPTUM_HELPERS_MODEL") or "unset",
            "notebooks": notebooks, "kernels": "left open" if keep_open else "shut after each notebook",
            "kernel_env": extra_env, "load_before": round(load_before, 2), "fetches": fetches}


def table(header: list[str], rows: list[list]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1),
            *("| " + " | ".join(map(str, row)) + " |" for row in rows)]


def markdown(results: dict[int, list[Learner]], s: Sizing | None, m: dict, wait_s: float) -> str:
    """The run as Markdown: where it ran, then its tables and the sizing that follows from them."""
    env = f"; kernel environment {' '.join(m['kernel_env'])}" if m["kernel_env"] else ""
    out = [f"Measured with `python bench/class_load.py` on {m['date']}: {m['cpu']}, {m['cores']} cores, "
           f"{m['memory_gb']} GB, {m['system']}; {m['torch']}, Python {m['python']}; CAPTUM_HELPERS_MODEL={m['model']}; "
           f"notebooks {', '.join(n.split('_')[0] for n in m['notebooks'])}; kernels {m['kernels']}{env}; "
           f"1-minute load average before the run {m['load_before']:.2f}; in notebook 05 each learner pressed "
           f"Fetch {m.get('fetches', 0)} time(s) after its cells (Integrated Gradients, n_steps 25, the photos).", ""]
    first = results[min(results)]
    runs = first[0].runs
    out += [f"**Learner 1 of {len(first)}** (N={len(first)}): each notebook's kernel, its CPU time, its peak RSS "
            "(with child processes), what it holds when its last cell is done, after `gc.collect()`, after glibc's "
            "`malloc_trim(0)`, and all the learner's live kernels together.", "",
            *table(["notebook", "model", "wall s", "CPU s", "kernel peak", "kept", "after gc.collect()",
                    "after gc + malloc_trim", "all the learner's kernels"],
                   [[r.notebook + (f" (FAILED: {r.error})" if r.error else ""), r.model, f"{r.wall_s:.0f}",
                     f"{r.cpu_s:.0f}", gb(r.peak), gb(r.kept), gb(r.after_gc) if r.after_gc is not None else "-",
                     gb(r.after_trim) if r.after_trim is not None else "-", gb(r.learner_after)] for r in runs]), ""]
    ns = sorted(results)
    walls = {n: [max(lr.runs[i].wall_s for lr in results[n]) for i in range(len(runs))] for n in ns}
    rows = [[r.notebook, *(f"{walls[n][i]:.0f} ({sum(lr.runs[i].cpu_s for lr in results[n]) / n:.0f})"
                           + (" FAILED" if any(lr.runs[i].error for lr in results[n]) else "") for n in ns)]
            for i, r in enumerate(runs)]
    rows.append(["**total**", *(f"**{sum(walls[n]):.0f}**" for n in ns)])
    out += [f"**N learners on these {m['cores']} cores**, every learner starting each notebook at the same moment "
            "(the slowest learner's wall time; in brackets the mean CPU-seconds of a learner's kernel):", "",
            *table(["notebook", *(f"N={n}: wall s (CPU s)" for n in ns)], rows), "",
            "**Memory per learner**: RSS is what the memory meter shows and a per-user limit must cover; PSS shares "
            "the libraries' pages among the kernels that map them, what the learners add up to on one server.", "",
            *table(["learners at once", "peak per learner (RSS)", "at the end (RSS)", "at the end (PSS)",
                    "largest single kernel"],
                   [[n, gb(max(lr.peak for lr in ls)), gb(max(lr.final for lr in ls)),
                     gb(max(lr.final_pss for lr in ls)), gb(max(r.peak for lr in ls for r in lr.runs))]
                    for n, ls in sorted(results.items())]), ""]
    if s is None:
        out.append("**Sizing** comes from a one-learner run with every kernel left open; this run is not one.")
        return "\n".join(out) + "\n"
    out += [f"**Sizing**, by these rules; each peak includes an idle JupyterLab server with the course's settings "
            f"({gb(s.server)}{', measured in the same run' if s.server else ', not measured'}):", "",
            f"* memory limit per learner = {HEADROOM:.2f} x the peak of a learner who leaves every kernel open "
            f"({gb(s.open_peak)}), rounded up: **{s.limit_gb} GB**;",
            f"* memory guarantee per learner = {HEADROOM:.2f} x the peak while the previous notebook's kernel is still "
            f"up and older ones were culled ({gb(s.culled_peak)}), rounded up: **{s.guarantee_gb} GB** (shutting "
            f"each kernel after its notebook: {gb(s.shut_peak)});",
            f"* CPU limit = the cores one kernel keeps busy alone (CPU s / wall s, rounded): **{s.cpu_limit:g}**; CPU "
            f"guarantee = the heaviest notebook's CPU time ({s.heaviest}, {s.heaviest_cpu_s:.0f} s) / {wait_s:.0f} s, "
            f"the longest a learner should wait for it when the whole class runs it at once: **{s.cpu_guarantee:g}**;",
            f"* a server takes min(cores / CPU guarantee, (GB - {SYSTEM_RESERVE_GB}) / memory per learner) learners.",
            "", *table(["server", "learners, idle kernels culled", "learners who leave every kernel open"],
                       [[f"{c} cores, {g} GB", s.learners_on(c, g, s.guarantee_gb), s.learners_on(c, g, s.limit_gb)]
                        for c, g in SERVERS])]
    return "\n".join(out) + "\n"


def pick_notebooks(prefixes: list[str] | None) -> list[Path]:
    """The course notebooks in order, or those whose names start with one of ``prefixes`` (e.g. 02)."""
    paths = sorted(NOTEBOOKS_DIR.glob("0*.ipynb"))
    if prefixes:
        paths = [p for p in paths if any(p.name.startswith(x) for x in prefixes)]
        missing = [x for x in prefixes if not any(p.name.startswith(x) for p in paths)]
        if missing:
            raise SystemExit(f"no notebook in {NOTEBOOKS_DIR} starts with {', '.join(missing)}")
    return paths


def kernel_env(extra: dict[str, str]) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if k != "JPY_PARENT_PID"}, "MPLBACKEND": "agg", **extra}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--learners", type=int, nargs="+", default=[1, 2, 4], help="class sizes to run, in turn")
    parser.add_argument("--notebooks", nargs="+", metavar="PREFIX", help="only these notebooks (e.g. 02 03 04)")
    parser.add_argument("--shut", dest="keep_open", action="store_false",
                        help="shut each kernel after its notebook (default: every kernel stays up to the end)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for the kernels, e.g. OMP_NUM_THREADS=1 (repeatable)")
    parser.add_argument("--wait", type=float, default=180.0,
                        help="seconds a learner may wait for the heaviest notebook when everyone runs it (CPU guarantee)")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between memory samples")
    parser.add_argument("--timeout", type=float, default=CELL_TIMEOUT_S, help="seconds a cell may run")
    parser.add_argument("--fetches", type=int, default=1, help="Fetches each learner presses in notebook 05")
    parser.add_argument("--no-server", action="store_true", help="leave out the Jupyter server's own memory")
    parser.add_argument("--out", type=Path, metavar="NAME", help="write the run to NAME.json and NAME.md")
    args = parser.parse_args(argv)
    if any(n < 1 for n in args.learners) or any("=" not in item for item in args.env):
        parser.error("--learners takes class sizes of 1 or more, --env NAME=VALUE")
    paths = pick_notebooks(args.notebooks)
    env = kernel_env(dict(item.split("=", 1) for item in args.env))
    m = machine(os.getloadavg()[0], args.keep_open, [p.stem for p in paths], args.env, args.fetches)
    server = 0 if args.no_server else server_rss()
    print(f"JupyterLab server, idle: {gb(server)}", file=sys.stderr, flush=True)
    results: dict[int, list[Learner]] = {}
    for n in sorted(set(args.learners)):
        started = time.monotonic()
        results[n] = asyncio.run(simulate(n, paths, args.keep_open, env, args.interval, args.timeout, args.fetches))
        print(f"N={n}: {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    s = sizing(results[1], args.wait, m["cores"], server) if args.keep_open and 1 in results else None
    text = markdown(results, s, m, args.wait)
    print(text)
    if args.out:
        data = {"machine": m, "wait_s": args.wait, "sizing": s and dataclasses.asdict(s),
                "learners": {n: [dataclasses.asdict(dataclasses.replace(lr, live={})) for lr in ls]
                             for n, ls in results.items()}}
        args.out.with_suffix(".json").write_text(json.dumps(data, indent=1, default=str) + "\n")
        args.out.with_suffix(".md").write_text(text)
    failed = [(lr.index, r.notebook, r.error) for ls in results.values() for lr in ls for r in lr.runs if r.error]
    for index, name, error in failed:
        print(f"learner {index}, {name}: {error}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
