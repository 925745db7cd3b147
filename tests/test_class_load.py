"""A class on one server: simulated learners run the attribution notebooks at once within the
hub guide's per-learner memory limit (bench/class_load.py); docs/hub.md quotes the named run's
sizing; the simulator writes its measurements as JSON and Markdown."""
from __future__ import annotations

import asyncio
import importlib.util
import json
import re
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("bench_class_load",
                                               ROOT / "bench" / "class_load.py")
class_load = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = class_load  # its dataclasses look their module up there
_spec.loader.exec_module(class_load)

GB = 1024**3
LOAD_LEARNERS = 2  # on CI's 2 cores, one thread each, as the hub guide's settings give every kernel
# Layer GradCAM: an attribution notebook that runs in seconds, so that CI stays short
LOAD_NOTEBOOKS = ["04"]
# a kernel may peak this much above the named run's figure before the sizing is stale
HEADROOM = 1.25


# the run the hub guide's sizing quotes
NAMED_RUN = ROOT / "bench" / "class_load.md"
HUB_GUIDE = ROOT / "docs" / "hub.md"


def hub_sizing() -> dict[str, str]:
    """The hub guide's Zero to JupyterHub and TLJH sizing: memory guarantee and limit, CPU
    guarantee and limit."""
    readme = HUB_GUIDE.read_text()
    memory = re.search(r"memory:\s*\n\s*guarantee: (\d+)G\s*\n\s*limit: (\d+)G", readme)
    cpu = re.search(r"cpu:\s*\n\s*guarantee: ([\d.]+)\s*\n\s*limit: ([\d.]+)", readme)
    assert memory and cpu, ("the hub guide's sizing has no singleuser memory and cpu guarantee "
                            "and limit")
    tljh = re.search(r"tljh-config set limits\.memory (\d+)G\ntljh-config set limits\.cpu ([\d.]+)",
                     readme)
    assert tljh and tljh.groups() == (memory.group(2), cpu.group(2)), (
        "TLJH's limits differ from Zero to JupyterHub's")
    return dict(guarantee_gb=memory.group(1), limit_gb=memory.group(2), cpu_guarantee=cpu.group(1),
                cpu_limit=cpu.group(2))


def test_the_hub_guide_quotes_the_named_runs_sizing():
    readme, run = HUB_GUIDE.read_text(), NAMED_RUN.read_text()
    date = re.match(r"Measured with `python bench/class_load.py` on (\d{4}-\d\d-\d\d)",
                    run).group(1)
    assert (f"From `bench/class_load.md`, measured with `python bench/class_load.py` on {date}"
            in readme)
    named = dict(
        limit_gb=re.search(r"memory limit per learner = .*?\*\*(\d+) GB\*\*", run).group(1),
        guarantee_gb=re.search(r"memory guarantee per learner = .*?\*\*(\d+) GB\*\*", run).group(1),
        cpu_limit=re.search(r"CPU limit = .*?\*\*([\d.]+)\*\*", run).group(1),
        cpu_guarantee=re.search(r"CPU guarantee = .*?\*\*([\d.]+)\*\*", run).group(1))
    assert hub_sizing() == named


def test_learners_run_the_attribution_notebooks_together_within_the_documented_limit(tmp_path):
    limit = int(hub_sizing()["limit_gb"])
    env = class_load.kernel_env({"CAPTUM_HELPERS_MODEL": "efficientnet_lite0",
                                 "IPYTHONDIR": str(tmp_path / "ipython"), "OMP_NUM_THREADS": "1"})
    paths = class_load.pick_notebooks(LOAD_NOTEBOOKS)
    learners = asyncio.run(class_load.simulate(LOAD_LEARNERS, paths, keep_open=True, env=env,
                                               interval=0.5, cell_timeout=600))

    errors = [(lr.index, r.notebook, r.error) for lr in learners for r in lr.runs if r.error]
    assert not errors
    for learner in learners:
        assert [r.notebook for r in learner.runs] == [p.stem for p in paths]
        assert {r.model for r in learner.runs} == {"efficientnet_lite0"}
        # every kernel stayed up to the end: the learner's memory is all of them together
        assert learner.runs[-1].learner_after >= sum(r.kept for r in learner.runs) * 0.9
        assert learner.peak <= limit * GB, (f"learner {learner.index} peaked at "
                                            f"{learner.peak / GB:.2f} GB")
        assert all(r.after_gc is not None and r.cpu_s > 0 for r in learner.runs)
        # the sizing assumed the named run's kernels: a notebook grown past them makes it stale
        for r in learner.runs:
            named_peak = float(re.search(rf"^\| {r.notebook} \| \S+ \| \d+ \| \d+ \| ([\d.]+) GB",
                                         NAMED_RUN.read_text(), re.MULTILINE).group(1))
            assert r.peak <= named_peak * HEADROOM * GB, (f"{r.notebook}: {r.peak / GB:.2f} GB, "
                                                          f"named run {named_peak} GB")


def given_learner(peaks_kept: list[tuple[float, float]], cpu_wall: list[tuple[float, float]],
                  peak: float):
    """A Learner from given numbers: (peak, kept) GB and (CPU s, wall s) per notebook, the
    learner's peak GB."""
    runs = [class_load.NotebookRun(f"0{i}_nb", wall_s=w, cpu_s=c, peak=int(p * GB),
                                   kept=int(k * GB))
            for i, ((p, k), (c, w)) in enumerate(zip(peaks_kept, cpu_wall))]
    return class_load.Learner(1, runs=runs, peak=int(peak * GB))


def test_sizing_rules_from_given_numbers():
    alone = [given_learner([(0.9, 0.85), (1.5, 1.0), (1.2, 1.1)], [(10, 8), (120, 70), (40, 30)],
                           peak=3.3)]
    s = class_load.sizing(alone, wait_s=180, cores=2)
    assert s.limit_gb == 4  # 3.3 GB x 1.10 = 3.63, rounded up
    # notebook 1's peak beside notebook 0's kernel
    assert s.culled_peak == int(0.85 * GB) + int(1.5 * GB)
    assert s.guarantee_gb == 3  # 2.35 x 1.10 = 2.59
    assert s.shut_peak == int(1.5 * GB)
    # 120 / 70 = 1.7 cores; 120 / 180
    assert (s.heaviest, s.cpu_limit, s.cpu_guarantee) == ("01_nb", 2.0, 0.7)
    # 16 cores / 0.7 = 22; (64 - 2) GB / 3 = 20; / 4 = 15
    assert s.learners_on(16, 64, s.guarantee_gb) == 20 and s.learners_on(16, 64, s.limit_gb) == 15


def test_a_run_writes_its_measurements_as_json_and_markdown(tmp_path, monkeypatch):
    """One learner on a tiny notebook: the report's tables and the JSON carry the same run."""
    course = tmp_path / "notebooks"
    course.mkdir()
    nbformat.write(new_notebook(cells=[
        new_code_cell("print('Model: tiny (a test)')"),
        new_code_cell("1 / 0", metadata={"tags": ["raises-exception"]}),
        new_code_cell("x = bytearray(50 * 2**20)")]), course / "00_tiny.ipynb")
    monkeypatch.setattr(class_load, "NOTEBOOKS_DIR", course)
    out = tmp_path / "run"
    assert class_load.main(["--learners", "1", "--no-server", "--interval", "0.1", "--out",
                            str(out)]) == 0
    data = json.loads(out.with_suffix(".json").read_text())
    run = data["learners"]["1"][0]["runs"][0]
    assert run["notebook"] == "00_tiny" and run["model"] == "tiny" and run["error"] is None
    assert run["kept"] > 50 * 2**20 and run["peak"] >= run["kept"] and run["cpu_s"] > 0
    assert run["after_gc"] is not None and run["after_trim"] is not None
    assert data["sizing"]["limit_gb"] >= 1 and data["sizing"]["heaviest"] == "00_tiny"
    report = out.with_suffix(".md").read_text()
    assert report.startswith("Measured with `python bench/class_load.py` on "
                             f"{data['machine']['date']}")
    assert f"| 00_tiny | tiny | {run['wall_s']:.0f} | {run['cpu_s']:.0f} |" in report
    assert f"rounded up: **{data['sizing']['limit_gb']} GB**" in report


def test_in_a_notebook_that_opens_insights_each_learner_presses_fetch(tmp_path):
    """The simulator presses Fetch in notebook 05's explorer (``insights``) after its cells, as a
    learner does: the memory it measures includes the explorer in use."""
    from explorers import MAKE_VISUALIZER

    course = tmp_path / "notebooks"
    course.mkdir()
    opening = MAKE_VISUALIZER + ("from captum_explorer import open_insights\n"
                                 "insights = open_insights(make('a'))")
    nbformat.write(new_notebook(cells=[new_code_cell(opening)]), course / "05_tiny.ipynb")
    env = class_load.kernel_env({"IPYTHONDIR": str(tmp_path / "ipython")})
    (learner,) = asyncio.run(class_load.simulate(1, [course / "05_tiny.ipynb"], keep_open=False,
                                                 env=env, interval=0.5, cell_timeout=120,
                                                 fetches=2))
    (run,) = learner.runs
    assert run.error is None and run.fetches == 2


def test_a_failing_notebook_is_reported_and_without_a_one_learner_run_there_is_no_sizing(
        tmp_path, monkeypatch):
    course = tmp_path / "notebooks"
    course.mkdir()
    nbformat.write(new_notebook(cells=[new_code_cell("1 / 0")]), course / "00_broken.ipynb")
    monkeypatch.setattr(class_load, "NOTEBOOKS_DIR", course)
    out = tmp_path / "run"
    assert class_load.main(["--learners", "2", "--shut", "--no-server", "--out", str(out)]) == 1
    data = json.loads(out.with_suffix(".json").read_text())
    assert data["sizing"] is None
    assert ([r["runs"][0]["error"] for r in data["learners"]["2"]]
            == ["ZeroDivisionError: division by zero"] * 2)
    report = out.with_suffix(".md").read_text()
    assert ("00_broken (FAILED: ZeroDivisionError" in report
            and "memory limit per learner" not in report)
