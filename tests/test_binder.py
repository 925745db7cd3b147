"""The Binder / JupyterHub image: the Dockerfile repo2docker writes for binder/ (no Docker, no
network).

`jupyter-repo2docker --no-build --debug .` prints the Dockerfile it would build. We check that
it installs binder/environment.yml, runs binder/postBuild as the notebook user after copying the
repository, and starts servers through binder/start; then run postBuild (with a stand-in
`python` that only records its calls) and start, to see where the ResNet18 weights go.
"""
import os
import re
import subprocess
import sys
try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
from pathlib import Path

import pytest
from jupyter_core.paths import jupyter_config_path

ROOT = Path(__file__).resolve().parent.parent
BINDER = ROOT / "binder"
REPO2DOCKER = Path(sys.executable).parent / "jupyter-repo2docker"


@pytest.fixture(scope="module")
def dockerfile() -> str:
    proc = subprocess.run([str(REPO2DOCKER), "--no-build", "--debug", "--user-id", "1000",
                           "--user-name", "jovyan", "."],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "FROM " in proc.stdout, proc.stdout + proc.stderr
    return proc.stdout


def _env(dockerfile: str) -> dict[str, str]:
    """The image's environment: every ``ENV`` line of the Dockerfile, ``${VAR}`` references
    resolved."""
    env = {"NB_USER": "jovyan"}
    text = dockerfile.replace("\\\n", " ")
    for line in text.splitlines():
        if line.startswith("ENV "):
            for name, value in re.findall(r'(\w+)=("[^"]*"|\S+)', line[4:]):
                env[name] = re.sub(r"\$\{(\w+)\}", lambda m: env.get(m.group(1), ""),
                                   value.strip('"'))
    return env


def test_dockerfile_installs_binder_environment(dockerfile):
    assert '--file "binder/environment.yml"' in dockerfile
    assert 'env update -p ${NB_PYTHON_PREFIX}' in dockerfile  # into the notebook's environment


def test_dockerfile_runs_postbuild_as_the_user_after_copying_the_repository(dockerfile):
    lines = dockerfile.splitlines()
    postbuild = lines.index("RUN ./binder/postBuild")
    copy = lines.index("COPY --chown=1000:1000 src/ ${REPO_DIR}/")
    assert copy < postbuild  # postBuild's `pip install -e .` needs the repository in place
    users = [line for line in lines[:postbuild] if line.startswith("USER ")]
    assert users[-1] == "USER ${NB_USER}"  # not root: the files it writes belong to the user


def test_dockerfile_starts_servers_through_binder_start(dockerfile):
    assert 'ENV R2D_ENTRYPOINT="${REPO_DIR}/binder/start"' in dockerfile
    assert os.access(BINDER / "start", os.X_OK) and os.access(BINDER / "postBuild", os.X_OK)


def _run_postbuild(tmp_path: Path, env: dict[str, str]) -> list[str]:
    """Run binder/postBuild with a stand-in ``python`` that records TORCH_HOME, the model and its
    args."""
    stubs = tmp_path / "bin"
    stubs.mkdir()
    log = tmp_path / "calls.log"
    (stubs / "python").write_text(
        f'#!/bin/sh\necho "TORCH_HOME=$TORCH_HOME MODEL=${{CAPTUM_HELPERS_MODEL:-}} $*" >> {log}\n')
    (stubs / "python").chmod(0o755)
    run_env = {"PATH": f"{stubs}:/usr/bin:/bin", "NB_PYTHON_PREFIX": env["NB_PYTHON_PREFIX"],
               "HOME": str(tmp_path / "home")}
    proc = subprocess.run([str(BINDER / "postBuild")], cwd=ROOT, env=run_env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return log.read_text().splitlines()


def test_postbuild_prefetches_weights_outside_home_and_checks_the_result(dockerfile, tmp_path):
    env = _env(dockerfile)
    torch_home = f"{env['NB_PYTHON_PREFIX']}/share/torch"
    assert env["NB_PYTHON_PREFIX"] == "/srv/conda/envs/notebook" and env["HOME"] == "/home/jovyan"
    calls = _run_postbuild(tmp_path, env)
    assert calls[0].endswith("-m pip install --no-cache-dir --no-deps -e .")
    assert f"TORCH_HOME={torch_home} MODEL= -m captum_course prefetch" in calls
    assert f"TORCH_HOME={torch_home} MODEL= -m captum_course learner --out learner" in calls
    # the build fails (doctor exits 1) unless ResNet18's weights are in the image
    assert calls[-1] == f"TORCH_HOME={torch_home} MODEL=resnet18 -m captum_course doctor"
    assert not torch_home.startswith(env["HOME"])  # a hub mounts a fresh home over the image's


@pytest.mark.parametrize("preset, expected",
                         [(None, "{prefix}/share/torch"), ("/data/torch", "/data/torch")])
def test_start_points_torch_at_the_image_weights(dockerfile, tmp_path, preset, expected):
    env = _env(dockerfile)
    run_env = {"PATH": "/usr/bin:/bin", "NB_PYTHON_PREFIX": env["NB_PYTHON_PREFIX"]}
    if preset:
        run_env["TORCH_HOME"] = preset  # set by the hub: wins
    proc = subprocess.run([str(BINDER / "start"), "sh", "-c", 'echo "$TORCH_HOME"'], env=run_env,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == expected.format(prefix=env["NB_PYTHON_PREFIX"])


def _binder_requirements() -> set[str]:
    lines = (BINDER / "environment.yml").read_text().splitlines()
    return {line.strip()[2:].strip().strip('"') for line in lines if line.strip().startswith("- ")}


def test_binder_environment_mirrors_pyproject_with_cpu_torch_and_anywidget_beside_jupyter():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = set(project["dependencies"]) | set(project["optional-dependencies"]["lab"])
    have = _binder_requirements()
    missing = sorted(r for r in wanted if r not in have)
    assert not missing, f"binder/environment.yml lacks (or pins differently): {missing}"
    conda_side = (BINDER / "environment.yml").read_text().split("  - pip:")[0]
    assert "- anywidget" in conda_side  # with the Jupyter server, which must have its extension
    assert "--extra-index-url=https://download.pytorch.org/whl/cpu" in have
    assert not any(r.startswith("-e") for r in have)  # the repository is not in the image yet then


@pytest.mark.parametrize("path", [ROOT / "environment.yml", BINDER / "environment.yml"],
                         ids=["environment.yml", "binder/environment.yml"])
def test_conda_environments_take_a_tested_python_and_leave_numpy_uncapped(path):
    """pip installs these (no overrides): captum 0.9.0 caps nothing, so neither may the file."""
    lines = [line.split("#")[0].replace(" ", "") for line in path.read_text().splitlines()]
    (python,) = [line[len("-python="):] for line in lines if line.startswith("-python=")]
    assert 10 <= int(python.split(".")[1]) <= 13  # the course is tested on 3.10 to 3.13
    assert not [line for line in lines if "numpy<2" in line or "override" in line]


def test_hub_guide_config_uses_the_image_torch_home():
    assert "mybinder.org/badge_logo.svg" in (ROOT / "README.md").read_text()
    assert ("TORCH_HOME: /srv/conda/envs/notebook/share/torch"
            in (ROOT / "docs" / "hub.md").read_text())
    assert 'TORCH_HOME="${NB_PYTHON_PREFIX}/share/torch"' in (BINDER / "postBuild").read_text()


def test_postbuild_installs_the_server_config_where_jupyter_reads_it(tmp_path):
    prefix = tmp_path / "prefix"
    (prefix / "etc" / "jupyter").mkdir(parents=True)
    stubs = tmp_path / "bin"
    stubs.mkdir()
    (stubs / "python").write_text("#!/bin/sh\nexit 0\n")
    (stubs / "python").chmod(0o755)
    env = {"PATH": f"{stubs}:/usr/bin:/bin", "NB_PYTHON_PREFIX": str(prefix), "HOME": str(tmp_path)}
    proc = subprocess.run([str(ROOT / "binder" / "postBuild")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    installed = prefix / "etc" / "jupyter" / "jupyter_server_config.py"
    assert (installed.read_text()
            == (ROOT / "captum_course" / "jupyter_server_config.py").read_text())
    # the environment's etc/jupyter is on Jupyter's own config path (sys.prefix is NB_PYTHON_PREFIX
    # there)
    assert str(Path(sys.prefix) / "etc" / "jupyter") in jupyter_config_path()
