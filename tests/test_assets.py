"""captum_helpers.assets and the command line: the bundled photos, and downloading the
walkthrough's photos from a zip a local HTTP server sends (see conftest.py).
"""
import io
import re
import zipfile

import numpy as np
import pytest
from PIL import Image

import captum_helpers.assets as assets
from captum_helpers import (
    IMG_DIR, PHOTOS, WALKTHROUGH_PHOTOS, download_walkthrough_photos, label, load_image,
    photo_paths,
)
from captum_course.__main__ import main

# a colour per photo, so a test can tell which file ended up where
COLORS = {"cat.jpg": (200, 40, 40), "teapot.jpg": (40, 200, 40), "trilobite.jpg": (40, 40, 200)}
ZIP_NAME = "video7.zip"


def _jpeg(color) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (24, 16), color).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def make_zip(photos=tuple(COLORS), extra: dict[str, bytes] | None = None) -> bytes:
    """A zip laid out like the walkthrough's: photos in a nested folder, plus macOS clutter."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("video7/", b"")
        zf.writestr("video7/img/", b"")
        for name in photos:
            zf.writestr(f"video7/img/{name}", _jpeg(COLORS[name]))
            zf.writestr(f"__MACOSX/video7/img/._{name}",
                        b"\x00\x05\x16\x07 resource fork, not a photo")
        zf.writestr("video7/notebook.ipynb", b"{}")
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return buffer.getvalue()


def assert_photo(path, color):
    pixels = np.asarray(load_image(path)).astype(int)
    np.testing.assert_allclose(pixels.mean(axis=(0, 1)), color, atol=3)


@pytest.fixture
def zip_server(http_server):
    http_server.files[ZIP_NAME] = make_zip()
    return http_server


@pytest.fixture
def dest(tmp_path):
    return tmp_path / "img"


def test_download_unpacks_the_three_photos_from_the_nested_folder(zip_server, dest, capsys):
    paths = download_walkthrough_photos(dest, url=zip_server.url(ZIP_NAME))

    assert paths == [dest / name for name in WALKTHROUGH_PHOTOS]
    for path in paths:
        assert_photo(path, COLORS[path.name])
    # nothing else unpacked
    assert sorted(p.name for p in dest.iterdir()) == sorted(WALKTHROUGH_PHOTOS)
    assert zip_server.hits[ZIP_NAME] == 1
    assert f"Downloading {zip_server.url(ZIP_NAME)}" in capsys.readouterr().out


def test_photos_already_present_skip_the_download(zip_server, dest):
    dest.mkdir()
    for name in WALKTHROUGH_PHOTOS:
        Image.new("RGB", (8, 8), (0, 0, 0)).save(dest / name)

    download_walkthrough_photos(dest, url=zip_server.url(ZIP_NAME))

    assert zip_server.total_hits == 0
    assert_photo(dest / "cat.jpg", (0, 0, 0))


def test_force_downloads_again_and_replaces_the_photos(zip_server, dest):
    dest.mkdir()
    for name in WALKTHROUGH_PHOTOS:
        Image.new("RGB", (8, 8), (0, 0, 0)).save(dest / name)

    download_walkthrough_photos(dest, url=zip_server.url(ZIP_NAME), force=True)

    assert zip_server.hits[ZIP_NAME] == 1
    for name in WALKTHROUGH_PHOTOS:
        assert_photo(dest / name, COLORS[name])


def test_a_missing_photo_is_downloaded_and_the_present_ones_are_kept(zip_server, dest):
    dest.mkdir()
    Image.new("RGB", (8, 8), (0, 0, 0)).save(dest / "cat.jpg")  # the learner's own cat

    download_walkthrough_photos(dest, url=zip_server.url(ZIP_NAME))

    assert zip_server.hits[ZIP_NAME] == 1
    assert_photo(dest / "cat.jpg", (0, 0, 0))
    assert_photo(dest / "teapot.jpg", COLORS["teapot.jpg"])
    assert_photo(dest / "trilobite.jpg", COLORS["trilobite.jpg"])


def test_a_zip_without_a_photo_is_a_clear_error(http_server, dest):
    http_server.files[ZIP_NAME] = make_zip(photos=["cat.jpg", "trilobite.jpg"])
    url = http_server.url(ZIP_NAME)
    with pytest.raises(RuntimeError, match=re.escape(f"{url} does not contain teapot.jpg") + "$"):
        download_walkthrough_photos(dest, url=url)
    assert list(dest.iterdir()) == []  # nothing half-written


def test_a_response_that_is_not_a_zip_is_a_clear_error(http_server, dest):
    http_server.files[ZIP_NAME] = b"<html><body>Please log in to the hotel Wi-Fi</body></html>"
    url = http_server.url(ZIP_NAME)
    with pytest.raises(RuntimeError, match=re.escape(f"{url} did not return a zip file")):
        download_walkthrough_photos(dest, url=url)
    assert list(dest.iterdir()) == []


def test_a_damaged_photo_in_the_zip_is_a_clear_error_and_not_written(http_server, dest):
    http_server.files[ZIP_NAME] = make_zip(photos=["cat.jpg", "trilobite.jpg"],
                                           extra={"video7/img/teapot.jpg": _jpeg((1, 2, 3))[:200]})
    with pytest.raises(ValueError, match="teapot.jpg.*truncated"):
        download_walkthrough_photos(dest, url=http_server.url(ZIP_NAME))
    assert not (dest / "teapot.jpg").exists()


def test_http_404_names_the_url(http_server, dest):
    url = http_server.url("gone.zip")
    with pytest.raises(RuntimeError, match=re.escape(f"could not download {url}: Not Found")):
        download_walkthrough_photos(dest, url=url)
    assert http_server.hits["gone.zip"] == 1


def test_unreachable_server_names_the_url(closed_port_url, dest):
    with pytest.raises(RuntimeError,
                       match=re.escape(f"could not download {closed_port_url}: ") + ".*[Rr]efused"):
        download_walkthrough_photos(dest, url=closed_port_url, timeout=5)


@pytest.fixture
def img_dir(zip_server, tmp_path, monkeypatch):
    """img/ and the zip's URL redirected, as the command line and the defaults see them."""
    folder = tmp_path / "img"
    monkeypatch.setattr(assets, "IMG_DIR", folder)
    monkeypatch.setattr(assets, "WALKTHROUGH_ZIP_URL", zip_server.url(ZIP_NAME))
    return folder


def test_defaults_follow_img_dir_and_the_zip_url(img_dir, zip_server):
    paths = download_walkthrough_photos()
    assert paths == [img_dir / name for name in WALKTHROUGH_PHOTOS]
    assert all(p.exists() for p in paths) and zip_server.hits[ZIP_NAME] == 1


# ---------------------------------------------------------------- command line

def test_cli_photos_downloads_once_then_again_with_force(img_dir, zip_server, capsys):
    assert main(["photos"]) == 0
    out = capsys.readouterr().out
    for name in WALKTHROUGH_PHOTOS:
        assert str(img_dir / name) in out
        assert_photo(img_dir / name, COLORS[name])
    assert zip_server.hits[ZIP_NAME] == 1

    assert main(["photos"]) == 0
    assert zip_server.hits[ZIP_NAME] == 1  # already there

    assert main(["photos", "--force"]) == 0
    assert zip_server.hits[ZIP_NAME] == 2


# ---------------------------------------------------------------- the bundled photos

def test_bundled_photos_are_there_and_load():
    paths = photo_paths(include_walkthrough=False)
    assert paths == [IMG_DIR / name for name in PHOTOS]
    for path in paths:
        assert min(load_image(path).size) >= 224  # big enough for the 224 x 224 crop


def test_photo_paths_adds_the_walkthrough_photos_once_downloaded(tmp_path, monkeypatch):
    monkeypatch.setattr(assets, "IMG_DIR", tmp_path)
    assert [p.name for p in photo_paths()] == list(PHOTOS)
    (tmp_path / "teapot.jpg").write_bytes(_jpeg((0, 0, 0)))
    assert [p.name for p in photo_paths()] == [*PHOTOS, "teapot.jpg"]
    assert [p.name for p in photo_paths(include_walkthrough=False)] == list(PHOTOS)


@pytest.mark.parametrize("name, index, expected", [
    ("chelsea.png", 281, "tabby"), ("coffee.png", 967, "espresso"), ("rocket.jpg", 657, "missile"),
    ("cat.jpg", 282, "tiger cat"), ("teapot.jpg", 849, "teapot"),
    ("trilobite.jpg", 69, "trilobite"),
])
def test_photo_labels_are_the_imagenet_classes_they_show(name, index, expected):
    assert {**PHOTOS, **WALKTHROUGH_PHOTOS}[name] == index
    assert label(index) == expected
