"""How the course starts a Jupyter server, and what a machine without internet looks like.

One place for both: ``make lab``, the class simulator (bench/class_load.py), the notebook runs
of ``make test`` (conftest.py) and the browser tests build on these functions.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

SERVER_CONFIG = Path(__file__).with_name("jupyter_server_config.py")
APPS = {"lab": "jupyterlab", "notebook": "notebook", "nbclassic": "nbclassic",
        "server": "jupyter_server"}
PROXY_VARS = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")
DISCARD_PROXY = "http://127.0.0.1:9"  # the discard port: nothing answers, a download fails at once


def server_command(app: str, root_dir: str | Path, port: int, *, config: bool = True,
                   browser: bool = False, extra: list[str] = ()) -> list[str]:
    """The command line of a Jupyter ``app`` (lab, notebook, nbclassic, server) on
    127.0.0.1:``port``.

    It never looks online (JupyterLab's news feed and update check are off), adds
    ``allow_root`` only for root (containers and cloud shells, where plain Jupyter refuses to
    start), and with ``config`` loads the course's server settings (idle kernels culled, the
    memory meter). The token goes in the environment (``JUPYTER_TOKEN``), never on the command
    line, which ``ps`` shows to every user.
    """
    cmd = [sys.executable, "-m", APPS[app], f"--ServerApp.root_dir={root_dir}",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0", "--ServerApp.ip=127.0.0.1"]
    if config and SERVER_CONFIG.is_file():
        cmd.append(f"--config={SERVER_CONFIG}")
    if os.geteuid() == 0:
        cmd.append("--ServerApp.allow_root=True")
    if not browser:
        cmd.append("--no-browser")
    if app == "lab":
        cmd += ["--LabApp.news_url=",
                "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    return cmd + list(extra)


def offline_env(torch_home: str | Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) as a machine without internet sees it.

    Every download goes to a port where nothing answers, the torch hub cache is ``torch_home``
    (empty: no cached weights), and the model is chosen as on a learner's machine
    (``CAPTUM_HELPERS_MODEL=auto``: ResNet18 if it downloads, else the offline fallback).
    Connections to 127.0.0.1 stay direct. Plots draw without a display.
    """
    env = dict(os.environ if base is None else base)
    env.update(dict.fromkeys(PROXY_VARS, DISCARD_PROXY))
    env["no_proxy"] = env["NO_PROXY"] = "127.0.0.1,localhost"
    env.update(CAPTUM_HELPERS_MODEL="auto", TORCH_HOME=str(torch_home), MPLBACKEND="agg")
    return env


def wait_until_answers(url: str, proc: subprocess.Popen, timeout: float) -> bool:
    """Poll ``url`` until the server answers; False when it exits or ``timeout`` passes first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return True
        except urllib.error.HTTPError:
            return True  # it answered, if only to say no
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    return False
