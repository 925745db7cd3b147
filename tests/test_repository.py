"""Checks on the files learners get: notebooks stored clean, dependency lists in step."""
import json
import re
try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = (sorted((ROOT / "notebooks").glob("*.ipynb"))
             + sorted((ROOT / "notebooks" / "zh-CN").glob("*.ipynb")))


def test_the_course_notebooks_are_there():
    names = [p.stem for p in NOTEBOOKS]
    for expected in ["00_introduction", "01_prediction", "02_integrated_gradients",
                     "03_occlusion", "04_layer_gradcam", "05_captum_insights",
                     "06_can_you_trust_it", "07_more_trust_checks", "08_your_own_model",
                     "09_recap"]:
        assert expected in names


@pytest.mark.parametrize("path", NOTEBOOKS,
                         ids=lambda p: p.relative_to(ROOT / "notebooks").as_posix())
def test_notebook_is_stored_without_outputs(path):
    nb = json.loads(path.read_text())
    dirty = [i for i, c in enumerate(nb["cells"])
             if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs or execution counts"


@pytest.mark.parametrize("path", NOTEBOOKS,
                         ids=lambda p: p.relative_to(ROOT / "notebooks").as_posix())
def test_notebook_imports_the_package_without_path_tricks(path):
    source = "".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"])
    assert "sys.path" not in source
    assert "captum_helpers" in source


def _names(requirements):
    return {re.split(r"[<>=!~\[ ;]", r, maxsplit=1)[0].lower().replace("_", "-")
            for r in requirements}


def test_environment_yml_mirrors_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    wanted = set(project["dependencies"]) | set(extras["lab"]) | set(extras["site"])
    wanted |= {r for r in extras["test"] if not r.startswith("captum-helpers")}
    items = [line.strip()[2:].strip() for line in
             (ROOT / "environment.yml").read_text().splitlines() if line.strip().startswith("- ")]
    env_lines = [i[1:-1] if i[:1] == i[-1:] and i[:1] in "'\"" else i for i in items]  # YAML quotes
    missing = sorted(r for r in wanted if r not in env_lines)
    assert not missing, f"environment.yml lacks (or pins differently): {missing}"


def test_every_bundled_photo_has_a_source_entry():
    sources = (ROOT / "img" / "SOURCES.md").read_text()
    photos = [p.name for p in (ROOT / "img").iterdir()
              if p.suffix.lower() in {".png", ".jpg", ".jpeg"}]
    assert photos
    for name in photos:
        if name in {"cat.jpg", "teapot.jpg", "trilobite.jpg"}:  # downloaded, not bundled
            continue
        assert f"`{name}`" in sources, f"img/SOURCES.md does not say where {name} comes from"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_ends_by_asking_to_shut_its_kernel_down(path):
    """JupyterLab keeps every opened notebook's kernel alive: a class that never shuts one piles
    them up."""
    last = json.loads(path.read_text())["cells"][-1]
    assert (last["cell_type"] == "markdown"
            and "Kernel → Shut Down Kernel" in "".join(last["source"]))


@pytest.mark.parametrize("name", ["README.md", "README.zh-CN.md"])
def test_the_readme_is_a_newcomers_page_whose_links_exist(name):
    """At most 150 lines: what the course is, the two commands, the notebooks, where the site and
    the guides are; everything else is in docs/, which the website renders."""
    text = (ROOT / name).read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 150
    assert "make lab" in text and "make test" in text and "make site" in text
    links = [href.split("#")[0] for href in re.findall(r"\]\(([^)\s]+)\)", text)
             if "://" not in href]
    assert {"docs/instructor.md", "docs/hub.md"} <= set(links)
    assert [href for href in links if href and not (ROOT / href).exists()] == []
