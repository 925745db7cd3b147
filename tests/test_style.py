"""One code style, checked by ruff as configured in pyproject.toml: the packages, the course tools,
the benchmarks, the tests and the notebooks' code cells, with lines of 100 characters."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _ruff(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", *args], cwd=cwd,
                          capture_output=True, text=True)


def test_the_repository_follows_the_style():
    checked = _ruff("--show-files").stdout.splitlines()
    for path in ["captum_helpers/trust/rule.py", "captum_course/site.py", "bench/class_load.py",
                 "tests/test_style.py", "notebooks/06_can_you_trust_it.ipynb",
                 "notebooks/zh-CN/06_can_you_trust_it.ipynb"]:
        assert any(line.endswith(path) for line in checked), f"ruff does not check {path}"
    result = _ruff()
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_style_check_fails_on_a_long_line_and_an_unused_import(tmp_path):
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    (tmp_path / "lesson.py").write_text("import os\nx = '" + "a" * 100 + "'\n")
    result = _ruff("lesson.py", cwd=tmp_path)
    assert result.returncode == 1
    assert "E501" in result.stdout and "F401" in result.stdout
