"""Loading photos and turning them into model inputs (introduced in 01_prediction)."""
from __future__ import annotations

import errno
import os
import stat
import warnings
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms as transforms
from PIL import Image, ImageOps, UnidentifiedImageError

from .language import say

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# The model expects 224x224 RGB images with values in [0, 1] ...
transform = transforms.Compose([
    transforms.Resize(224),
    transforms.CenterCrop(224),
    transforms.ToTensor(),
])
# ... normalized per channel the way ImageNet training data was.
transform_normalize = transforms.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD)

# Resize(224) makes the shorter side 224 and the longer 224 x long / short: at 20:1 that is
# 224 x 4,480 = 1.0 Mpx (4 MB at PIL's 4 bytes per RGB pixel), while a 65000 x 1 strip would
# become 224 x 14,560,000 = 3,261 Mpx, 13 GB. A side of one pixel is a line, not a picture.
MAX_ASPECT = 20
MIN_SIDE = 2
# Paths that exist but are no file: opening a FIFO or device may block or read for ever.
_NOT_FILES = {stat.S_ISDIR: "a folder", stat.S_ISFIFO: "a named pipe (FIFO)",
              stat.S_ISSOCK: "a socket", stat.S_ISCHR: "a character device",
              stat.S_ISBLK: "a block device"}


class ImageLoadError(ValueError):
    """A file exists but cannot be used as a photo; the message names the file."""


def load_image(path: str | Path) -> Image.Image:
    """Open a photo as an upright 8-bit RGB PIL image, with a clear error if it can't be.

    Grayscale, palette, RGBA (composited on white), CMYK and 16-bit images are
    converted; a rotation recorded in EXIF is applied. Raises FileNotFoundError,
    PermissionError or ImageLoadError with a message naming the file and the cause.
    """
    path = Path(path)
    mode = _stat_mode(path)
    for is_kind, kind in _NOT_FILES.items():
        if is_kind(mode):
            raise ImageLoadError(f"'{path}' is {kind}, not an image file")
    try:
        with open(path, "rb") as file, warnings.catch_warnings():
            # PIL only warns between 1x and 2x its pixel limit; treat both as errors.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(file) as img:
                _check_size(path, img.size)  # from the header: nothing decoded yet
                img.load()
                return _to_rgb(ImageOps.exif_transpose(img))
    except PermissionError:  # from open(); PIL's own errors are never this one
        raise PermissionError(f"Permission denied reading '{path}' "
                              f"(its mode is {stat.filemode(mode)})") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageLoadError(f"'{path}' is too large to load safely ({err}); "
                             "resize it to a few megapixels first") from None
    except UnidentifiedImageError:
        raise ImageLoadError(f"'{path}' is not an image file that PIL can read") from None
    except (OSError, SyntaxError) as err:
        raise ImageLoadError(f"'{path}' could not be read as an image, "
                             f"it may be truncated or damaged ({err})") from None


def _stat_mode(path: Path) -> int:
    try:
        return path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        # notebook 01 shows this message to the learner: in Chinese in the Chinese edition
        link = (say(f"; it is a link to '{os.readlink(path)}', which is missing",
                    f"；它是指向 '{os.readlink(path)}' 的链接，而那个文件不存在")
                if path.is_symlink() else "")
        raise FileNotFoundError(say(
            f"No such image file: '{path}' (looked from {Path.cwd()}){link}",
            f"没有这个图像文件：'{path}'（从 {Path.cwd()} 查找）{link}")) from None
    except PermissionError:
        # looking a name up needs search (x) permission on every folder on the way
        folder = next((p for p in reversed(path.absolute().parents)
                       if not os.access(p, os.X_OK)), path.parent)
        raise PermissionError(f"Permission denied looking up '{path}': "
                              f"this user may not enter the folder '{folder}'") from None
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise ImageLoadError(f"'{path}' is a symlink loop: "
                                 "its links lead back to themselves") from None
        raise ImageLoadError(f"'{path}' could not be looked up ({err.strerror})") from None


def _check_size(path: Path, size: tuple[int, int]) -> None:
    short, long = sorted(size)
    if short >= 1 and long > MAX_ASPECT * short:
        resized = 224 * long // short
        raise ImageLoadError(
            f"'{path}' is {size[0]} x {size[1]} pixels: Resize(224) would make it 224 x {resized:,}"
            f" ({224 * resized * 4 / 1e9:,.1f} GB); crop it to at most {MAX_ASPECT}:1 first")
    if short < MIN_SIDE:
        raise ImageLoadError(f"'{path}' is {size[0]} x {size[1]} pixels, too small to be a photo")


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16/32-bit images: scale to 0-255 instead of clipping. Integers by the narrowest of
        # 8 or 16 bits that holds them (mid-gray stays mid-gray), wider ones by their peak.
        arr = np.asarray(img, dtype=np.float64)
        peak = float(arr.max())
        top = max(peak, 1.0)  # floating point: no bit depth to go by
        if img.mode != "F":
            top = 65535.0 if img.mode.startswith("I;16") else next(
                t for t in (255.0, 65535.0, peak) if peak <= t)
        img = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img)
    return img.convert("RGB")


def preprocess(img: Image.Image) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(transformed_img, input_img)``: the (3, 224, 224) crop in [0, 1] for
    plotting and the normalized (1, 3, 224, 224) batch for the model."""
    transformed_img = transform(img)
    input_img = transform_normalize(transformed_img).unsqueeze(0)  # batch of one
    return transformed_img, input_img


def to_hwc(tensor: torch.Tensor) -> np.ndarray:
    """(1, C, H, W) or (C, H, W) tensor -> (H, W, C) numpy array, the layout matplotlib
    and ``captum.attr.visualization`` expect."""
    if tensor.dim() == 4:
        if tensor.shape[0] != 1:
            raise ValueError(f"to_hwc expects a batch of one, got shape {tuple(tensor.shape)}")
        tensor = tensor[0]
    if tensor.dim() != 3:
        raise ValueError("to_hwc expects a (C, H, W) or (1, C, H, W) tensor, "
                         f"got shape {tuple(tensor.shape)}")
    return tensor.detach().cpu().permute(1, 2, 0).numpy()
