"""The set-up `make setup` runs (read with `make -n`, which prints the commands without running
them): uv with captum's numpy<2 overridden, pip's indexes passed on, the CPU-only option."""
import os
import subprocess
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


def test_setup_installs_with_uv_and_the_numpy_override(tmp_path):
    line = _install_line(_setup_commands(tmp_path))
    assert "--override overrides.txt" in line and line.endswith('-e ".[test]"')
    assert "--torch-backend" not in line  # PyPI's torch unless asked


def test_overrides_replace_captums_numpy_cap_and_nothing_else():
    lines = [line for line in (ROOT / "overrides.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    requirements = [Requirement(line) for line in lines]
    assert [r.name for r in requirements] == ["numpy"]
    assert (requirements[0].specifier.contains("2.5.5")
            and requirements[0].specifier.contains("1.26.4"))


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
