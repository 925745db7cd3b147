"""``python -m captum_course lab`` (``make lab``): JupyterLab on the course notebooks.

Plain ``jupyter lab`` stops as root ("Running as root is not recommended"), and on a machine
without a display or browser it leaves the user to find the URL in its log. This command says
which model the notebooks will use, adds ``--allow-root`` only for root, and prints the URL
with its token once the server answers on it and, where no browser can open it, how to reach
it from a laptop over SSH.
"""
from __future__ import annotations

import getpass
import os
import secrets
import signal
import socket
import subprocess
import sys
import webbrowser
from pathlib import Path

from .jupyter import server_command, wait_until_answers

FIRST_PORT = 8888  # Jupyter's usual port; the next free one is taken when it is busy
START_TIMEOUT_S = 300  # JupyterLab's first start on a slow laptop


def free_port(first: int = FIRST_PORT, tries: int = 50) -> int:
    """The first port from ``first`` that nothing listens on at 127.0.0.1."""
    for port in range(first, first + tries):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port between {first} and {first + tries - 1}")


def has_browser() -> bool:
    """Whether Python's webbrowser module can open a page here (a desktop, or $BROWSER)."""
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.environ.get("BROWSER")
    ):
        return False  # webbrowser would fall back to a text browser in this terminal, if any
    try:
        webbrowser.get()
    except webbrowser.Error:
        return False
    return True


def lab_command(notebooks: Path, port: int, extra: list[str] = ()) -> list[str]:
    """The ``jupyter lab`` command line for ``notebooks`` on ``port`` for this user and machine."""
    return server_command("lab", notebooks, port, browser=has_browser(), extra=extra)


def how_to_reach(url: str, port: int) -> str:
    """What to print once the server answers: the URL, and the SSH tunnel where no browser is."""
    lines = [f"JupyterLab: {url}",
             "Stop it with Ctrl-C in this terminal (twice, or once and answer y)."]
    if not has_browser() or os.environ.get("SSH_CONNECTION"):
        host = socket.gethostname()
        lines += ["No browser opens here. From your laptop, forward the port over SSH, "
                  "then open the URL there:",
                  f"    ssh -N -L {port}:127.0.0.1:{port} {getpass.getuser()}@{host}"]
    return "\n".join(lines)


def run_lab(port: int | None = None, extra: list[str] = ()) -> int:
    """Print the model summary, start ``jupyter lab`` and, once it answers, how to reach it."""
    from captum_helpers.assets import course_root

    from .doctor import summary

    print(summary(), flush=True)
    port = port or free_port()
    token = os.environ.get("JUPYTER_TOKEN") or secrets.token_hex(24)
    # the environment, not argv, which `ps` shows to everyone
    env = {**os.environ, "JUPYTER_TOKEN": token}
    proc = subprocess.Popen(lab_command(course_root() / "notebooks", port, extra), env=env)
    # Ctrl-C reaches Jupyter too (one process group), which asks whether to stop; a plain
    # `kill` of this process is passed on to it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: proc.terminate())
    if wait_until_answers(f"http://127.0.0.1:{port}/api/status?token={token}", proc,
                          START_TIMEOUT_S):
        print(how_to_reach(f"http://127.0.0.1:{port}/lab?token={token}", port), flush=True)
    return proc.wait()
