"""The README's first command, `make lab`: JupyterLab on the notebooks as root or as a normal
user, without a browser, with the model named first and a URL that opens."""
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from captum_course import lab

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(sys.prefix)  # the venv running these tests: `make lab` uses the same one
START_TIMEOUT_S = 180  # torch's import for the model line, then Jupyter's start, on a busy machine


def test_root_gets_allow_root_and_a_normal_user_does_not(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert "--allow-root" in lab.lab_command(ROOT / "notebooks", 8888)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert "--allow-root" not in lab.lab_command(ROOT / "notebooks", 8888)


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
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert lab.free_port(port, tries=20) > port


def _read_lines(stream, lines: list[str]) -> None:
    for line in iter(stream.readline, ""):
        lines.append(line.rstrip("\n"))


def test_make_lab_serves_the_notebooks(tmp_path, no_proxy):
    """As whoever runs the tests: root in CI (where plain `jupyter lab` refuses to start)."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER", "JUPYTER_TOKEN")}
    env.update(HOME=str(home), MPLBACKEND="agg", JUPYTER_PLATFORM_DIRS="1")
    cmd = ["make", "-C", str(ROOT), "lab", f"VENV={VENV}"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    watchdog = threading.Timer(START_TIMEOUT_S + 60, os.killpg, (proc.pid, signal.SIGKILL))
    watchdog.start()
    lines: list[str] = []
    threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True).start()
    try:
        url = _wait_for_url(proc, lines)
        assert any(line.startswith("Notebooks will use ") for line in lines[: lines.index(f"JupyterLab: {url}")])
        assert any("ssh -N -L" in line for line in lines), lines  # no browser here
        base, token = url.split("/lab?token=")
        contents = _wait_for_json(f"{base}/api/contents?token={token}", proc, lines)
        names = [item["name"] for item in contents["content"]]
        assert "00_introduction.ipynb" in names, names
        with urllib.request.urlopen(url, timeout=10) as page:
            assert page.status == 200 and "JupyterLab" in page.read().decode()
        with pytest.raises(urllib.error.HTTPError, match="403"):  # the token is required
            urllib.request.urlopen(f"{base}/api/contents", timeout=10)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # what Ctrl-C's confirmation or `kill` does
        try:
            proc.wait(timeout=30)
        finally:
            watchdog.cancel()
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode is not None


def _wait_for_url(proc: subprocess.Popen, lines: list[str]) -> str:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        found = [m.group(1) for m in map(re.compile(r"^JupyterLab: (http://127\.0\.0\.1:\d+/lab\?token=\w+)$").match, lines) if m]
        if found:
            return found[0]
        assert proc.poll() is None, "make lab exited early:\n" + "\n".join(lines)
        time.sleep(0.5)
    pytest.fail("make lab printed no URL:\n" + "\n".join(lines))


def _wait_for_json(url: str, proc: subprocess.Popen, lines: list[str]) -> dict:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the server stopped:\n" + "\n".join(lines)
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return json.load(response)
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.5)
    pytest.fail("JupyterLab did not answer:\n" + "\n".join(lines))
