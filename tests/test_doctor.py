"""`python -m captum_course`: `prefetch` against a local HTTP server serving files the tests make,
and `doctor`'s verdicts.

The server, the random-weight ResNet18 file and the empty TORCH_HOME come from tests/conftest.py.
"""
import hashlib
import importlib.metadata
import io
import sys
import zipfile
from pathlib import Path

import pytest
import torch
import torchvision
from PIL import Image

import captum_explorer.widget
from captum_course import doctor
from captum_course.__main__ import main
from captum_helpers import assets, models

PHOTO_NAMES = sorted(assets.WALKTHROUGH_PHOTOS)  # cat.jpg, teapot.jpg, trilobite.jpg


@pytest.fixture
def caches(tmp_path, torch_home, monkeypatch):
    """An empty torch hub cache and an img/ folder with only the bundled photos, both in
    tmp_path."""
    img = tmp_path / "img"
    img.mkdir()
    for name in assets.PHOTOS:
        (img / name).write_bytes((assets.IMG_DIR / name).read_bytes())
    monkeypatch.setattr(assets, "IMG_DIR", img)
    return tmp_path


def _checkpoints(tmp_path: Path) -> Path:
    """The torch hub cache's checkpoints folder, checked to be the test's own."""
    folder = Path(models.resnet18_checkpoint()).parent
    assert tmp_path in folder.parents
    return folder


def _checkpoint_bytes(seed: int) -> bytes:
    torch.manual_seed(seed)
    buffer = io.BytesIO()
    torch.save(torchvision.models.resnet18().state_dict(), buffer)
    return buffer.getvalue()


def _serve_weights(server, monkeypatch, data: bytes, name: str | None = None) -> str:
    """Serve ``data`` as ``resnet18-<sha256 prefix>.pth`` (or ``name``) and point RESNET18_URL at
    it."""
    name = name or f"resnet18-{hashlib.sha256(data).hexdigest()[:8]}.pth"
    server.files[name] = data
    monkeypatch.setattr(models, "RESNET18_URL", server.url(name))
    return name


def _photo(colour) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), colour).save(buffer, format="JPEG")
    return buffer.getvalue()


def _serve_photo_zip(server, monkeypatch, photos: dict[str, bytes]) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in photos.items():
            zf.writestr(f"video7/img/{name}", data)
        zf.writestr("__MACOSX/video7/img/._cat.jpg", b"resource fork, not a photo")
    server.files["video7.zip"] = buffer.getvalue()
    monkeypatch.setattr(assets, "WALKTHROUGH_ZIP_URL", server.url("video7.zip"))


@pytest.fixture
def weights(resnet18_file) -> bytes:
    return resnet18_file[0]  # a random-weight ResNet18 (tests/conftest.py)


@pytest.fixture
def good_photos():
    return {name: _photo(colour) for name, colour in zip(PHOTO_NAMES, ["orange", "white", "grey"])}


def test_prefetch_downloads_and_verifies_weights_and_photos(http_server, caches, weights,
                                                            good_photos, monkeypatch, capsys):
    name = _serve_weights(http_server, monkeypatch, weights)
    _serve_photo_zip(http_server, monkeypatch, good_photos)

    assert main(["prefetch"]) == 0
    out = capsys.readouterr().out
    assert ("ResNet18 weights: ok" in out and "sha256 verified" in out
            and "11,689,512 parameters" in out)
    assert "Walkthrough photos: ok" in out
    cached = _checkpoints(caches) / name
    assert cached.read_bytes() == weights
    for photo in PHOTO_NAMES:
        assert Image.open(caches / "img" / photo).size == (40, 30)


def test_prefetch_rejects_weights_whose_hash_does_not_match_their_name(
        http_server, caches, weights, good_photos, monkeypatch, capsys):
    _serve_weights(http_server, monkeypatch, weights, name="resnet18-0badc0de.pth")
    _serve_photo_zip(http_server, monkeypatch, good_photos)

    assert main(["prefetch"]) == 1
    out = capsys.readouterr().out
    assert "ResNet18 weights: FAILED" in out and "hash" in out
    assert "Walkthrough photos: ok" in out  # one failure does not stop the other download
    assert not (_checkpoints(caches) / "resnet18-0badc0de.pth").exists()


def test_prefetch_force_replaces_a_cached_file_that_is_not_the_served_one(
        http_server, caches, weights, good_photos, monkeypatch, capsys):
    name = _serve_weights(http_server, monkeypatch, weights)
    _serve_photo_zip(http_server, monkeypatch, good_photos)
    cached = _checkpoints(caches) / name
    cached.parent.mkdir(parents=True)
    cached.write_bytes(_checkpoint_bytes(seed=1))  # loads fine, but other bytes than the name says

    assert main(["prefetch"]) == 1
    assert "does not start with" in capsys.readouterr().out and cached.read_bytes() != weights
    assert main(["prefetch", "--force"]) == 0
    assert cached.read_bytes() == weights


def test_prefetch_rejects_a_photo_that_is_not_an_image(http_server, caches, weights, good_photos,
                                                       monkeypatch, capsys):
    _serve_weights(http_server, monkeypatch, weights)
    _serve_photo_zip(http_server, monkeypatch,
                     {**good_photos, "teapot.jpg": b"<html>Access denied</html>"})

    assert main(["prefetch"]) == 1
    out = capsys.readouterr().out
    assert "Walkthrough photos: FAILED" in out and "teapot.jpg" in out
    assert "ResNet18 weights: ok" in out
    assert not (caches / "img" / "teapot.jpg").exists()


def test_prefetch_reports_an_unreachable_server(http_server, caches, monkeypatch, capsys):
    monkeypatch.setattr(models, "RESNET18_URL", http_server.url("missing/resnet18-f37072fd.pth"))
    monkeypatch.setattr(assets, "WALKTHROUGH_ZIP_URL", http_server.url("missing.zip"))

    assert main(["prefetch"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("ResNet18 weights: FAILED") and "404" in line
               for line in lines), lines
    assert any(line.startswith("Walkthrough photos: FAILED") and "missing.zip" in line
               for line in lines), lines


def _doctor(capsys) -> tuple[int, str]:
    code = main(["doctor"])
    return code, capsys.readouterr().out


def test_doctor_is_happy_with_the_offline_model(caches, capsys):
    code, out = _doctor(capsys)
    assert code == 0, out
    assert "Ready" in out
    assert "model: resnet18 or efficientnet_lite0: ResNet18 weights not cached" in out
    assert ("ok    captum: 0.9.0" in out
            and f"ok    torch: {importlib.metadata.version('torch')}" in out)
    assert "ok    explorer front end" in out and "explorer.js in an anywidget" in out
    assert "3 bundled photos" in out
    assert "info  browser:" in out


def test_doctor_reports_cached_weights_that_are_not_the_official_file(caches, monkeypatch, capsys):
    checkpoint = Path(models.resnet18_checkpoint())
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(_checkpoint_bytes(seed=0))  # what the resnet18-random notebook run uses
    monkeypatch.setenv(models.MODEL_ENV, "resnet18")

    code, out = _doctor(capsys)
    assert code == 0, out
    assert "model: resnet18: ImageNet weights cached, chosen by $CAPTUM_HELPERS_MODEL" in out
    assert "not the official file" in out


def _no_fallback(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite_pytorch", None)  # import fails


def _forced_resnet18(monkeypatch):
    monkeypatch.setenv(models.MODEL_ENV, "resnet18")


def _forced_fallback_missing(monkeypatch):
    monkeypatch.setenv(models.MODEL_ENV, "efficientnet_lite0")
    _no_fallback(monkeypatch)


def _photos_missing(monkeypatch):
    monkeypatch.setattr(assets, "IMG_DIR", assets.IMG_DIR.parent / "no-photos-here")


def _explorer_missing(monkeypatch):
    """The course's explorer front end, not captum's (captum 0.9 has no Insights)."""
    monkeypatch.setattr(captum_explorer.widget, "FRONT_END", Path("gone", "explorer.js"))


def _explorer_not_importable(monkeypatch):
    monkeypatch.setitem(sys.modules, "captum_explorer.widget", None)  # import fails


def _bad_model_name(monkeypatch):
    monkeypatch.setenv(models.MODEL_ENV, "resnet50")


def _required_package_missing(monkeypatch):
    """The requirements come from the installed metadata: a new one there is checked too."""
    requires = importlib.metadata.requires(doctor.DISTRIBUTION)
    monkeypatch.setattr(importlib.metadata, "requires",
                        lambda dist: [*requires, "no-such-package>=1"])


@pytest.mark.parametrize("break_it, problem, message", [
    (_no_fallback, "model", "none offline: ResNet18 weights not cached"),
    (_forced_resnet18, "model",
     "ResNet18 weights not cached (run `python -m captum_course prefetch` online)"),
    (_forced_fallback_missing, "model",
     "efficientnet_lite0 (by $CAPTUM_HELPERS_MODEL) is not available"),
    (_photos_missing, "photos", "chelsea.png"),
    (_explorer_missing, "explorer front end",
     "explorer.js is missing: reinstall the course: `make setup` (or `pip install -e .`)"),
    (_explorer_not_importable, "explorer front end", "reinstall the course: `make setup`"),
    (_bad_model_name, "model", "unknown model 'resnet50'"),
    (_required_package_missing, "no-such-package", "not installed: run `make setup`"),
], ids=lambda v: getattr(v, "__name__", None))
def test_doctor_fails_and_names_what_is_missing(caches, monkeypatch, capsys, break_it, problem,
                                                message):
    break_it(monkeypatch)
    code, out = _doctor(capsys)
    assert code == 1, out
    fail_lines = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert any(line.startswith(f"FAIL  {problem}:") and message in line for line in fail_lines), out
    assert f"1 problem(s): {problem}." in out


@pytest.mark.parametrize("name, tested, installed", [
    ("python", ("3.10", "3.12"), "3.13.0"),
    ("numpy", ("1.24", "1.26"), "2.0.1"),
    ("captum", ("0.9", "0.9"), "0.8.0"),
])
def test_doctor_flags_versions_the_course_was_not_tested_with(monkeypatch, name, tested, installed):
    monkeypatch.setitem(doctor.TESTED, name, tested)
    check = doctor._tested(name, installed)
    assert check.status == "warn"
    assert check.detail == (f"{installed}: the course is tested with {name} {tested[0]} to "
                            f"{tested[1]}")
    assert doctor._tested(name, f"{tested[1]}.3").status == "ok"


def test_doctor_lists_the_tested_versions_of_python_numpy_and_captum(caches, capsys):
    code, out = _doctor(capsys)
    for name in ("python", "numpy", "captum"):
        assert any(line.split()[1] == f"{name}:" for line in out.splitlines() if line.strip()), out


def test_summary_is_one_line_naming_the_model_and_versions(caches):
    line = doctor.summary()
    assert "\n" not in line
    assert line.startswith("Notebooks will use resnet18 or efficientnet_lite0 (")
    assert f"numpy {importlib.metadata.version('numpy')}" in line and "captum 0.9.0" in line
    assert line.endswith("ready.")
