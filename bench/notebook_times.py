"""How long each course notebook takes, top to bottom in a fresh kernel: the numbers for the agenda.

    python bench/notebook_times.py                         # every notebook in notebooks/
    CAPTUM_HELPERS_MODEL=efficientnet_lite0 python bench/notebook_times.py
    python bench/notebook_times.py notebooks/02_integrated_gradients.ipynb

Each notebook runs in its own kernel, started in notebooks/, like a learner's Run All after a
restart; the time includes the kernel's start and its imports. The kernels inherit the
environment, so ``CAPTUM_HELPERS_MODEL`` picks the model. The table names the model each
notebook printed it used (``load_model``'s ``Model: ...`` line) and the kernel's peak memory
(its ``ru_maxrss``, read by one extra cell at the end). Times depend on the machine and on
what else runs on it: measure on an otherwise idle machine like the learners'.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import sys
from pathlib import Path
from typing import NamedTuple

import nbformat
from nbformat.v4 import new_code_cell

from captum_course.doctor import cpu_name
from captum_course.handouts import (CELL_TIMEOUT_S, NOTEBOOKS_DIR, course_notebooks,
                                    execute_notebook, model_in_use)

# The kernel's own high-water mark (Linux's VmHWM): ru_maxrss keeps, across exec, the RSS of the
# process that started the kernel, which can be the larger of the two.
PEAK_PROBE = ("import os, resource\n"
              "status = '/proc/self/status'\n"
              "hwm = ([l for l in open(status) if l.startswith('VmHWM:')]\n"
              "       if os.path.exists(status) else [])\n"
              "print('peak RSS kB:', int(hwm[0].split()[1]) if hwm\n"
              "      else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")


class Row(NamedTuple):
    notebook: str
    model: str
    seconds: float
    peak_mb: float | None
    status: str


def time_notebook(path: Path, timeout: int) -> Row:
    """Run one notebook (plus the memory probe cell) in a fresh kernel."""
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(new_code_cell(PEAK_PROBE))
    run = execute_notebook(path, timeout=timeout, notebook=nb)
    probe = "".join(o.get("text", "") for o in nb.cells[-1].get("outputs", []))
    match = re.search(r"peak RSS kB: (\d+)", probe)
    peak_mb = int(match.group(1)) / 1024 if match else None
    status = f"FAILED: {run.error}" if run.error else "ok"
    return Row(path.stem, model_in_use(run.notebook) or "-", run.seconds, peak_mb, status)


def table(rows: list[Row]) -> str:
    """A Markdown table: notebook, model, seconds, peak memory, status; then the total."""
    lines = ["| notebook | model | seconds | kernel peak memory | status |",
             "|---|---|---:|---:|---|"]
    for r in rows:
        peak = f"{r.peak_mb / 1024:.1f} GB" if r.peak_mb else "-"
        lines.append(f"| {r.notebook} | {r.model} | {r.seconds:.0f} | {peak} | {r.status} |")
    lines.append(f"| **total** | | **{sum(r.seconds for r in rows):.0f}** | | |")
    return "\n".join(lines)


def machine() -> str:
    """One line on where the numbers come from, to head the table in the instructor guide."""
    import torch

    model = os.environ.get("CAPTUM_HELPERS_MODEL") or "(unset: auto)"
    return (f"Measured with `make times` on {datetime.date.today()}: "
            f"{cpu_name()} ({platform.machine()}), {os.cpu_count()} cores, "
            f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"Python {platform.python_version()}, CAPTUM_HELPERS_MODEL={model}, "
            f"1-minute load average before the run {os.getloadavg()[0]:.2f}.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="notebooks to time (default: all of notebooks/)")
    parser.add_argument("--timeout", type=int, default=CELL_TIMEOUT_S,
                        help="seconds a cell may run")
    args = parser.parse_args(argv)
    paths = args.notebooks or course_notebooks(NOTEBOOKS_DIR)
    print(machine() + "\n", flush=True)
    rows = []
    for path in paths:
        rows.append(time_notebook(path, args.timeout))
        print(f"{path.stem}: {rows[-1].seconds:.1f} s, {rows[-1].status}", file=sys.stderr,
              flush=True)
    print(table(rows))
    print(f"\n1-minute load average after the run {os.getloadavg()[0]:.2f}.")
    return 1 if any(r.status != "ok" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
