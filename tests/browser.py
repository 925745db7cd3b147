"""Helpers for the browser tests: a headless Chromium through Playwright, and a Jupyter
server started as a subprocess for one test.

The browser is Debian's ``chromium`` (``apt-get install chromium``), driven by the
``playwright`` Python package; ``playwright install`` is never needed. Without them the
tests skip, saying how to enable them, except under CI (``CI=true``), where they fail.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from captum_course import jupyter

CHROMIUM_ENV = "CAPTUM_HELPERS_CHROMIUM"  # path of another Chromium or Chrome to use
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI containers run as root, where Chromium's sandbox cannot start
    "--disable-gpu",
    # nothing in these tests may reach the internet
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HOW_TO_ENABLE = (
    "apt-get install chromium && pip install -e '.[test]' (for playwright); "
    f"or point ${CHROMIUM_ENV} at a Chromium or Chrome"
)
SERVER_LIFETIME_S = 300  # a Jupyter server a test forgot is killed after this anyway
START_TIMEOUT_S = 90


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def skip_or_fail(reason: str) -> None:
    """Skip locally; fail under CI, where the browser tests must run."""
    message = f"{reason}. To run the browser tests: {HOW_TO_ENABLE}"
    if in_ci():
        pytest.fail(f"CI=true but {message}", pytrace=False)
    pytest.skip(message)


def chromium_path() -> str | None:
    """The Chromium to use: $CAPTUM_HELPERS_CHROMIUM, else the first on PATH."""
    configured = os.environ.get(CHROMIUM_ENV)
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def launch_chromium(playwright):
    """A headless Chromium; skips (or fails under CI) when there is none."""
    executable = chromium_path()
    if executable is None:
        skip_or_fail("no Chromium found")
    return playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def offline_env(tmp_path: Path) -> dict[str, str]:
    """Environment for a Jupyter server and its kernels: a machine without internet, with
    Jupyter's and IPython's files in ``tmp_path`` instead of the home folder."""
    env = jupyter.offline_env(tmp_path / "torch-home")
    env.pop("JUPYTERHUB_SERVICE_PREFIX", None)  # a hub's own variable: set by the tests that play one
    for var, sub in [("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_RUNTIME_DIR", "runtime"),
                     ("JUPYTER_DATA_DIR", "data"), ("IPYTHONDIR", "ipython")]:
        env[var] = str(tmp_path / "jupyter" / sub)
    return env


class JupyterServer:
    """``jupyter lab``, ``jupyter notebook`` (7), ``jupyter nbclassic`` or ``jupyter server`` on
    127.0.0.1 with a token.

    Run as ``timeout``'s child, so it dies after SERVER_LIFETIME_S even if the test's
    teardown never runs; its kernels exit with it (they watch their parent).
    """

    def __init__(self, app: str, root_dir: Path, tmp_path: Path, base_url: str = "/", config: bool = False,
                 extra: list[str] = ()) -> None:
        self.token = secrets.token_hex(16)
        self.port = free_port()
        self.base_url = base_url
        self.log_path = tmp_path / f"jupyter-{app}.log"
        extra = [f"--ServerApp.base_url={base_url}", *extra]
        if app == "lab":
            extra += ["--LabApp.extension_manager=readonly", f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}",
                      f"--LabApp.user_settings_dir={tmp_path / 'settings'}"]
        self.command = ["timeout", "--kill-after=10", str(SERVER_LIFETIME_S),
                        *jupyter.server_command(app, root_dir, self.port, config=config, extra=extra)]
        self.env = offline_env(tmp_path)
        self.process: subprocess.Popen | None = None

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{self.base_url}{path}"

    def start(self) -> JupyterServer:
        self.log = open(self.log_path, "wb")
        env = {**self.env, "JUPYTER_TOKEN": self.token}  # not on the command line, where `ps` shows it
        self.process = subprocess.Popen(self.command, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        if not jupyter.wait_until_answers(self.url(f"api/status?token={self.token}"), self.process, START_TIMEOUT_S):
            raise RuntimeError(f"the Jupyter server exited or did not answer in {START_TIMEOUT_S} s: "
                               f"{self.log_text()[-2000:]}")
        return self

    def wait_for_kernel(self, timeout: float = 120) -> None:
        """Wait until a kernel runs, is idle and has a browser connected to it: until then
        JupyterLab may drop a Run All."""
        deadline = time.monotonic() + timeout
        last_error = ""
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url(f"api/kernels?token={self.token}"), timeout=5) as response:
                    kernels = json.load(response)
            except urllib.error.HTTPError as error:
                # seen once in CI: the listing answered 500 while Notebook 7 started its kernel
                if error.code < 500:
                    raise
                last_error, kernels = f"last answer: HTTP {error.code}; ", []
            if any(k["execution_state"] == "idle" and k["connections"] > 0 for k in kernels):
                return
            time.sleep(0.5)
        raise RuntimeError(f"no idle, connected kernel after {timeout} s: {last_error}{self.log_text()[-2000:]}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()  # timeout passes it on; Jupyter shuts its kernels down
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.log.close()

    def log_text(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def __enter__(self) -> JupyterServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
