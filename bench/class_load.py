"""A whole class on one machine: N simulated learners work through the course notebooks at once.

    python bench/class_load.py  # N = 1, 2, 4; every notebook; kernels left open
    python bench/class_load.py --learners 1 --notebooks 00 02  # a quick look at two notebooks
    python bench/class_load.py --learners 1 --out bench/NAME  # also writes NAME.json and NAME.md

Each learner runs each notebook in a kernel of its own started in notebooks/, with nbclient (the
kernel JupyterLab starts; cells run in order as Run All does, those tagged ``raises-exception`` may
fail); in notebook 05 it then presses Fetch in the explorer ``--fetches`` times, as the notebook
asks, through the widget's traits (what the button does: the page's default Integrated Gradients on
the photos). The learners start each notebook together, as a class following the instructor does, so
a notebook's wall time is what a learner waits when N learners share this machine's cores. By
default no kernel is shut down, as JupyterLab leaves every opened notebook's kernel running.

Memory is the RSS of each kernel and its child processes (what jupyter-resource-usage's meter adds
up), sampled every ``--interval`` seconds: the learner's peak is the largest sum over their live
kernels. Before a kernel is shut down the run measures what it gives back after ``gc.collect()`` and
then after glibc's ``malloc_trim(0)``. CPU-seconds are the kernel's user + system time. The kernels
inherit the environment, so CAPTUM_HELPERS_MODEL picks the model. The report names the machine, the
torch build and the load, gives per-notebook figures, per-learner memory and, from a one-learner run
with every kernel open, a hub's sizing.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import platform
import subprocess
import sys
import time
from argparse import ArgumentParser, Namespace, RawDescriptionHelpFormatter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import nbformat
import psutil
from nbclient import NotebookClient

from captum_course.doctor import cpu_name
from captum_course.handouts import first_line, model_in_use
from captum_course.jupyter import server_command, wait_until_answers
from captum_course.lab import free_port

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"
GB = 1024**3
CELL_TIMEOUT_S = 900  # the slowest cell (Occlusion) with four learners on two cores
QUIET = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}  # logs drown the report
GC_PROBE = "import gc as _gc\n_gc.collect()"
TRIM_PROBE = ("import ctypes as _ctypes\ntry:\n    _ctypes.CDLL('libc.so.6').malloc_trim(0)\n"
              "except (OSError, AttributeError):\n    pass")
EXPLORER = "insights = open_insights("  # notebook 05's cell that opens Captum Insights
FETCH = "insights.fetch()"  # its Fetch button, the page's defaults
# Sizing rules, stated in the report.
HEADROOM = 1.10  # limit = measured peak x 1.10, rounded up to whole GB
SYSTEM_RESERVE_GB = 2  # memory a hub server keeps for the OS, the hub and the proxy
SERVERS = [(4, 16), (8, 32), (16, 64), (32, 128), (64, 256)]  # (cores, GB) in the capacity table


def gb(n: float | None) -> str:
    return "-" if n is None else f"{n / GB:.2f} GB"


def tree_sum(proc: psutil.Process, read=None) -> float:
    """RSS (or ``read(p)``) added up over a process and its descendants; gone processes count 0."""
    total = 0
    with contextlib.suppress(psutil.Error):
        for p in [proc, *proc.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                total += read(p) if read else p.memory_info().rss
    return total


def pss(p: psutil.Process) -> int:
    """Shared library pages divided among their users; RSS where there is no PSS (overstates)."""
    info = p.memory_full_info()
    return getattr(info, "pss", info.rss)


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
    live: dict = field(default_factory=dict, repr=False)  # notebook -> (process, run, client)

    def total(self, read=None) -> int:
        return sum(tree_sum(proc, read) for proc, *_ in list(self.live.values()))

    def sample(self) -> None:
        for proc, run, _ in list(self.live.values()):
            run.peak = max(run.peak, tree_sum(proc))
        self.peak = max(self.peak, self.total())


async def execute(client: NotebookClient, code: str, timeout: float, what: str = "") -> None:
    """Run ``code`` in the client's kernel, its output dropped; raise if it fails."""
    reply = await client.kc.execute_interactive(code, timeout=timeout, output_hook=lambda _: None)
    content = reply["content"]
    if content["status"] != "ok":
        raise RuntimeError(f"{what}{content.get('ename')}: {content.get('evalue')}")


async def give_back(learner: Learner, client: NotebookClient, run: NotebookRun) -> None:
    """Measure what gc.collect() and malloc_trim(0) hand back, then shut the kernel down."""
    proc, *_ = learner.live.pop(run.notebook, (None,))
    try:
        if proc and client.kc is not None:
            run.idle_before_probe = tree_sum(proc)
            for probe, attr in ((GC_PROBE, "after_gc"), (TRIM_PROBE, "after_trim")):
                await execute(client, probe, 60)
                setattr(run, attr, tree_sum(proc))
    except Exception as err:  # noqa: BLE001 - the probe failed; the kernel still goes
        run.error = run.error or f"probe: {first_line(err)}"
    finally:
        await client._async_cleanup_kernel()


async def simulate(n: int, paths: list[Path], keep_open: bool, env: dict[str, str], interval: float,
                   cell_timeout: float, fetches: int = 1) -> list[Learner]:
    """N learners through ``paths``, each notebook started by all of them together."""
    learners = [Learner(i + 1) for i in range(n)]

    async def sampler() -> None:
        while True:
            for learner in learners:
                learner.sample()
            await asyncio.sleep(interval)

    async def run_notebook(learner: Learner, path: Path) -> None:
        run = NotebookRun(path.stem)
        nb = nbformat.read(path, as_version=4)
        client = NotebookClient(nb, timeout=cell_timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent)}})
        client.create_kernel_manager()
        start = time.monotonic()
        try:
            await client.async_start_new_kernel(env=env, **QUIET)
            learner.live[path.stem] = (psutil.Process(client.km.provisioner.pid), run, client)
            await client.async_start_new_kernel_client()
            for index, cell in enumerate(nb.cells):
                await client.async_execute_cell(cell, index)
            if any(cell.cell_type == "code" and EXPLORER in cell.source for cell in nb.cells):
                for _ in range(fetches):
                    await execute(client, FETCH, cell_timeout, "Fetch: ")
                    run.fetches += 1
        except Exception as err:  # noqa: BLE001 - a cell's error, a timeout, a dead kernel
            run.error = first_line(err)  # the class goes on
        run.wall_s = time.monotonic() - start
        if path.stem in learner.live:
            proc = learner.live[path.stem][0]
            run.cpu_s = tree_sum(proc, lambda p: sum(p.cpu_times()[:4]))  # user, system, children's
            run.kept = tree_sum(proc)
            run.peak = max(run.peak, run.kept)
        run.model = model_in_use(nb) or "-"
        learner.runs.append(run)
        learner.sample()
        run.learner_after = learner.total()
        if not (keep_open and path.stem in learner.live):
            await give_back(learner, client, run)

    sampling = asyncio.create_task(sampler())
    try:
        for path in paths:
            await asyncio.gather(*(run_notebook(learner, path) for learner in learners))
        for learner in learners:
            learner.final, learner.final_pss = learner.total(), learner.total(pss)
    finally:
        sampling.cancel()
        for learner in learners:  # one kernel at a time: no probes while others compute
            for _, run, client in list(learner.live.values()):
                await give_back(learner, client, run)
    return learners


def server_rss() -> int:
    """RSS of an idle JupyterLab server with the course's settings, its page loaded once: what each
    learner's server adds to their kernels (the memory meter and a hub's limit count it too)."""
    port, token = free_port(), os.urandom(16).hex()
    env = {**os.environ, "JUPYTER_TOKEN": token}
    proc = subprocess.Popen(server_command("lab", NOTEBOOKS_DIR, port), env=env, **QUIET)
    try:
        for page in ("api/status", "lab"):
            if not wait_until_answers(f"http://127.0.0.1:{port}/{page}?token={token}", proc, 120):
                raise RuntimeError(f"JupyterLab did not answer on port {port} "
                                   f"(exit status {proc.poll()})")
        return tree_sum(psutil.Process(proc.pid))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Sizing:
    """Per-learner figures for a hub by the rules in the report; the peaks include ``server``."""
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
        return max(0, min(math.floor(cores / self.cpu_guarantee),  # by CPU, by memory
                          math.floor((memory_gb - SYSTEM_RESERVE_GB) / per_learner_gb)))


def sizing(alone: list[Learner], wait_s: float, cores: int, server: int = 0) -> Sizing:
    """The hub's per-learner numbers from the one-learner run (``alone``) and a server's RSS."""
    runs = [r for lr in alone for r in lr.runs]
    open_peak, shut_peak = server + max(lr.peak for lr in alone), server + max(r.peak for r in runs)
    culled_peak = server + max(before.kept + r.peak for lr in alone
                               for before, r in zip([NotebookRun("-"), *lr.runs], lr.runs))
    heaviest = max(runs, key=lambda r: r.cpu_s)
    used_cores = max(r.cpu_s / r.wall_s for r in runs if r.wall_s > 0)
    cpu_limit = float(min(cores, max(1, round(used_cores))))
    cpu_guarantee = min(cpu_limit, max(0.1, math.ceil(heaviest.cpu_s / wait_s * 10) / 10))
    limit_gb, guarantee_gb = (max(1, math.ceil(peak * HEADROOM / GB))  # whole GB with headroom
                              for peak in (open_peak, culled_peak))
    return Sizing(server, open_peak, culled_peak, shut_peak, limit_gb, guarantee_gb, cpu_limit,
                  cpu_guarantee, heaviest.notebook, heaviest.cpu_s)


def machine(args: Namespace, notebooks: list[str]) -> dict:
    import torch

    build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU build"
    return {"date": time.strftime("%Y-%m-%d"), "cpu": cpu_name(), "cores": os.cpu_count(),
            "memory_gb": round(psutil.virtual_memory().total / GB), "system": platform.system(),
            "torch": f"torch {torch.__version__} ({build}, {torch.get_num_threads()} threads)",
            "python": platform.python_version(),
            "model": os.environ.get("CAPTUM_HELPERS_MODEL") or "unset", "notebooks": notebooks,
            "kernels": "left open" if args.keep_open else "shut after each notebook",
            "kernel_env": args.env, "load_before": round(os.getloadavg()[0], 2),
            "fetches": args.fetches}


def table(header: list[str], rows: list[list]) -> str:
    return "\n".join(["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1),
                      *("| " + " | ".join(map(str, row)) + " |" for row in rows)])


def markdown(results: dict[int, list[Learner]], s: Sizing | None, m: dict, wait_s: float) -> str:
    """The run as Markdown: where it ran, then its tables and the sizing that follows from them."""
    env = f"; kernel environment {' '.join(m['kernel_env'])}" if m["kernel_env"] else ""
    ns = sorted(results)
    runs = results[ns[0]][0].runs  # the notebooks, as learner 1 of the smallest class ran them
    walls = {n: [max(lr.runs[i].wall_s for lr in results[n]) for i in range(len(runs))] for n in ns}
    rows = [[r.notebook, *(f"{walls[n][i]:.0f} "
                           f"({sum(lr.runs[i].cpu_s for lr in results[n]) / n:.0f})"
                           + (" FAILED" if any(lr.runs[i].error for lr in results[n]) else "")
                           for n in ns)] for i, r in enumerate(runs)]
    blocks = [
        f"Measured with `python bench/class_load.py` on {m['date']}: {m['cpu']}, {m['cores']} "
        f"cores, {m['memory_gb']} GB, {m['system']}; {m['torch']}, Python {m['python']}; "
        f"CAPTUM_HELPERS_MODEL={m['model']}; notebooks "
        f"{', '.join(n.split('_')[0] for n in m['notebooks'])}; kernels {m['kernels']}{env}; "
        f"1-minute load average before the run {m['load_before']:.2f}; in notebook 05 each learner "
        f"pressed Fetch {m.get('fetches', 0)} time(s) after its cells (Integrated Gradients, "
        "n_steps 25, the photos).",
        f"**Learner 1 of {ns[0]}** (N={ns[0]}): each notebook's kernel, its CPU time, "
        "its peak RSS (with child processes), what it holds when its last cell is done, after "
        "`gc.collect()`, after glibc's `malloc_trim(0)`, and all the learner's live kernels "
        "together.",
        table(["notebook", "model", "wall s", "CPU s", "kernel peak", "kept", "after gc.collect()",
               "after gc + malloc_trim", "all the learner's kernels"],
              [[r.notebook + (f" (FAILED: {r.error})" if r.error else ""), r.model,
                f"{r.wall_s:.0f}", f"{r.cpu_s:.0f}", gb(r.peak), gb(r.kept), gb(r.after_gc),
                gb(r.after_trim), gb(r.learner_after)] for r in runs]),
        f"**N learners on these {m['cores']} cores**, every learner starting each notebook at the "
        "same moment (the slowest learner's wall time; in brackets the mean CPU-seconds of a "
        "learner's kernel):",
        table(["notebook", *(f"N={n}: wall s (CPU s)" for n in ns)],
              [*rows, ["**total**", *(f"**{sum(walls[n]):.0f}**" for n in ns)]]),
        "**Memory per learner**: RSS is what the memory meter shows and a per-user limit must "
        "cover; PSS shares the libraries' pages among the kernels that map them, what the "
        "learners add up to on one server.",
        table(["learners at once", "peak per learner (RSS)", "at the end (RSS)", "at the end (PSS)",
               "largest single kernel"],
              [[n, gb(max(lr.peak for lr in ls)), gb(max(lr.final for lr in ls)),
                gb(max(lr.final_pss for lr in ls)), gb(max(r.peak for lr in ls for r in lr.runs))]
               for n, ls in sorted(results.items())])]
    if s is None:
        blocks.append("**Sizing** comes from a one-learner run with every kernel left open; this "
                      "run is not one.")
    else:
        blocks += [
            f"**Sizing**, by these rules; each peak includes an idle JupyterLab server with the "
            f"course's settings ({gb(s.server)}"
            f"{', measured in the same run' if s.server else ', not measured'}):",
            f"* memory limit per learner = {HEADROOM:.2f} x the peak of a learner who leaves every "
            f"kernel open ({gb(s.open_peak)}), rounded up: **{s.limit_gb} GB**;\n"
            f"* memory guarantee per learner = {HEADROOM:.2f} x the peak while the previous "
            f"notebook's kernel is still up and older ones were culled ({gb(s.culled_peak)}), "
            f"rounded up: **{s.guarantee_gb} GB** (shutting each kernel after its notebook: "
            f"{gb(s.shut_peak)});\n"
            f"* CPU limit = the cores one kernel keeps busy alone (CPU s / wall s, rounded): "
            f"**{s.cpu_limit:g}**; CPU guarantee = the heaviest notebook's CPU time "
            f"({s.heaviest}, {s.heaviest_cpu_s:.0f} s) / {wait_s:.0f} s, the longest a learner "
            f"should wait for it when the whole class runs it at once: **{s.cpu_guarantee:g}**;\n"
            f"* a server takes min(cores / CPU guarantee, (GB - {SYSTEM_RESERVE_GB}) / memory per "
            "learner) learners.",
            table(["server", "learners, idle kernels culled",
                   "learners who leave every kernel open"],
                  [[f"{c} cores, {g} GB", s.learners_on(c, g, s.guarantee_gb),
                    s.learners_on(c, g, s.limit_gb)] for c, g in SERVERS])]
    return "\n\n".join(blocks) + "\n"


def pick_notebooks(prefixes: list[str] | None) -> list[Path]:
    """The course notebooks in order, or those whose names start with one of ``prefixes``."""
    paths = sorted(NOTEBOOKS_DIR.glob("0*.ipynb"))
    missing = [x for x in prefixes or [] if not any(p.name.startswith(x) for p in paths)]
    if missing:
        raise SystemExit(f"no notebook in {NOTEBOOKS_DIR} starts with {', '.join(missing)}")
    return [p for p in paths if not prefixes or p.name.startswith(tuple(prefixes))]


def kernel_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "JPY_PARENT_PID"}
    return {**env, "MPLBACKEND": "agg", **extra}


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__, formatter_class=RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--learners", type=int, nargs="+", default=[1, 2, 4], help="class sizes to run, in turn")
    add("--notebooks", nargs="+", metavar="PREFIX", help="only these notebooks (e.g. 02 03 04)")
    add("--shut", dest="keep_open", action="store_false",
        help="shut each kernel after its notebook (default: every kernel stays up to the end)")
    add("--env", action="append", default=[], metavar="NAME=VALUE",
        help="extra environment for the kernels, e.g. OMP_NUM_THREADS=1 (repeatable)")
    add("--wait", type=float, default=180.0, help="seconds a learner may wait for the heaviest "
        "notebook when everyone runs it (CPU guarantee)")
    add("--interval", type=float, default=0.5, help="seconds between memory samples")
    add("--timeout", type=float, default=CELL_TIMEOUT_S, help="seconds a cell may run")
    add("--fetches", type=int, default=1, help="Fetches each learner presses in notebook 05")
    add("--no-server", action="store_true", help="leave out the Jupyter server's own memory")
    add("--out", type=Path, metavar="NAME", help="write the run to NAME.json and NAME.md")
    args = parser.parse_args(argv)
    if any(n < 1 for n in args.learners) or any("=" not in item for item in args.env):
        parser.error("--learners takes class sizes of 1 or more, --env NAME=VALUE")
    paths = pick_notebooks(args.notebooks)
    env = kernel_env(dict(item.split("=", 1) for item in args.env))
    m = machine(args, [p.stem for p in paths])
    server = 0 if args.no_server else server_rss()
    print(f"JupyterLab server, idle: {gb(server)}", file=sys.stderr, flush=True)
    results: dict[int, list[Learner]] = {}
    for n in sorted(set(args.learners)):
        started = time.monotonic()
        results[n] = asyncio.run(simulate(n, paths, args.keep_open, env, args.interval,
                                          args.timeout, args.fetches))
        print(f"N={n}: {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    one_open = args.keep_open and 1 in results  # a learner alone, every kernel left open
    s = sizing(results[1], args.wait, m["cores"], server) if one_open else None
    text = markdown(results, s, m, args.wait)
    print(text)
    if args.out:
        data = {"machine": m, "wait_s": args.wait, "sizing": s and asdict(s), "learners": {
            n: [asdict(replace(lr, live={})) for lr in ls] for n, ls in results.items()}}
        args.out.with_suffix(".json").write_text(json.dumps(data, indent=1, default=str) + "\n")
        args.out.with_suffix(".md").write_text(text)
    failed = [(lr.index, r.notebook, r.error)
              for ls in results.values() for lr in ls for r in lr.runs if r.error]
    for index, name, error in failed:
        print(f"learner {index}, {name}: {error}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
