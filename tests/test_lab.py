"""The README's first command, `make lab`: JupyterLab on the notebooks as root or as a normal
user, without a browser, with the model named first and a URL that opens when printed; and the
course's Jupyter server settings, which cull idle kernels and show the memory meter."""
import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from browser import JupyterServer
from captum_course import lab
from captum_course.jupyter import SERVER_CONFIG

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(sys.prefix)  # the venv running these tests: `make lab` uses the same one
GB = 1024**3
START_TIMEOUT_S = 180  # torch's import for the model line, then Jupyter's start, on a busy machine


def test_root_gets_allow_root_and_a_normal_user_does_not(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert "--ServerApp.allow_root=True" in lab.lab_command(ROOT / "notebooks", 8888)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert "--ServerApp.allow_root=True" not in lab.lab_command(ROOT / "notebooks", 8888)


def test_without_a_display_no_browser_is_opened_and_ssh_is_explained(monkeypatch):
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    assert not lab.has_browser()
    assert "--no-browser" in lab.lab_command(ROOT / "notebooks", 8890)
    text = lab.how_to_reach("http://127.0.0.1:8890/lab?token=abc", 8890)
    assert "http://127.0.0.1:8890/lab?token=abc" in text
    assert re.search(r"ssh -N -L 8890:127\.0\.0\.1:8890 \S+@\S+", text), text


def test_a_busy_port_is_skipped():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert lab.free_port(port, tries=20) > port


def _read_lines(stream, lines: list[str]) -> None:
    for line in iter(stream.readline, ""):
        lines.append(line.rstrip("\n"))


@pytest.mark.once
def test_make_lab_serves_the_notebooks(tmp_path, no_proxy):
    """As whoever runs the tests: root in CI (where plain `jupyter lab` refuses to start)."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER", "JUPYTER_TOKEN")}
    env.update(HOME=str(home), MPLBACKEND="agg", JUPYTER_PLATFORM_DIRS="1")
    cmd = ["make", "-C", str(ROOT), "lab", f"VENV={VENV}"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    watchdog = threading.Timer(START_TIMEOUT_S + 60, os.killpg, (proc.pid, signal.SIGKILL))
    watchdog.start()
    lines: list[str] = []
    threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True).start()
    try:
        url = _wait_for_url(proc, lines)
        assert any(line.startswith("Notebooks will use ")
                   for line in lines[: lines.index(f"JupyterLab: {url}")])
        assert any("ssh -N -L" in line for line in lines), lines  # no browser here
        base, token = url.split("/lab?token=")
        # printed once the server answers: the first request works, with no retry
        with urllib.request.urlopen(f"{base}/api/contents?token={token}", timeout=10) as response:
            names = [item["name"] for item in json.load(response)["content"]]
        assert "00_introduction.ipynb" in names, names
        with urllib.request.urlopen(url, timeout=10) as page:
            assert page.status == 200 and "JupyterLab" in page.read().decode()
        with pytest.raises(urllib.error.HTTPError, match="403"):  # the token is required
            urllib.request.urlopen(f"{base}/api/contents", timeout=10)
        port = int(base.rsplit(":", 1)[1])
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # what Ctrl-C's confirmation or `kill` does
        try:
            proc.wait(timeout=30)
        finally:
            watchdog.cancel()
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    # a clean stop: nothing of the group is left, and nothing listens on the port any more
    time.sleep(1)
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def _wait_for_url(proc: subprocess.Popen, lines: list[str]) -> str:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        url_line = re.compile(r"^JupyterLab: (http://127\.0\.0\.1:\d+/lab\?token=\w+)$")
        found = [m.group(1) for m in map(url_line.match, lines) if m]
        if found:
            return found[0]
        assert proc.poll() is None, "make lab exited early:\n" + "\n".join(lines)
        time.sleep(0.5)
    pytest.fail("make lab printed no URL:\n" + "\n".join(lines))


async def _wait_until_culled(server: JupyterServer, timeout: float) -> tuple[int, bool]:
    """Start a kernel, keep a tab's connection to it open, and wait for the server to cull it.

    Returns (the connections the kernel had, whether it was culled)."""
    from tornado.httpclient import AsyncHTTPClient, HTTPRequest
    from tornado.websocket import websocket_connect

    http = AsyncHTTPClient()
    auth = {"Authorization": f"token {server.token}"}
    reply = await http.fetch(HTTPRequest(server.url("api/kernels"), method="POST", body="{}",
                                         headers=auth))
    kernel_id = json.loads(reply.body)["id"]
    url = server.url(f"api/kernels/{kernel_id}/channels").replace("http://", "ws://")
    tab = await websocket_connect(HTTPRequest(url, headers=auth))
    connections = 0
    try:
        for _ in range(int(timeout / 0.5)):
            kernels = json.loads((await http.fetch(HTTPRequest(server.url("api/kernels"),
                                                               headers=auth))).body)
            mine = [k for k in kernels if k["id"] == kernel_id]
            if not mine:
                return connections, True
            connections = max(connections, mine[0]["connections"])
            await asyncio.sleep(0.5)
        return connections, False
    finally:
        tab.close()


def test_server_config_culls_an_idle_kernel_even_with_its_tab_open_and_shows_cpu(tmp_path):
    # the course's settings, with the idle time shortened for the test (the command line wins)
    server = JupyterServer("server", ROOT / "notebooks", tmp_path, config=True, extra=[
        "--MappingKernelManager.cull_idle_timeout=3", "--MappingKernelManager.cull_interval=1"])
    assert f"--config={SERVER_CONFIG}" in server.command
    server.env["MEM_LIMIT"] = str(64 * GB)  # what a hub's spawner sets
    with server:
        connections, culled = asyncio.run(_wait_until_culled(server, timeout=60))
        assert connections >= 1  # the tab was connected while the kernel sat idle
        assert culled, server.log_text()[-2000:]
        with urllib.request.urlopen(server.url(f"api/metrics/v1?token={server.token}"),
                                    timeout=10) as response:
            metrics = json.load(response)
    assert (metrics["limits"]["memory"]["rss"] == 64 * GB
            and metrics["limits"]["memory"]["warn"] is False)
    assert "cpu_percent" in metrics  # the meter shows CPU beside memory (track_cpu_percent)
