"""Loading photos and turning them into model inputs (introduced in 01_prediction)."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms as transforms
from PIL import Image, ImageOps, UnidentifiedImageError

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


class ImageLoadError(ValueError):
    """A file exists but cannot be used as a photo; the message names the file."""


def load_image(path: str | Path) -> Image.Image:
    """Open a photo as an upright 8-bit RGB PIL image, with a clear error if it can't be.

    Grayscale, palette, RGBA (composited on white), CMYK and 16-bit images are
    converted; a rotation recorded in EXIF is applied.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No such image file: '{path}' (looked from {Path.cwd()})")
    if path.is_dir():
        raise ImageLoadError(f"'{path}' is a folder, not an image file")
    try:
        with warnings.catch_warnings():
            # PIL only warns between 1x and 2x its pixel limit; treat both as errors.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()
                return _to_rgb(ImageOps.exif_transpose(img))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageLoadError(
            f"'{path}' is too large to load safely ({err}); resize it to a few megapixels first"
        ) from None
    except UnidentifiedImageError:
        raise ImageLoadError(f"'{path}' is not an image file that PIL can read") from None
    except (OSError, SyntaxError) as err:
        raise ImageLoadError(f"'{path}' could not be read as an image, it may be truncated or damaged ({err})") from None


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16/32-bit images: scale to 0-255 instead of clipping.
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") else max(float(arr.max()), 1.0)
        if img.mode == "I" and arr.max() <= 255:
            top = 255.0
        elif img.mode == "I" and arr.max() <= 65535:
            top = 65535.0  # 16-bit data that PIL keeps in 32 bits (16-bit PGM): mid-gray stays mid-gray
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
        raise ValueError(f"to_hwc expects a (C, H, W) or (1, C, H, W) tensor, got shape {tuple(tensor.shape)}")
    return tensor.detach().cpu().permute(1, 2, 0).numpy()
