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
import sys
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
    # a hub's own variable: set by the tests that play one
    env.pop("JUPYTERHUB_SERVICE_PREFIX", None)
    for var, sub in [("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_RUNTIME_DIR", "runtime"),
                     ("JUPYTER_DATA_DIR", "data"), ("IPYTHONDIR", "ipython")]:
        env[var] = str(tmp_path / "jupyter" / sub)
    return env


def wait_for_kernel(kernels_url: str, timeout: float = 120, log=lambda: "",
                    token: str | None = None) -> None:
    """Poll a Jupyter server's ``api/kernels`` until one kernel is idle with a browser connected."""
    headers = {"Authorization": f"token {token}"} if token else {}
    deadline = time.monotonic() + timeout
    last_error = ""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(urllib.request.Request(kernels_url, headers=headers),
                                        timeout=5) as response:
                kernels = json.load(response)
        except urllib.error.HTTPError as error:
            # seen once in CI: the listing answered 500 while Notebook 7 started its kernel
            if error.code < 500:
                raise
            last_error, kernels = f"last answer: HTTP {error.code}; ", []
        if any(k["execution_state"] == "idle" and k["connections"] > 0 for k in kernels):
            return
        time.sleep(0.5)
    raise RuntimeError(f"no idle, connected kernel after {timeout} s: {last_error}{log()[-2000:]}")


class _Logged:
    """A server process started by ``start()`` with its output in ``log_path``; ``stop()`` ends
    it (SIGTERM, then SIGKILL after ``stop_wait_s``), and it is a context manager."""

    process: subprocess.Popen | None = None
    stop_wait_s = 20

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()  # `timeout` passes it on; the server stops what it started
            try:
                self.process.wait(timeout=self.stop_wait_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.log.close()

    def log_text(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class JupyterServer(_Logged):
    """``jupyter lab``, ``jupyter notebook`` (7), ``jupyter nbclassic`` or ``jupyter server`` on
    127.0.0.1 with a token.

    Run as ``timeout``'s child, so it dies after SERVER_LIFETIME_S even if the test's
    teardown never runs; its kernels exit with it (they watch their parent).
    """

    def __init__(self, app: str, root_dir: Path, tmp_path: Path, base_url: str = "/",
                 config: bool = False, extra: list[str] = ()) -> None:
        self.token = secrets.token_hex(16)
        self.port = free_port()
        self.base_url = base_url
        self.log_path = tmp_path / f"jupyter-{app}.log"
        extra = [f"--ServerApp.base_url={base_url}", *extra]
        if app == "lab":
            extra += ["--LabApp.extension_manager=readonly",
                      f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}",
                      f"--LabApp.user_settings_dir={tmp_path / 'settings'}"]
        self.command = ["timeout", "--kill-after=10", str(SERVER_LIFETIME_S),
                        *jupyter.server_command(app, root_dir, self.port, config=config,
                                                extra=extra)]
        self.env = offline_env(tmp_path)

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{self.base_url}{path}"

    def start(self) -> JupyterServer:
        self.log = open(self.log_path, "wb")
        # not on the command line, where `ps` shows it
        env = {**self.env, "JUPYTER_TOKEN": self.token}
        self.process = subprocess.Popen(self.command, env=env, stdout=self.log,
                                        stderr=subprocess.STDOUT)
        if not jupyter.wait_until_answers(self.url(f"api/status?token={self.token}"), self.process,
                                          START_TIMEOUT_S):
            raise RuntimeError("the Jupyter server exited or did not answer in "
                               f"{START_TIMEOUT_S} s: {self.log_text()[-2000:]}")
        return self

    def wait_for_kernel(self, timeout: float = 120) -> None:
        """Wait until a kernel runs, is idle and has a browser connected to it: until then
        JupyterLab may drop a Run All."""
        wait_for_kernel(self.url(f"api/kernels?token={self.token}"), timeout, self.log_text)



CHP_ENV = "CAPTUM_HELPERS_CHP"  # path of another configurable-http-proxy to use
HUB_PASSWORD = "course"  # the dummy authenticator's one password


def chp_path() -> str | None:
    """configurable-http-proxy: $CAPTUM_HELPERS_CHP, the one `make setup` puts in the venv, or
    on PATH."""
    configured = os.environ.get(CHP_ENV)
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    venv = Path(sys.prefix) / "node" / "node_modules" / ".bin" / "configurable-http-proxy"
    return str(venv) if os.access(venv, os.X_OK) else shutil.which("configurable-http-proxy")


class JupyterHub(_Logged):
    """A real JupyterHub on 127.0.0.1: configurable-http-proxy from npm, the dummy authenticator
    (``users``, password HUB_PASSWORD), and SimpleLocalProcessSpawner running
    ``jupyterhub-singleuser`` (JupyterLab) from this environment, as this Unix user, with each
    user's home in ``tmp_path/home/<name>``. Run as ``timeout``'s child like JupyterServer; the hub
    stops the proxy and the users' servers when it stops. ``token`` is a service's, allowed to
    reach every user's server (for the test's own API calls)."""

    stop_wait_s = 30  # the hub stops the users' servers and the proxy first

    def __init__(self, tmp_path: Path, users: list[str]) -> None:
        chp = chp_path()
        if chp is None:
            skip_or_fail("no configurable-http-proxy (make setup installs it with npm)")
        self.port, self.token, self.home = free_port(), secrets.token_hex(16), tmp_path / "home"
        self.log_path, config = tmp_path / "jupyterhub.log", tmp_path / "jupyterhub_config.py"
        env = offline_env(tmp_path)
        for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTER_DATA_DIR", "IPYTHONDIR"):
            env.pop(name)  # each user's own, in their home
        passed = {k: v for k, v in env.items() if k in (*jupyter.PROXY_VARS, "no_proxy", "NO_PROXY",
                                                         "TORCH_HOME", "CAPTUM_HELPERS_MODEL",
                                                         "MPLBACKEND", "OMP_NUM_THREADS")}
        singleuser = str(Path(sys.executable).with_name("jupyterhub-singleuser"))
        args = ["--LabApp.news_url=",
                "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
        if os.geteuid() == 0:
            args.append("--allow-root")
        config.write_text("\n".join([
            "c.JupyterHub.ip = '127.0.0.1'", f"c.JupyterHub.port = {self.port}",
            "c.JupyterHub.hub_ip = '127.0.0.1'", f"c.JupyterHub.hub_port = {free_port()}",
            f"c.ConfigurableHTTPProxy.api_url = 'http://127.0.0.1:{free_port()}'",
            f"c.ConfigurableHTTPProxy.command = [{chp!r}]",
            f"c.ConfigurableHTTPProxy.pid_file = {str(tmp_path / 'proxy.pid')!r}",
            f"c.JupyterHub.db_url = 'sqlite:///{tmp_path / 'hub.sqlite'}'",
            f"c.JupyterHub.cookie_secret_file = {str(tmp_path / 'cookie_secret')!r}",
            "c.JupyterHub.authenticator_class = 'dummy'",
            f"c.DummyAuthenticator.password = {HUB_PASSWORD!r}",
            f"c.Authenticator.allowed_users = {set(users)!r}",
            "c.JupyterHub.spawner_class = 'simple'",
            f"c.SimpleLocalProcessSpawner.home_dir_template = {str(self.home / '{username}')!r}",
            f"c.Spawner.cmd = [{singleuser!r}]", f"c.Spawner.args = {args!r}",
            "c.Spawner.default_url = '/lab'", f"c.Spawner.environment = {passed!r}",
            "c.Spawner.start_timeout = 120", "c.Spawner.http_timeout = 120",
            "c.JupyterHub.services = [{'name': 'course-test', 'api_token': %r}]" % self.token,
            "c.JupyterHub.load_roles = [{'name': 'course-test', 'services': ['course-test'],"
            " 'scopes': ['access:servers', 'read:users', 'list:users']}]",
        ]) + "\n")
        self.command = ["timeout", "--kill-after=10", str(SERVER_LIFETIME_S), sys.executable, "-m",
                        "jupyterhub", "-f", str(config)]
        self.env, self.cwd = env, tmp_path
        for user in users:
            (self.home / user).mkdir(parents=True)

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def start(self) -> JupyterHub:
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen(self.command, env=self.env, cwd=self.cwd, stdout=self.log,
                                        stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._hub_answers():  # the proxy answers 404 until the hub has added its route
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"JupyterHub exited or did not answer in {START_TIMEOUT_S} s: "
                                   f"{self.log_text()[-3000:]}")
            time.sleep(0.2)
        return self

    def _hub_answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.url("hub/api/"), timeout=5) as response:
                return response.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def log_in(self, page, user: str, next_path: str = "") -> None:
        """Log ``user`` in through the hub's own form; ``next_path`` is where the hub sends them."""
        page.goto(self.url(f"hub/login?next={next_path}" if next_path else "hub/login"))
        page.locator("#username_input").fill(user)
        page.locator("#password_input").fill(HUB_PASSWORD)
        page.locator("#login_submit").click()

    def wait_for_kernel(self, user: str, timeout: float = 120) -> None:
        wait_for_kernel(self.url(f"user/{user}/api/kernels"), timeout, self.log_text,
                        token=self.token)

