"""The photos in img/ and the optional download of the walkthrough's originals."""
from __future__ import annotations

import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from .images import load_image
from .language import say



def course_root() -> Path:
    """The course repository's folder (the one holding img/ and notebooks/).

    The course is used from a clone of its repository (``make setup`` installs this package
    from it in editable mode): the photos and notebooks are not part of the installed package.
    ``$CAPTUM_COURSE_ROOT`` names the folder explicitly; otherwise it is found above this file
    or above the current folder (a notebook's kernel runs in notebooks/).
    """
    cwd = Path.cwd().resolve()
    candidates = [os.environ.get("CAPTUM_COURSE_ROOT"), Path(__file__).resolve().parent.parent,
                  cwd, *list(cwd.parents)[:2]]
    for folder in filter(None, candidates):
        if (Path(folder) / "img" / "SOURCES.md").is_file():
            return Path(folder)
    raise FileNotFoundError(
        "The course's img/ folder was not found: captum_helpers is used from a clone of the course "
        "repository (make setup, or pip install -e . there), or set CAPTUM_COURSE_ROOT to that "
        "clone."
    )


try:
    IMG_DIR = course_root() / "img"
except FileNotFoundError:  # an install without the repository: photo_paths() says so when asked
    IMG_DIR = Path("img")

# Bundled photos (see img/SOURCES.md) and the ImageNet class each shows.
PHOTOS = {
    "chelsea.png": 281,  # tabby (a cat)
    "coffee.png": 967,   # espresso
    "rocket.jpg": 657,   # missile
}

# More photos for the trust notebooks (06, 07), whose rule compares methods over at least six
# photos; the other notebooks keep to the three above. The class is the one each photo shows.
MORE_PHOTOS = {
    "grace_hopper.jpg": 652,  # military uniform
    "china.jpg": 698,  # palace
    "flower.jpg": 985,  # daisy
}

WALKTHROUGH_ZIP_URL = "https://pytorch-tutorial-assets.s3.amazonaws.com/youtube-series/video7.zip"
# The walkthrough's own photos and the labels it gives them.
WALKTHROUGH_PHOTOS = {"cat.jpg": 282, "teapot.jpg": 849, "trilobite.jpg": 69}


def photo_paths(include_walkthrough: bool = True, more: bool = False) -> list[Path]:
    """Paths of the photos in img/: the bundled ones (with ``more``, the trust notebooks' three
    more), then the walkthrough's if downloaded."""
    if not IMG_DIR.is_dir():
        course_root()  # raises the error that says where the photos come from
    paths = [IMG_DIR / name for name in (PHOTOS | MORE_PHOTOS if more else PHOTOS)]
    if include_walkthrough:
        paths += [IMG_DIR / n for n in WALKTHROUGH_PHOTOS if (IMG_DIR / n).exists()]
    return paths


def photo_label(path: str | Path) -> int:
    """The ImageNet class a bundled or walkthrough photo shows, by file name."""
    labels = {**PHOTOS, **MORE_PHOTOS, **WALKTHROUGH_PHOTOS}
    if Path(path).name not in labels:
        raise ValueError(f"no label known for {Path(path).name!r}; "
                         f"known photos: {', '.join(labels)}")
    return labels[Path(path).name]


def download_walkthrough_photos(
    dest: str | Path | None = None, url: str | None = None, force: bool = False,
    timeout: float = 30.0
) -> list[Path]:
    """Download the walkthrough's asset zip and unpack cat.jpg, teapot.jpg and trilobite.jpg into
    ``dest``.

    ``dest`` defaults to img/ and ``url`` to the walkthrough's zip. Photos already present
    are kept unless ``force``. Each photo is checked to open as an image before it is
    written. Returns the paths of the three photos.
    """
    # looked up at call time, so the defaults follow IMG_DIR / WALKTHROUGH_ZIP_URL if they are
    # changed
    dest = Path(IMG_DIR if dest is None else dest)
    url = WALKTHROUGH_ZIP_URL if url is None else url
    targets = [dest / name for name in WALKTHROUGH_PHOTOS]
    if not force and all(p.exists() for p in targets):
        return targets
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "assets.zip"
        print(say(f"Downloading {url} ...", f"正在下载 {url} ..."))
        try:
            with (urllib.request.urlopen(url, timeout=timeout) as response,
                  open(archive, "wb") as out):
                shutil.copyfileobj(response, out)
        except (urllib.error.URLError, TimeoutError) as err:  # HTTP 404, no network, a stalled read
            raise RuntimeError(f"could not download {url}: "
                               f"{getattr(err, 'reason', None) or err}") from err
        if not zipfile.is_zipfile(archive):
            raise RuntimeError(f"{url} did not return a zip file")
        with zipfile.ZipFile(archive) as zf:
            members = {Path(m).name: m for m in zf.namelist()
                       if not m.endswith("/") and "__MACOSX" not in m}
            missing = [n for n in WALKTHROUGH_PHOTOS if n not in members]
            if missing:
                raise RuntimeError(f"{url} does not contain {', '.join(missing)}")
            for name in WALKTHROUGH_PHOTOS:
                if not force and (dest / name).exists():
                    continue  # keep the photo already there, as documented
                staged = Path(tmp) / name
                staged.write_bytes(zf.read(members[name]))
                load_image(staged)  # raises a clear error if the download is damaged
                shutil.move(str(staged), dest / name)
    return targets

