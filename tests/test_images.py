"""captum_helpers.images: loading photos of every kind as upright RGB, and the model inputs."""
import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from captum_helpers import IMAGENET_MEAN, IMAGENET_STD, ImageLoadError, load_image, preprocess, to_hwc, transform

WHITE, RED, BLACK = (255, 255, 255), (255, 0, 0), (0, 0, 0)


# ---------------------------------------------------------------- files load_image must refuse

def _photo_bytes(fmt: str) -> bytes:
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(buffer, fmt)
    return buffer.getvalue()


def _huge_png(width: int, height: int) -> bytes:
    """A real, valid 1-bit PNG of width x height black pixels: a few kB on disk."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor = zlib.compressobj(9)
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte, then 1 bit per pixel
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _missing(tmp_path):
    return tmp_path / "no_such_photo.jpg"


def _folder(tmp_path):
    path = tmp_path / "photos.jpg"
    path.mkdir()
    return path


def _text_named_jpg(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("this is a shopping list, not a photo\n")
    return path


def _truncated(fmt, ext):
    def make(tmp_path):
        data = _photo_bytes(fmt)
        path = tmp_path / f"half.{ext}"
        path.write_bytes(data[: len(data) // 2])
        return path
    return make


def _huge(width, height):
    def make(tmp_path):
        path = tmp_path / "huge.png"
        path.write_bytes(_huge_png(width, height))
        return path
    return make


# PIL's limit is Image.MAX_IMAGE_PIXELS (89.5 Mpx); between 1x and 2x it only warns.
BAD_FILES = {
    "missing": (_missing, FileNotFoundError, "No such image file"),
    "folder": (_folder, ImageLoadError, "is a folder"),
    "text file named .jpg": (_text_named_jpg, ImageLoadError, "not an image"),
    "JPEG cut in half": (_truncated("JPEG", "jpg"), ImageLoadError, "truncated"),
    "PNG cut in half": (_truncated("PNG", "png"), ImageLoadError, "truncated"),
    "100 Mpx PNG (over the limit)": (_huge(10_000, 10_000), ImageLoadError, "too large"),
    "200 Mpx PNG (over twice the limit)": (_huge(20_000, 10_000), ImageLoadError, "too large"),
}


@pytest.mark.parametrize("make, error, message", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_load_image_refuses_bad_files_naming_them(tmp_path, make, error, message):
    path = make(tmp_path)
    with pytest.raises(error, match=message) as info:
        load_image(path)
    assert str(path) in str(info.value)


def test_image_load_error_is_a_value_error():
    assert issubclass(ImageLoadError, ValueError)


# ---------------------------------------------------------------- images load_image must convert

def _save(img: Image.Image, name: str, **kwargs):
    def make(tmp_path):
        path = tmp_path / name
        img.save(path, **kwargs)
        return path
    return make


def _palette_image() -> Image.Image:
    img = Image.new("P", (3, 1))
    img.putpalette([255, 0, 0, 0, 0, 255, 0, 128, 0] + [0] * (256 * 3 - 9))
    img.putdata([0, 1, 2])
    return img


def _rgba_image() -> Image.Image:
    # opaque red, fully transparent red, half-transparent black
    return Image.fromarray(np.array([[[255, 0, 0, 255], [255, 0, 0, 0], [0, 0, 0, 128]]], np.uint8), "RGBA")


def _cmyk_image() -> Image.Image:
    # no ink, full cyan, full black
    return Image.fromarray(np.array([[[0, 0, 0, 0], [255, 0, 0, 0], [0, 0, 0, 255]]], np.uint8), "CMYK")


# no pixel at full white, so scaling by the brightest pixel would show too
GRAY16 = np.array([[0, 1000, 32768, 49151]], np.uint16)
# 16-bit values scaled to 8 bits (v / 65535 * 255); clipping would give 0, 255, 255, 255
GRAY16_AS_8BIT = [(0,) * 3, (4,) * 3, (128,) * 3, (191,) * 3]

def _gray16_pgm(tmp_path):
    """A 16-bit PGM, which PIL opens as 32-bit mode "I"."""
    path = tmp_path / "gray16.pgm"
    path.write_bytes(b"P5\n4 1\n65535\n" + GRAY16.astype(">u2").tobytes())
    return path


GOOD_FILES = {
    "grayscale L": (_save(Image.fromarray(np.array([[0, 100, 255]], np.uint8), "L"), "gray.png"),
                    "L", [BLACK, (100,) * 3, WHITE]),
    "RGBA, transparent parts white": (_save(_rgba_image(), "rgba.png"), "RGBA", [RED, WHITE, (127,) * 3]),
    "palette P": (_save(_palette_image(), "palette.png"), "P", [RED, (0, 0, 255), (0, 128, 0)]),
    "palette P with a transparent entry": (_save(_palette_image(), "palette_t.png", transparency=1),
                                           "P", [RED, WHITE, (0, 128, 0)]),
    "palette GIF with a transparent entry": (_save(_palette_image(), "palette_t.gif", transparency=1),
                                             "P", [RED, WHITE, (0, 128, 0)]),
    "CMYK TIFF": (_save(_cmyk_image(), "cmyk.tif"), "CMYK", [WHITE, (0, 255, 255), BLACK]),
    "CMYK JPEG": (_save(_cmyk_image().resize((48, 16), Image.NEAREST), "cmyk.jpg", quality=95),
                  "CMYK", None),  # checked below: JPEG blurs the edges
    "16-bit PNG (I;16)": (_save(Image.fromarray(GRAY16), "gray16.png"), "I;16", GRAY16_AS_8BIT),
    "16-bit PGM (I)": (_gray16_pgm, "I", GRAY16_AS_8BIT),
    "RGB JPEG": (_save(Image.new("RGB", (3, 1), RED), "red.jpg", quality=95), "RGB", None),
}


@pytest.mark.parametrize("make, stored_mode, expected", GOOD_FILES.values(), ids=GOOD_FILES.keys())
def test_load_image_gives_8bit_rgb(tmp_path, make, stored_mode, expected):
    path = make(tmp_path)
    with Image.open(path) as stored:
        assert stored.mode == stored_mode  # the file really is of the kind under test

    img = load_image(path)

    assert isinstance(img, Image.Image) and img.mode == "RGB"
    pixels = np.asarray(img).astype(int)
    if expected is not None:
        np.testing.assert_allclose(pixels[0], np.array(expected), atol=1)
    elif stored_mode == "CMYK":  # white, cyan, black thirds: compare the middle of each
        np.testing.assert_allclose(pixels[8, [8, 24, 40]], [WHITE, (0, 255, 255), BLACK], atol=12)
    else:
        np.testing.assert_allclose(pixels, np.broadcast_to(RED, pixels.shape), atol=12)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
@pytest.mark.parametrize("orientation, upright_corner", [(6, "top right"), (8, "bottom left"), (3, "bottom right")])
def test_load_image_applies_exif_rotation(tmp_path, fmt, orientation, upright_corner):
    # stored 32 wide x 20 high, gray with a red block in its top-left corner
    stored = np.full((20, 32, 3), 128, np.uint8)
    stored[:6, :6] = RED
    exif = Image.Exif()
    exif[0x0112] = orientation  # the EXIF Orientation tag
    path = tmp_path / f"phone.{fmt.lower()}"
    Image.fromarray(stored).save(path, fmt, exif=exif, **({"quality": 95} if fmt == "JPEG" else {}))

    img = load_image(path)

    assert img.size == ((32, 20) if orientation == 3 else (20, 32))  # 90-degree turns swap width and height
    pixels = np.asarray(img).astype(int)
    corners = {"top left": pixels[2, 2], "top right": pixels[2, -3],
               "bottom left": pixels[-3, 2], "bottom right": pixels[-3, -3]}
    for corner, value in corners.items():
        expected = RED if corner == upright_corner else (128, 128, 128)
        np.testing.assert_allclose(value, expected, atol=12, err_msg=corner)
    if fmt == "PNG":  # lossless: the whole picture is the stored one turned upright
        turns = {6: -1, 8: 1, 3: 2}[orientation]  # np.rot90 turns counter-clockwise
        np.testing.assert_array_equal(pixels, np.rot90(stored, turns))


def test_load_image_accepts_a_str_path_and_keeps_rgb_pixels(tmp_path):
    path = tmp_path / "photo.png"
    data = np.random.default_rng(1).integers(0, 256, (10, 12, 3), dtype=np.uint8)
    Image.fromarray(data).save(path)
    np.testing.assert_array_equal(np.asarray(load_image(str(path))), data)


# ---------------------------------------------------------------- model inputs

@pytest.fixture
def photo() -> Image.Image:
    return Image.fromarray(np.random.default_rng(2).integers(0, 256, (300, 400, 3), dtype=np.uint8))


@pytest.mark.parametrize("size", [(224, 224), (400, 300), (100, 500)])
def test_transform_gives_224_square_in_unit_range(size):
    img = Image.fromarray(np.random.default_rng(3).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    tensor = transform(img)
    assert tensor.shape == (3, 224, 224) and tensor.dtype == torch.float32
    assert 0 <= tensor.min() and tensor.max() <= 1


def test_transform_of_a_224_image_is_its_pixels_over_255():
    data = np.random.default_rng(4).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    expected = torch.from_numpy(data).permute(2, 0, 1).float() / 255
    torch.testing.assert_close(transform(Image.fromarray(data)), expected)


def test_preprocess_then_unnormalize_returns_the_transformed_image(photo):
    transformed_img, input_img = preprocess(photo)
    assert transformed_img.shape == (3, 224, 224) and input_img.shape == (1, 3, 224, 224)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    torch.testing.assert_close(input_img[0] * std + mean, transformed_img, atol=1e-6, rtol=0)
    torch.testing.assert_close(transformed_img, transform(photo))


@pytest.mark.parametrize("shape", [(3, 5, 7), (1, 3, 5, 7)])
def test_to_hwc_equals_permute(shape):
    tensor = torch.randn(shape, requires_grad=True)
    expected = tensor.detach().reshape(3, 5, 7).permute(1, 2, 0).numpy()
    hwc = to_hwc(tensor)
    assert isinstance(hwc, np.ndarray) and hwc.shape == (5, 7, 3)
    np.testing.assert_array_equal(hwc, expected)


@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (5, 7), (1, 1, 3, 5, 7)])
def test_to_hwc_rejects_wrong_shapes_naming_them(shape):
    with pytest.raises(ValueError, match=str(shape).replace("(", r"\(").replace(")", r"\)")):
        to_hwc(torch.zeros(shape))
