"""A whole class on one machine: N simulated learners work through the course notebooks at once.

    python bench/class_load.py                                  # N = 1, 2, 4; every notebook; kernels left open
    python bench/class_load.py --learners 1 --notebooks 00 02   # a quick look: one learner, two notebooks
    python bench/class_load.py --shut                           # each kernel shut down after its notebook
    python bench/class_load.py --update-docs                    # also rewrite the marked blocks of the guide and README

Each learner is a real Jupyter kernel per notebook (jupyter_client, the kernel JupyterLab starts),
started in notebooks/ with MPLBACKEND=agg, running the notebook's code cells in order. The
learners start each notebook together, as a class following the instructor does, so the wall
time of a notebook is what a learner waits when N learners share this machine's cores.
With ``--keep-open`` (default) a learner never shuts a kernel, as JupyterLab leaves every opened
notebook's kernel running; with ``--shut`` each kernel is shut down after its notebook.

Memory is the RSS of each kernel and its child processes (what jupyter-resource-usage's status
bar meter adds up), sampled every ``--interval`` seconds: the learner's peak is the largest sum
over their live kernels. Before a kernel is shut down the run measures what it gives back to the
operating system after ``gc.collect()`` and then after glibc's ``malloc_trim(0)``. CPU-seconds are
the kernel's user + system time. The kernels inherit the environment, so CAPTUM_HELPERS_MODEL picks
the model (unset: ResNet18 if its weights are cached, else the offline EfficientNet-Lite0).

The report (printed; ``--markdown FILE`` writes it) names the machine, the torch build and the
load, then gives per-notebook figures, per-learner memory, and the sizing derived from them:
a per-learner memory limit that covers a learner who leaves every kernel open, a guarantee
for a learner whose idle kernels are culled, CPU guarantee and limit, and how many learners a
server of C cores and M GB takes. ``--update-docs`` replaces the blocks between
``<!-- class_load:guide -->`` / ``<!-- /class_load:guide -->`` in docs/instructor.md and
``<!-- class_load:readme -->`` / ``<!-- /class_load:readme -->`` in README.md with it.
"""
from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import psutil
from jupyter_client import KernelManager

from captum_course.doctor import cpu_name

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS_DIR = ROOT / "notebooks"
GUIDE = ROOT / "docs" / "instructor.md"
SERVER_CONFIG = ROOT / "captum_course" / "jupyter_server_config.py"
README = ROOT / "README.md"
GB = 1024**3
CELL_TIMEOUT_S = 900  # the slowest cell (Occlusion) with four learners on two cores
RAISES_TAG = "raises-exception"  # cells nbval lets fail; so do we
# Run in each kernel before it is shut down; the kernel's RSS is read after each.
GC_PROBE = "import gc as _gc\n_gc.collect()"
TRIM_PROBE = "import ctypes as _ctypes\ntry:\n    _ctypes.CDLL('libc.so.6').malloc_trim(0)\nexcept (OSError, AttributeError):\n    pass"
# Sizing rules, stated in the report.
HEADROOM = 1.10  # limit = measured peak x 1.10, rounded up to whole GB
SYSTEM_RESERVE_GB = 2  # memory a hub server keeps for the OS, the hub and the proxy
SERVERS = [(4, 16), (8, 32), (16, 64), (32, 128), (64, 256)]  # (cores, GB) in the capacity table


def mb(n: float) -> str:
    return f"{n / 1024**2:,.0f} MB"


def gb(n: float) -> str:
    return f"{n / GB:.2f} GB"


# --------------------------------------------------------------------------- measuring


def tree_rss(proc: psutil.Process) -> int:
    """RSS of a process and its descendants, bytes (0 once it is gone)."""
    total = 0
    try:
        for p in [proc, *proc.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
    except psutil.Error:
        pass
    return total


def tree_pss(proc: psutil.Process) -> int:
    """Proportional set size of a process and its descendants: shared library pages divided among their users."""
    total = 0
    try:
        for p in [proc, *proc.children(recursive=True)]:
            try:
                total += p.memory_full_info().pss
            except (psutil.Error, AttributeError):
                total += p.memory_info().rss  # no PSS on this system: RSS overstates, never understates
    except psutil.Error:
        pass
    return total


def tree_cpu(proc: psutil.Process) -> float:
    """User + system CPU-seconds of a process and its descendants (including children that ended)."""
    total = 0.0
    try:
        for p in [proc, *proc.children(recursive=True)]:
            try:
                t = p.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
            except psutil.Error:
                pass
    except psutil.Error:
        pass
    return total


@dataclass
class NotebookRun:
    """One learner's run of one notebook in its own kernel."""
    notebook: str
    wall_s: float = 0.0  # kernel start to last cell done
    cpu_s: float = 0.0
    peak: int = 0  # this kernel's largest sampled RSS, bytes
    kept: int = 0  # this kernel's RSS when its last cell is done
    learner_after: int = 0  # all the learner's live kernels when this notebook is done
    after_gc: int | None = None  # this kernel's RSS before shut-down, after gc.collect()
    after_trim: int | None = None  # ... and then malloc_trim(0)
    idle_before_probe: int | None = None  # RSS right before the probes
    model: str = "-"
    error: str | None = None


@dataclass
class Learner:
    index: int
    runs: list[NotebookRun] = field(default_factory=list)
    live: dict[str, psutil.Process] = field(default_factory=dict)  # notebook -> kernel process
    peak: int = 0  # largest sampled sum over live kernels
    final: int = 0  # sum over live kernels after the last notebook
    final_pss: int = 0

    def total_rss(self) -> int:
        return sum(tree_rss(p) for p in list(self.live.values()))


class Sampler(threading.Thread):
    """Reads the learners' kernels' RSS every ``interval`` seconds, keeping each peak."""

    def __init__(self, learners: list[Learner], interval: float) -> None:
        super().__init__(daemon=True)
        self.learners, self.interval = learners, interval
        self.current: dict[tuple[int, str], NotebookRun] = {}  # (learner, notebook) -> its run
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def sample(self) -> None:
        with self.lock:
            for learner in self.learners:
                total = 0
                for name, proc in list(learner.live.items()):
                    rss = tree_rss(proc)
                    total += rss
                    run = self.current.get((learner.index, name))
                    if run is not None:
                        run.peak = max(run.peak, rss)
                learner.peak = max(learner.peak, total)

    def run(self) -> None:
        while not self.stopping.wait(self.interval):
            self.sample()


def server_rss(timeout: float = 120) -> int:
    """RSS of an idle JupyterLab server with the course's settings, its page loaded once: what each learner's
    server adds to their kernels (the memory meter and a hub's limit count it too)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    token = secrets.token_hex(16)
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
           "--ServerApp.port_retries=0", f"--ServerApp.root_dir={NOTEBOOKS_DIR}", "--LabApp.news_url=",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if SERVER_CONFIG.is_file():
        cmd.append(f"--config={SERVER_CONFIG}")
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    proc = subprocess.Popen(cmd, env={**os.environ, "JUPYTER_TOKEN": token}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout
        for page in ("api/status", "lab"):
            while True:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"JupyterLab did not answer on port {port} (exit status {proc.poll()})")
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/{page}?token={token}", timeout=10):
                        break
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    time.sleep(0.5)
        return tree_rss(psutil.Process(proc.pid))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def code_cells(path: Path) -> list[tuple[str, bool]]:
    """(source, may raise) for each non-empty code cell of the notebook, in order."""
    nb = nbformat.read(path, as_version=4)
    return [(c.source, RAISES_TAG in c.metadata.get("tags", [])) for c in nb.cells
            if c.cell_type == "code" and c.source.strip()]


def kernel_env(extra: dict[str, str]) -> dict[str, str]:
    env = {**os.environ, "MPLBACKEND": "agg", **extra}
    env.pop("JPY_PARENT_PID", None)
    return env


def execute(client, code: str, timeout: float, outputs: list[str] | None = None) -> str | None:
    """Run ``code`` in the kernel; the error as 'Name: value', or None when it ran."""
    def hook(msg):
        if outputs is not None and msg["msg_type"] == "stream":
            outputs.append(msg["content"]["text"])

    try:
        reply = client.execute_interactive(code, timeout=timeout, output_hook=hook, allow_stdin=False)
    except TimeoutError:
        return f"TimeoutError: a cell ran over {timeout:.0f} s"
    content = reply["content"]
    return None if content["status"] == "ok" else f"{content.get('ename')}: {content.get('evalue')}"


class Kernel:
    """A notebook's kernel, started like JupyterLab starts one, with its process for measuring."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.km = KernelManager(kernel_name="python3")
        # the kernel's own log lines (e.g. ipykernel's warning about TCP) would drown the report
        self.km.start_kernel(cwd=str(cwd), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.client = self.km.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=120)
        self.process = psutil.Process(self.km.provisioner.pid)

    def shutdown(self) -> None:
        self.client.stop_channels()
        self.km.shutdown_kernel(now=False)


def run_notebook(learner: Learner, path: Path, env: dict[str, str], sampler: Sampler,
                 cell_timeout: float) -> tuple[NotebookRun, Kernel | None]:
    """Start a kernel for ``path`` and run its code cells; the kernel stays up (the caller decides)."""
    run = NotebookRun(path.stem)
    start = time.monotonic()
    try:
        kernel = Kernel(env, path.parent)
    except Exception as err:  # noqa: BLE001: reported per notebook, the class goes on
        run.error, run.wall_s = f"kernel did not start: {err}", time.monotonic() - start
        return run, None
    with sampler.lock:
        learner.live[path.stem] = kernel.process
        sampler.current[(learner.index, path.stem)] = run
    printed: list[str] = []
    for source, may_raise in code_cells(path):
        error = execute(kernel.client, source, cell_timeout, printed)
        if error and not may_raise:
            run.error = error
            break
    run.wall_s = time.monotonic() - start
    run.cpu_s = tree_cpu(kernel.process)
    run.kept = tree_rss(kernel.process)
    run.peak = max(run.peak, run.kept)
    match = re.search(r"^Model: (\S+)", "".join(printed), re.MULTILINE)
    run.model = match.group(1) if match else "-"
    return run, kernel


def give_back(learner: Learner, kernel: Kernel, run: NotebookRun, sampler: Sampler) -> None:
    """Measure what gc.collect() and malloc_trim(0) hand back, then shut the kernel down."""
    try:
        run.idle_before_probe = tree_rss(kernel.process)
        if execute(kernel.client, GC_PROBE, 60) is None:
            run.after_gc = tree_rss(kernel.process)
            if execute(kernel.client, TRIM_PROBE, 60) is None:
                run.after_trim = tree_rss(kernel.process)
    finally:
        with sampler.lock:
            learner.live.pop(run.notebook, None)
            sampler.current.pop((learner.index, run.notebook), None)
        kernel.shutdown()


def simulate(n: int, paths: list[Path], keep_open: bool, env: dict[str, str], interval: float,
             cell_timeout: float) -> list[Learner]:
    """N learners through ``paths``, each notebook started by all of them together."""
    learners = [Learner(i + 1) for i in range(n)]
    sampler = Sampler(learners, interval)
    sampler.start()
    together = threading.Barrier(n)
    kernels: dict[int, list[tuple[Kernel, NotebookRun]]] = {lr.index: [] for lr in learners}

    def work(learner: Learner) -> None:
        try:
            follow_the_class(learner)
        except BaseException:
            together.abort()  # the others stop waiting for this learner
            raise

    def follow_the_class(learner: Learner) -> None:
        for path in paths:
            together.wait()
            run, kernel = run_notebook(learner, path, env, sampler, cell_timeout)
            learner.runs.append(run)
            sampler.sample()
            run.learner_after = learner.total_rss()
            if kernel is not None and keep_open:
                kernels[learner.index].append((kernel, run))
            elif kernel is not None:
                give_back(learner, kernel, run, sampler)
        learner.final = learner.total_rss()
        learner.final_pss = sum(tree_pss(p) for p in list(learner.live.values()))
        together.wait()  # nobody probes while others still measure their final memory
        for kernel, run in kernels[learner.index]:
            give_back(learner, kernel, run, sampler)

    threads = [threading.Thread(target=work, args=(lr,), name=f"learner-{lr.index}") for lr in learners]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sampler.stopping.set()
        sampler.join()
    return learners


# --------------------------------------------------------------------------- reporting


@dataclass
class Sizing:
    """Per-learner figures for a hub, derived from a run's numbers by the rules in the report.

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


def ceil_gb(n: float) -> int:
    return max(1, math.ceil(n / GB))


def sizing(alone: list[Learner], wait_s: float, cores: int, server: int = 0) -> Sizing:
    """The hub's per-learner numbers from the one-learner run (``alone``) and a server's RSS: see the report's rules."""
    runs = [lr.runs for lr in alone]
    open_peak = server + max(lr.peak for lr in alone)
    shut_peak = server + max(r.peak for rs in runs for r in rs)
    # culled: the kernel of the notebook before is still up (idle less than the culling timeout)
    culled_peak = server + max(max((rs[k - 1].kept if k else 0) + rs[k].peak for k in range(len(rs))) for rs in runs)
    heaviest = max((r for rs in runs for r in rs), key=lambda r: r.cpu_s)
    used_cores = max(r.cpu_s / r.wall_s for rs in runs for r in rs if r.wall_s > 0)
    cpu_limit = float(min(cores, max(1, round(used_cores))))
    cpu_guarantee = min(cpu_limit, max(0.1, math.ceil(heaviest.cpu_s / wait_s * 10) / 10))
    return Sizing(server, open_peak, culled_peak, shut_peak, ceil_gb(open_peak * HEADROOM), ceil_gb(culled_peak * HEADROOM),
                  cpu_limit, cpu_guarantee, heaviest.notebook, heaviest.cpu_s)


def torch_build() -> str:
    import torch

    build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU build"
    return f"torch {torch.__version__} ({build}, {torch.get_num_threads()} threads)"


def machine_line(load_before: float, keep_open: bool, notebooks: list[str]) -> str:
    cpu = cpu_name()
    model = os.environ.get("CAPTUM_HELPERS_MODEL") or "unset"
    return (f"Measured with `python bench/class_load.py` on {datetime.date.today()}: {cpu}, "
            f"{os.cpu_count()} cores, {psutil.virtual_memory().total / GB:.0f} GB, {platform.system()}; "
            f"{torch_build()}, Python {platform.python_version()}; CAPTUM_HELPERS_MODEL={model}; "
            f"notebooks {', '.join(n.split('_')[0] for n in notebooks)}; "
            f"kernels {'left open' if keep_open else 'shut after each notebook'}; "
            f"1-minute load average before the run {load_before:.2f}.")


def notebook_table(alone: list[Learner]) -> list[str]:
    lines = ["| notebook | model | wall s | CPU s | kernel peak | kept after the notebook | after gc.collect() "
             "| after gc + malloc_trim | all the learner's kernels |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    learner = alone[0]
    for r in learner.runs:
        gc_ = gb(r.after_gc) if r.after_gc is not None else "-"
        trim = gb(r.after_trim) if r.after_trim is not None else "-"
        status = f" (FAILED: {r.error})" if r.error else ""
        lines.append(f"| {r.notebook}{status} | {r.model} | {r.wall_s:.0f} | {r.cpu_s:.0f} | {gb(r.peak)} "
                     f"| {gb(r.kept)} | {gc_} | {trim} | {gb(r.learner_after)} |")
    return lines


def sharing_table(results: dict[int, list[Learner]], cores: int) -> list[str]:
    ns = sorted(results)
    lines = ["| notebook | " + " | ".join(f"N={n}: wall s (CPU s)" for n in ns) + " |",
             "|---|" + "---:|" * len(ns)]
    names = [r.notebook for r in results[ns[0]][0].runs]
    for i, name in enumerate(names):
        cells = []
        for n in ns:
            runs = [lr.runs[i] for lr in results[n] if i < len(lr.runs)]
            wall = max(r.wall_s for r in runs)
            cpu = sum(r.cpu_s for r in runs) / len(runs)
            cells.append(f"{wall:.0f} ({cpu:.0f})" + (" FAILED" if any(r.error for r in runs) else ""))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    totals = [sum(max(lr.runs[i].wall_s for lr in results[n] if i < len(lr.runs)) for i in range(len(names)))
              for n in ns]
    lines.append("| **total** | " + " | ".join(f"**{t:.0f}**" for t in totals) + " |")
    return lines


def memory_table(results: dict[int, list[Learner]], keep_open: bool) -> list[str]:
    lines = ["| learners at once | peak per learner (RSS) | at the end per learner (RSS) | at the end per learner (PSS) "
             "| largest single kernel |", "|---:|---:|---:|---:|---:|"]
    for n, learners in sorted(results.items()):
        peak = max(lr.peak for lr in learners)
        final = max(lr.final for lr in learners)
        pss = max(lr.final_pss for lr in learners)
        kernel = max(r.peak for lr in learners for r in lr.runs)
        lines.append(f"| {n} | {gb(peak)} | {gb(final) if keep_open else '-'} | {gb(pss) if keep_open else '-'} "
                     f"| {gb(kernel)} |")
    return lines


def guide_block(results: dict[int, list[Learner]], s: Sizing | None, keep_open: bool, header: str, wait_s: float,
                cores: int) -> str:
    first = results[min(results)]
    trims = [(r.idle_before_probe, r.after_gc, r.after_trim) for r in first[0].runs
             if r.idle_before_probe and r.after_trim is not None]
    before = sum(t[0] for t in trims)
    after_gc = sum(t[1] for t in trims)
    after_trim = sum(t[2] for t in trims)
    probed = (f"every kernel{'' if len(first) == 1 else ' of learner 1'}" if keep_open else
              f"each kernel of learner 1 as its notebook ended, summed over its {len(trims)} kernels "
              "(shut one after another, never all up at once)")
    out = [header, "",
           ("**One learner, notebook after notebook** (N=1)" if len(first) == 1 else
            f"**Learner 1 of {len(first)}, notebook after notebook** (N={len(first)})")
           + ": each notebook's kernel, its CPU time, its "
           "peak memory (RSS with child processes), what it still holds when its last cell is done, what it holds "
           "after `gc.collect()` and then glibc's `malloc_trim(0)`, and all the learner's live kernels together "
           + ("(every kernel left open, as JupyterLab does)." if keep_open else "(each kernel shut after its notebook)."),
           "", *notebook_table(first), "",
           f"`gc.collect()` then `malloc_trim(0)` on {probed}: {gb(before)} {'held ' if keep_open else ''}before, "
           f"{gb(after_gc)} after `gc.collect()`, {gb(after_trim)} after `malloc_trim(0)` "
           f"({(before - after_trim) / max(before, 1):.0%} handed back)." if trims else "",
           "",
           f"**N learners on these {cores} cores**, every learner starting each notebook at the same moment (the "
           "slowest learner's wall time; in brackets the CPU-seconds each learner's kernel used):", "",
           *sharing_table(results, cores), "",
           "**Memory per learner**: RSS is what JupyterLab's memory meter shows and what a per-user limit must "
           "cover; PSS shares the libraries' pages among the kernels that map them, what the learners add up to "
           "on one server.", "",
           *memory_table(results, keep_open), ""]
    if s is None:
        out.append("**Sizing** is derived from a one-learner run with every kernel left open (`--learners 1 ...` "
                   "without `--shut`); this run is not one, so it gives none.")
        return "\n".join(out)
    out += [f"**Sizing**, from the one-learner run by these rules; each peak includes the learner's idle JupyterLab "
            f"server with the course's settings ({gb(s.server)}, measured in the same run{'' if s.server else ': not measured'}):",
            "",
            f"* memory limit per learner = {HEADROOM:.2f} x the peak of a learner who leaves every kernel open "
            f"({gb(s.open_peak)}), rounded up: **{s.limit_gb} GB**;",
            f"* memory guarantee per learner = {HEADROOM:.2f} x the peak while the previous notebook's kernel is "
            f"still up and older ones were culled ({gb(s.culled_peak)}), rounded up: **{s.guarantee_gb} GB** "
            f"(shutting each kernel after its notebook: {gb(s.shut_peak)});",
            f"* CPU limit = the cores one kernel keeps busy alone (CPU s / wall s, rounded): **{s.cpu_limit:g}**; CPU "
            f"guarantee = the heaviest notebook's CPU time ({s.heaviest}, {s.heaviest_cpu_s:.0f} s) / {wait_s:.0f} s, "
            f"the longest a learner should wait for it when the whole class runs it at once: "
            f"**{s.cpu_guarantee:g}**;",
            f"* a server takes min(cores / CPU guarantee, (GB - {SYSTEM_RESERVE_GB}) / memory per learner) learners.",
            "", "| server | learners, idle kernels culled | learners who leave every kernel open |",
            "|---|---:|---:|"]
    for cores_, mem in SERVERS:
        out.append(f"| {cores_} cores, {mem} GB | {s.learners_on(cores_, mem, s.guarantee_gb)} "
                   f"| {s.learners_on(cores_, mem, s.limit_gb)} |")
    return "\n".join(line for line in out if line is not None)


def readme_block(s: Sizing, header: str) -> str:
    mem_limit = f"{s.limit_gb}G"
    return "\n".join([
        header, "",
        f"A learner who opens every notebook and never shuts a kernel peaks at {gb(s.open_peak)}; with idle "
        f"kernels culled, {gb(s.culled_peak)}. The heaviest notebook ({s.heaviest}) needs {s.heaviest_cpu_s:.0f} "
        "CPU-seconds. The limits below cover the first case; the guarantees the second (the instructor's guide, "
        "*Capacity*, explains the rules and how many learners a server takes).",
        "", "`sizing.yaml` for Zero to JupyterHub (add `--values sizing.yaml` after `--values config.yaml`; "
        "Helm merges the two):", "",
        "```yaml",
        "singleuser:",
        "  memory:",
        f"    guarantee: {s.guarantee_gb}G",
        f"    limit: {mem_limit}",
        "  cpu:",
        f"    guarantee: {s.cpu_guarantee:g}",
        f"    limit: {s.cpu_limit:g}",
        "  extraEnv:",
        f"    OMP_NUM_THREADS: \"{int(s.cpu_limit)}\"  # PyTorch otherwise starts a thread per core of the node",
        "cull:  # jupyterhub-idle-culler: stop servers nobody has used for an hour",
        "  enabled: true",
        "  timeout: 3600",
        "  every: 300",
        "```", "",
        "The Littlest JupyterHub (as root):", "",
        "```sh",
        f"tljh-config set limits.memory {mem_limit}",
        f"tljh-config set limits.cpu {s.cpu_limit:g}",
        "tljh-config set services.cull.timeout 3600",
        "tljh-config reload",
        "```",
    ])


def report(results: dict[int, list[Learner]], keep_open: bool, load_before: float, wait_s: float,
           server: int = 0) -> tuple[str, str | None]:
    """(guide block, README block) as Markdown; the sizing and the README block need a
    one-learner run with every kernel left open (None otherwise)."""
    cores = os.cpu_count() or 1
    header = machine_line(load_before, keep_open, [r.notebook for r in results[min(results)][0].runs])
    s = sizing(results[1], wait_s, cores, server) if keep_open and 1 in results else None
    return guide_block(results, s, keep_open, header, wait_s, cores), s and readme_block(s, header)


def versus_table(plain: Learner, tuned: Learner, setting: str) -> list[str]:
    """One learner's notebooks without and with ``setting`` in the kernels' environment, same run."""
    lines = [f"**One learner without and with `{setting}`** in the kernels' environment (same run, one after the "
             "other; wall time and CPU time ratios are with / without):", "",
             "| notebook | wall s without | wall s with | ratio | CPU s ratio | kernel peak without | with "
             "| kept after the notebook without | with |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for a, b in zip(plain.runs, tuned.runs):
        lines.append(f"| {a.notebook} | {a.wall_s:.0f} | {b.wall_s:.0f} | {b.wall_s / max(a.wall_s, 1e-9):.2f} "
                     f"| {b.cpu_s / max(a.cpu_s, 1e-9):.2f} | {gb(a.peak)} | {gb(b.peak)} | {gb(a.kept)} | {gb(b.kept)} |")
    lines.append(f"| **learner's peak** | | | | | {gb(plain.peak)} | {gb(tuned.peak)} | | |")
    return lines


def replace_block(text: str, name: str, body: str) -> str:
    """``text`` with what lies between ``<!-- class_load:NAME -->`` and ``<!-- /class_load:NAME -->`` replaced."""
    start, end = f"<!-- class_load:{name} -->", f"<!-- /class_load:{name} -->"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if not pattern.search(text):
        raise ValueError(f"no {start} ... {end} block")
    return pattern.sub(lambda _: f"{start}\n{body}\n{end}", text, count=1)


def pick_notebooks(prefixes: list[str] | None) -> list[Path]:
    """The course notebooks in order, or those whose names start with one of ``prefixes`` (e.g. 02)."""
    paths = sorted(NOTEBOOKS_DIR.glob("0*.ipynb"))
    if prefixes:
        paths = [p for p in paths if any(p.name.startswith(x) for x in prefixes)]
        missing = [x for x in prefixes if not any(p.name.startswith(x) for p in paths)]
        if missing:
            raise SystemExit(f"no notebook in {NOTEBOOKS_DIR} starts with {', '.join(missing)}")
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--learners", type=int, nargs="+", default=[1, 2, 4], help="class sizes to run, in turn")
    parser.add_argument("--notebooks", nargs="+", metavar="PREFIX", help="only these notebooks (e.g. 02 03 04)")
    kernels = parser.add_mutually_exclusive_group()
    kernels.add_argument("--keep-open", dest="keep_open", action="store_true", default=True,
                         help="leave every kernel running until the last notebook is done (default)")
    kernels.add_argument("--shut", dest="keep_open", action="store_false", help="shut each kernel after its notebook")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for the kernels, e.g. OMP_NUM_THREADS=1 (repeatable)")
    parser.add_argument("--versus", metavar="NAME=VALUE",
                        help="run one more learner with this in the kernels' environment and compare with N=1, "
                             "e.g. MALLOC_TRIM_THRESHOLD_=1048576")
    parser.add_argument("--wait", type=float, default=180.0,
                        help="seconds a learner may wait for the heaviest notebook when everyone runs it (CPU guarantee)")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between memory samples")
    parser.add_argument("--timeout", type=float, default=CELL_TIMEOUT_S, help="seconds a cell may run")
    parser.add_argument("--no-server", action="store_true",
                        help="leave out the Jupyter server's own memory (measured once by starting JupyterLab)")
    parser.add_argument("--markdown", type=Path, help="also write the report here")
    parser.add_argument("--update-docs", action="store_true",
                        help="rewrite the class_load blocks of docs/instructor.md and README.md")
    args = parser.parse_args(argv)
    if any(n < 1 for n in args.learners):
        parser.error("--learners takes class sizes of 1 or more")
    if args.update_docs and (not args.keep_open or 1 not in args.learners):
        parser.error("--update-docs rewrites the sizing, which comes from one learner who keeps every kernel open: "
                     "include 1 in --learners and leave out --shut")
    if args.versus and (1 not in args.learners or "=" not in args.versus):
        parser.error("--versus takes NAME=VALUE and compares with the one-learner run: include 1 in --learners")
    paths = pick_notebooks(args.notebooks)
    extra = dict(item.split("=", 1) for item in args.env)
    env = kernel_env(extra)
    load_before = os.getloadavg()[0]
    server = 0 if args.no_server else server_rss()
    print(f"JupyterLab server, idle: {gb(server)}", file=sys.stderr, flush=True)
    results: dict[int, list[Learner]] = {}
    for n in sorted(set(args.learners)):
        started = time.monotonic()
        results[n] = simulate(n, paths, args.keep_open, env, args.interval, args.timeout)
        worst = max(lr.peak for lr in results[n])
        print(f"N={n}: {time.monotonic() - started:.0f} s, peak per learner {gb(worst)}", file=sys.stderr, flush=True)
    guide, readme = report(results, args.keep_open, load_before, args.wait, server)
    if extra:  # both blocks name it: the sizing depends on it
        guide, readme = (block and block.replace(" 1-minute load", f" kernel environment {' '.join(args.env)}; 1-minute load", 1)
                         for block in (guide, readme))
    if args.versus:
        name, value = args.versus.split("=", 1)
        tuned = simulate(1, paths, args.keep_open, {**env, name: value}, args.interval, args.timeout)
        results[0] = tuned  # its failures count too
        guide += "\n\n" + "\n".join(versus_table(results[1][0], tuned[0], args.versus))
    text = f"{guide}\n\n{readme}\n" if readme else f"{guide}\n"
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    if args.update_docs:
        GUIDE.write_text(replace_block(GUIDE.read_text(), "guide", guide))
        README.write_text(replace_block(README.read_text(), "readme", readme))
        print(f"updated {GUIDE.relative_to(ROOT)} and {README.relative_to(ROOT)}", file=sys.stderr)
    failed = [(lr.index, r.notebook, r.error) for ls in results.values() for lr in ls for r in lr.runs if r.error]
    for index, name, error in failed:
        print(f"learner {index}, {name}: {error}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
