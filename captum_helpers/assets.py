"""The photos in img/ and the optional download of the walkthrough's originals."""
from __future__ import annotations

import shutil
import tempfile
import urllib.request
import zipfile
from pathlib import Path

from .images import load_image

IMG_DIR = Path(__file__).resolve().parent.parent / "img"

# Bundled photos (see img/SOURCES.md) and the ImageNet class each shows.
PHOTOS = {
    "chelsea.png": 281,  # tabby (a cat)
    "coffee.png": 967,   # espresso
    "rocket.jpg": 657,   # missile
}

WALKTHROUGH_ZIP_URL = "https://pytorch-tutorial-assets.s3.amazonaws.com/youtube-series/video7.zip"
# The walkthrough's own photos and the labels it gives them.
WALKTHROUGH_PHOTOS = {"cat.jpg": 282, "teapot.jpg": 849, "trilobite.jpg": 69}


def photo_paths(include_walkthrough: bool = True) -> list[Path]:
    """Paths of the photos in img/: the bundled ones, then the walkthrough's if downloaded."""
    paths = [IMG_DIR / name for name in PHOTOS]
    if include_walkthrough:
        paths += [IMG_DIR / n for n in WALKTHROUGH_PHOTOS if (IMG_DIR / n).exists()]
    return paths


def download_walkthrough_photos(
    dest: str | Path = IMG_DIR, url: str = WALKTHROUGH_ZIP_URL, force: bool = False, timeout: float = 30.0
) -> list[Path]:
    """Download the walkthrough's asset zip and unpack cat.jpg, teapot.jpg and trilobite.jpg into ``dest``.

    Photos already present are kept unless ``force``. Each photo is checked to open as an
    image before it is written. Returns the paths of the three photos.
    """
    dest = Path(dest)
    targets = [dest / name for name in WALKTHROUGH_PHOTOS]
    if not force and all(p.exists() for p in targets):
        return targets
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "assets.zip"
        print(f"Downloading {url} ...")
        with urllib.request.urlopen(url, timeout=timeout) as response, open(archive, "wb") as out:
            shutil.copyfileobj(response, out)
        if not zipfile.is_zipfile(archive):
            raise RuntimeError(f"{url} did not return a zip file")
        with zipfile.ZipFile(archive) as zf:
            members = {Path(m).name: m for m in zf.namelist() if not m.endswith("/") and "__MACOSX" not in m}
            missing = [n for n in WALKTHROUGH_PHOTOS if n not in members]
            if missing:
                raise RuntimeError(f"{url} does not contain {', '.join(missing)}")
            for name in WALKTHROUGH_PHOTOS:
                staged = Path(tmp) / name
                staged.write_bytes(zf.read(members[name]))
                load_image(staged)  # raises a clear error if the download is damaged
                shutil.move(str(staged), dest / name)
    return targets

