"""The package notebooks import: light to import, its tools apart, its photos found or a
clear word on where the course lives."""
import subprocess
import sys
from pathlib import Path

import pytest

from captum_helpers import assets

ROOT = Path(__file__).resolve().parent.parent


def _modules_after(code: str) -> set[str]:
    proc = subprocess.run([sys.executable, "-c",
                           f"{code}\nimport sys; print(' '.join(sys.modules))"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return set(proc.stdout.split())


def test_importing_the_package_brings_no_web_framework_no_explorer_and_no_tools():
    loaded = _modules_after("import captum_helpers")
    assert not {"flask", "werkzeug", "anywidget", "captum_explorer", "nbconvert",
                "captum_course"} & loaded


def test_the_explorers_widget_is_imported_when_first_used():
    loaded = _modules_after("import captum_explorer")
    assert "anywidget" not in loaded and "captum_explorer.widget" not in loaded
    loaded = _modules_after("from captum_explorer import open_insights")
    assert {"anywidget", "captum_explorer.widget"} <= loaded
    # nor its server
    assert "captum_course" not in loaded and "captum_course.webserver" not in loaded


@pytest.mark.parametrize("package", ["captum_helpers", "captum_explorer"])
def test_the_packages_hold_no_web_server(package):
    """Notebook 05's explorer talks over the kernel's own channel: nothing in the packages the
    notebooks import listens (the command line's server is in captum_course)."""
    for path in (ROOT / package).glob("*.py"):
        source = path.read_text(encoding="utf-8")
        for word in (".bind(", ".listen(", "serve_forever", "werkzeug", "flask", "Flask(",
                     "http.server", "socketserver", "aiohttp", "tornado"):
            assert word not in source, f"{path.name} mentions {word}"


def test_an_unknown_name_of_the_explorer_is_an_attribute_error():
    import captum_explorer

    with pytest.raises(AttributeError, match="no attribute 'open_insight'"):
        captum_explorer.open_insight


def test_the_course_folder_is_found_from_a_notebooks_kernel(tmp_path, monkeypatch):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "SOURCES.md").write_text("photos")
    (tmp_path / "notebooks").mkdir()
    monkeypatch.setattr(assets, "__file__",
                        str(tmp_path / "site-packages" / "captum_helpers" / "assets.py"))
    monkeypatch.chdir(tmp_path / "notebooks")  # where a notebook's kernel runs
    monkeypatch.delenv("CAPTUM_COURSE_ROOT", raising=False)
    assert assets.course_root() == tmp_path


def test_without_the_repository_the_error_says_where_the_course_lives(tmp_path, monkeypatch):
    monkeypatch.setattr(assets, "__file__",
                        str(tmp_path / "site-packages" / "captum_helpers" / "assets.py"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CAPTUM_COURSE_ROOT", raising=False)
    with pytest.raises(FileNotFoundError, match="used from a clone of the course repository"):
        assets.course_root()
    monkeypatch.setenv("CAPTUM_COURSE_ROOT", str(ROOT))
    assert assets.course_root() == ROOT


def test_every_package_folder_is_installed():
    """A non-editable install (Binder, Colab, a wheel) gets only the packages pyproject.toml lists:
    each folder with an __init__.py under the three packages' folders must be among them."""
    import re

    root = Path(__file__).resolve().parents[1]
    line = re.search(r"^packages = \[(.*?)\]$", (root / "pyproject.toml").read_text(),
                     re.M | re.S)
    listed = set(re.findall(r'"([\w.]+)"', line.group(1)))
    folders = {".".join(p.parent.relative_to(root).parts)
               for top in ("captum_helpers", "captum_explorer", "captum_course")
               for p in (root / top).rglob("__init__.py")}
    assert folders <= listed, folders - listed
