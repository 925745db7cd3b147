"""A class on one server: simulated learners run the attribution notebooks at once within the
README's per-learner memory limit (bench/class_load.py), and the course's Jupyter server
settings cull idle kernels and show the memory meter."""
from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from jupyter_core.paths import jupyter_config_path

from browser import JupyterServer

ROOT = Path(__file__).resolve().parent.parent
SERVER_CONFIG = ROOT / "captum_course" / "jupyter_server_config.py"
_spec = importlib.util.spec_from_file_location("bench_class_load", ROOT / "bench" / "class_load.py")
class_load = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = class_load  # its dataclasses look their module up there
_spec.loader.exec_module(class_load)

GB = 1024**3
LOAD_LEARNERS = 2  # on CI's 2 cores: every cell's wait doubles, as when a class shares a server
LOAD_NOTEBOOKS = ["02", "04"]  # attribution notebooks: 02 is the heaviest in memory and CPU; 03 would double the run


def documented_limit_gb() -> int:
    """singleuser.memory.limit of the README's Zero to JupyterHub sizing, in GB."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- class_load:readme -->(.*?)<!-- /class_load:readme -->", readme, re.DOTALL)
    assert block, "README.md has no class_load:readme block"
    memory = re.search(r"memory:\s*\n\s*guarantee: (\d+)G\s*\n\s*limit: (\d+)G", block.group(1))
    assert memory, "the README's sizing has no singleuser.memory guarantee and limit"
    tljh = re.search(r"tljh-config set limits\.memory (\d+)G", block.group(1))
    assert tljh and tljh.group(1) == memory.group(2), "TLJH's limit differs from Zero to JupyterHub's"
    return int(memory.group(2))


def test_learners_run_the_attribution_notebooks_together_within_the_documented_limit(tmp_path):
    limit = documented_limit_gb()
    env = class_load.kernel_env({"CAPTUM_HELPERS_MODEL": "efficientnet_lite0", "IPYTHONDIR": str(tmp_path / "ipython")})
    paths = class_load.pick_notebooks(LOAD_NOTEBOOKS)
    learners = class_load.simulate(LOAD_LEARNERS, paths, keep_open=True, env=env, interval=0.5, cell_timeout=600)

    errors = [(lr.index, r.notebook, r.error) for lr in learners for r in lr.runs if r.error]
    assert not errors
    for learner in learners:
        assert [r.notebook for r in learner.runs] == [p.stem for p in paths]
        assert {r.model for r in learner.runs} == {"efficientnet_lite0"}
        # every kernel stayed up to the end: the learner's memory is all of them together
        assert learner.runs[-1].learner_after >= sum(r.kept for r in learner.runs) * 0.9
        assert learner.peak <= limit * GB, f"learner {learner.index} peaked at {learner.peak / GB:.2f} GB"
        assert all(r.after_gc is not None and r.cpu_s > 0 for r in learner.runs)


def given_learner(peaks_kept: list[tuple[float, float]], cpu_wall: list[tuple[float, float]], peak: float):
    """A Learner from given numbers: (peak, kept) GB and (CPU s, wall s) per notebook, the learner's peak GB."""
    runs = [class_load.NotebookRun(f"0{i}_nb", wall_s=w, cpu_s=c, peak=int(p * GB), kept=int(k * GB))
            for i, ((p, k), (c, w)) in enumerate(zip(peaks_kept, cpu_wall))]
    return class_load.Learner(1, runs=runs, peak=int(peak * GB))


def test_sizing_rules_from_given_numbers():
    alone = [given_learner([(0.9, 0.85), (1.5, 1.0), (1.2, 1.1)], [(10, 8), (120, 70), (40, 30)], peak=3.3)]
    s = class_load.sizing(alone, wait_s=180, cores=2)
    assert s.limit_gb == 4  # 3.3 GB x 1.10 = 3.63, rounded up
    assert s.culled_peak == int(0.85 * GB) + int(1.5 * GB)  # notebook 1's peak beside notebook 0's kernel
    assert s.guarantee_gb == 3  # 2.35 x 1.10 = 2.59
    assert s.shut_peak == int(1.5 * GB)
    assert (s.heaviest, s.cpu_limit, s.cpu_guarantee) == ("01_nb", 2.0, 0.7)  # 120 / 70 = 1.7 cores; 120 / 180
    # 16 cores / 0.7 = 22; (64 - 2) GB / 3 = 20; / 4 = 15
    assert s.learners_on(16, 64, s.guarantee_gb) == 20 and s.learners_on(16, 64, s.limit_gb) == 15


def test_update_docs_replaces_only_the_marked_block():
    text = "before\n<!-- class_load:guide -->\nold table\n<!-- /class_load:guide -->\nafter\n"
    assert class_load.replace_block(text, "guide", "new") == \
        "before\n<!-- class_load:guide -->\nnew\n<!-- /class_load:guide -->\nafter\n"
    with pytest.raises(ValueError, match="class_load:readme"):
        class_load.replace_block(text, "readme", "new")


@pytest.mark.parametrize("path, name", [(ROOT / "docs" / "instructor.md", "guide"), (ROOT / "README.md", "readme")])
def test_docs_carry_the_blocks_the_simulator_rewrites(path, name):
    class_load.replace_block(path.read_text(), name, "x")  # raises when a marker is missing


def test_postbuild_installs_the_server_config_where_jupyter_reads_it(tmp_path):
    prefix = tmp_path / "prefix"
    (prefix / "etc" / "jupyter").mkdir(parents=True)
    stubs = tmp_path / "bin"
    stubs.mkdir()
    (stubs / "python").write_text("#!/bin/sh\nexit 0\n")
    (stubs / "python").chmod(0o755)
    env = {"PATH": f"{stubs}:/usr/bin:/bin", "NB_PYTHON_PREFIX": str(prefix), "HOME": str(tmp_path)}
    proc = subprocess.run([str(ROOT / "binder" / "postBuild")], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    installed = prefix / "etc" / "jupyter" / "jupyter_server_config.py"
    assert installed.read_text() == SERVER_CONFIG.read_text()
    # the environment's etc/jupyter is on Jupyter's own config path (sys.prefix is NB_PYTHON_PREFIX there)
    assert str(Path(sys.prefix) / "etc" / "jupyter") in jupyter_config_path()


async def _wait_until_culled(server: JupyterServer, timeout: float) -> tuple[int, bool]:
    """Start a kernel, keep a tab's connection to it open, and wait for the server to cull it.

    Returns (the connections the kernel had, whether it was culled)."""
    from tornado.httpclient import AsyncHTTPClient, HTTPRequest
    from tornado.websocket import websocket_connect

    http = AsyncHTTPClient()
    auth = {"Authorization": f"token {server.token}"}
    reply = await http.fetch(HTTPRequest(server.url("api/kernels"), method="POST", body="{}", headers=auth))
    kernel_id = json.loads(reply.body)["id"]
    url = server.url(f"api/kernels/{kernel_id}/channels").replace("http://", "ws://")
    tab = await websocket_connect(HTTPRequest(url, headers=auth))
    connections = 0
    try:
        for _ in range(int(timeout / 0.5)):
            kernels = json.loads((await http.fetch(HTTPRequest(server.url("api/kernels"), headers=auth))).body)
            mine = [k for k in kernels if k["id"] == kernel_id]
            if not mine:
                return connections, True
            connections = max(connections, mine[0]["connections"])
            await asyncio.sleep(0.5)
        return connections, False
    finally:
        tab.close()


def test_server_config_culls_an_idle_kernel_even_with_its_tab_open_and_shows_cpu(tmp_path):
    server = JupyterServer("server", ROOT / "notebooks", tmp_path)
    # the course's settings, with the idle time shortened for the test (the command line wins)
    server.command += [f"--config={SERVER_CONFIG}", "--MappingKernelManager.cull_idle_timeout=3",
                       "--MappingKernelManager.cull_interval=1"]
    server.env["MEM_LIMIT"] = str(64 * GB)  # what a hub's spawner sets
    with server:
        connections, culled = asyncio.run(_wait_until_culled(server, timeout=60))
        assert connections >= 1  # the tab was connected while the kernel sat idle
        assert culled, server.log_text()[-2000:]
        with urllib.request.urlopen(server.url(f"api/metrics/v1?token={server.token}"), timeout=10) as response:
            metrics = json.load(response)
    assert metrics["limits"]["memory"]["rss"] == 64 * GB and metrics["limits"]["memory"]["warn"] is False
    assert "cpu_percent" in metrics  # the meter shows CPU beside memory (track_cpu_percent)


def test_readme_block_states_the_limits_the_load_test_reads():
    alone = [given_learner([(0.9, 0.85), (1.5, 1.0)], [(10, 8), (120, 70)], peak=2.4)]
    s = class_load.sizing(alone, wait_s=180, cores=2, server=int(0.1 * GB))
    block = class_load.readme_block(s, "Measured ...")
    assert s.limit_gb == 3  # (2.4 + 0.1) x 1.10 = 2.75 GB, rounded up
    assert re.search(rf"memory:\n    guarantee: {s.guarantee_gb}G\n    limit: 3G\n", block)
    assert "tljh-config set limits.memory 3G" in block and f"limits.cpu {s.cpu_limit:g}" in block


def test_only_a_one_learner_run_with_every_kernel_open_gives_a_sizing():
    def learners(n: int) -> list:
        return [given_learner([(0.9, 0.85), (1.5, 1.0)], [(10, 8), (120, 70)], peak=1.5) for _ in range(n)]

    guide, readme = class_load.report({4: learners(4)}, keep_open=False, load_before=0.5, wait_s=180)
    assert readme is None and "Learner 1 of 4, notebook after notebook** (N=4)" in guide
    assert "this run is not one, so it gives none" in guide and "memory limit per learner" not in guide
    guide, readme = class_load.report({1: learners(1)}, keep_open=False, load_before=0.5, wait_s=180)
    assert readme is None and "memory limit per learner" not in guide  # kernels shut: no limit for open ones
    guide, readme = class_load.report({1: learners(1), 2: learners(2)}, keep_open=True, load_before=0.5, wait_s=180)
    assert "One learner, notebook after notebook** (N=1)" in guide and "limit: 2G" in readme  # 1.5 x 1.10
    with pytest.raises(SystemExit):
        class_load.main(["--learners", "4", "--update-docs"])
