"""The set-up `make setup` runs (read with `make -n`, which prints the commands without running
them): uv with nothing overridden, pip's indexes passed on, the CPU-only option."""
import os
import subprocess
try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent


def _setup_commands(tmp_path, *args: str, env: dict | None = None) -> str:
    venv = tmp_path / "venv"  # no venv there: make prints the whole set-up
    proc = subprocess.run(["make", "-n", "-C", str(ROOT), "--no-print-directory", f"{venv}/.ready",
                           f"VENV={venv}", *args],
                          capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _install_line(out: str) -> str:
    lines = [line for line in out.splitlines() if "uv pip install" in line]
    assert len(lines) == 1, out
    return lines[0]


def test_setup_installs_with_uv_and_overrides_nothing(tmp_path):
    out = _setup_commands(tmp_path)
    line = _install_line(out)
    assert line.endswith('-e ".[test]"')
    assert "--override" not in line  # captum 0.9.0 has no numpy<2 left to lift
    assert "--torch-backend" not in line  # PyPI's torch unless asked
    assert "overrides.txt" not in out


def test_the_setup_depends_on_pyproject_alone():
    """No overrides.txt any more: the set-up reruns when pyproject.toml changes."""
    assert not (ROOT / "overrides.txt").exists()
    ready = [line for line in (ROOT / "Makefile").read_text().splitlines()
             if line.startswith("$(READY):")]
    assert ready == ["$(READY): pyproject.toml"]


def test_captum_is_pinned_to_090_and_numpy_is_not_capped():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = {r.name: r for r in map(Requirement, project["dependencies"])}
    assert str(requirements["captum"].specifier) == "==0.9.0"
    assert requirements["numpy"].specifier.contains("2.4.6")


def test_cpu_only_torch_is_one_option_away(tmp_path):
    assert "--torch-backend cpu" in _install_line(_setup_commands(tmp_path, "TORCH=cpu"))


@pytest.mark.parametrize("variable, flag", [
    ("PIP_INDEX_URL", "--index-url"), ("PIP_EXTRA_INDEX_URL", "--extra-index-url"),
    ("PIP_FIND_LINKS", "--find-links"),
])
def test_pips_package_sources_are_passed_on_to_uv(tmp_path, variable, flag):
    env = {**os.environ, variable: "https://mirror.example.invalid/simple"}
    line = _install_line(_setup_commands(tmp_path, env=env))
    assert f"{flag} https://mirror.example.invalid/simple" in line
