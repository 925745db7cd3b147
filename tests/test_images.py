"""captum_helpers.images: loading photos of every kind as upright RGB, and the model inputs."""
import io
import json
import os
import shutil
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from captum_helpers import (IMAGENET_MEAN, IMAGENET_STD, ImageLoadError, load_image, preprocess,
                            to_hwc, transform)

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
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    compressor = zlib.compressobj(9)
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte, then 1 bit per pixel
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat)
            + chunk(b"IEND", b""))


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


def _symlink_loop(tmp_path):
    (tmp_path / "a.jpg").symlink_to("b.jpg")
    (tmp_path / "b.jpg").symlink_to("a.jpg")
    return tmp_path / "a.jpg"


def _dangling_link(tmp_path):
    (tmp_path / "cat.jpg").symlink_to("moved_away.jpg")
    return tmp_path / "cat.jpg"


# PIL's limit is Image.MAX_IMAGE_PIXELS (89.5 Mpx); between 1x and 2x it only warns.
BAD_FILES = {
    "missing": (_missing, FileNotFoundError, "No such image file"),
    "link to a missing file": (_dangling_link, FileNotFoundError,
                               "link to 'moved_away.jpg', which is missing"),
    "symlink loop": (_symlink_loop, ImageLoadError, "is a symlink loop"),
    "folder": (_folder, ImageLoadError, "is a folder"),
    "text file named .jpg": (_text_named_jpg, ImageLoadError, "not an image"),
    "JPEG cut in half": (_truncated("JPEG", "jpg"), ImageLoadError, "truncated"),
    "PNG cut in half": (_truncated("PNG", "png"), ImageLoadError, "truncated"),
    "100 Mpx PNG (over the limit)": (_huge(10_000, 10_000), ImageLoadError, "too large"),
    "200 Mpx PNG (over twice the limit)": (_huge(20_000, 10_000), ImageLoadError, "too large"),
    # 88 bytes on disk; Resize(224) would turn it into 224 x 14,560,000 RGB pixels
    "65000 x 1 PNG": (_huge(65_000, 1), ImageLoadError,
                      "65000 x 1 pixels: Resize.224. would make it 224 x 14,560,000"),
    "1 x 2000 PNG": (_huge(1, 2_000), ImageLoadError,
                     "1 x 2000 pixels: .* crop it to at most 20:1"),
    "300 x 14 PNG, just over 20:1": (_huge(300, 14), ImageLoadError,
                                     "300 x 14 pixels: .* 224 x 4,800"),
    "1 x 1 PNG": (_huge(1, 1), ImageLoadError, "1 x 1 pixels, too small"),
    "0 x 5 PNG": (_huge(0, 5), ImageLoadError, "not an image"),
}


@pytest.mark.parametrize("make, error, message", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_load_image_refuses_bad_files_naming_them(tmp_path, make, error, message):
    path = make(tmp_path)
    with pytest.raises(error, match=message) as info:
        load_image(path)
    assert str(path) in str(info.value)


def test_image_load_error_is_a_value_error():
    assert issubclass(ImageLoadError, ValueError)


# ---------------------------------------------------------------- paths that are no file at all

def _fifo(tmp_path):
    path = tmp_path / "x.jpg"
    os.mkfifo(path)  # opening it for reading waits for a writer that never comes
    return path


def _unix_socket(tmp_path):
    path = tmp_path / "s.jpg"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))  # the socket file stays after the socket is closed
    return path


def _block_device(tmp_path):
    path = tmp_path / "disk.jpg"
    try:  # a device node: only its number, no device behind it (loop device 255)
        os.mknod(path, stat.S_IFBLK | 0o600, os.makedev(7, 255))
    except PermissionError:
        pytest.skip("creating a device node needs root (the CI runs as root)")
    return path


SPECIAL_FILES = {
    "FIFO named x.jpg": (_fifo, "a named pipe (FIFO)"),
    "/dev/null": (lambda tmp_path: Path("/dev/null"), "a character device"),
    "/dev/zero": (lambda tmp_path: Path("/dev/zero"), "a character device"),
    "Unix socket": (_unix_socket, "a socket"),
    "block device": (_block_device, "a block device"),
}


def _error_within(seconds: float, path: Path) -> BaseException | None:
    """load_image(path)'s error, failing the test instead of hanging if it takes longer."""
    outcome = []
    def run():
        try:
            load_image(path)
            outcome.append(None)
        except BaseException as err:  # handed to the test's thread
            outcome.append(err)
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        if stat.S_ISFIFO(os.stat(path).st_mode):  # let a reader stuck in open() go
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail(f"load_image('{path}') was still running after {seconds} s")
    return outcome[0]


@pytest.mark.parametrize("make, kind", SPECIAL_FILES.values(), ids=SPECIAL_FILES.keys())
def test_load_image_refuses_special_files_without_hanging(tmp_path, make, kind):
    path = make(tmp_path)
    error = _error_within(20, path)
    assert isinstance(error, ImageLoadError), error
    assert str(error) == f"'{path}' is {kind}, not an image file"


# ---------------------------------------------------------------- permission denied

# Root reads whatever the permission bits say, so as root the child gives up root after its
# imports and loads as "nobody"; as another user the bits apply to it directly.
UNPRIVILEGED_LOADS = """
import json, os, pwd, sys
from PIL import Image
from captum_helpers import load_image
Image.init()  # every format plugin imported while the interpreter's files are readable
if os.geteuid() == 0:
    nobody = pwd.getpwnam("nobody")
    os.setgroups([])
    os.setgid(nobody.pw_gid)
    os.setuid(nobody.pw_uid)
results = {"euid": os.geteuid()}
for path in sys.argv[1:]:
    try:
        results[path] = "loaded " + repr(load_image(path).size)
    except Exception as err:
        results[path] = f"{type(err).__name__}: {err}"
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def unprivileged_loads():
    """Loads, by a user without rights, of: a readable photo, a file it may not read, and
    photos in a folder it may not enter and in one it may list but not enter."""
    top = Path(tempfile.mkdtemp())  # not under pytest's own temp folder, private to its user
    names = ("ok.jpg", "unreadable.jpg", "locked/photo.jpg", "listable/photo.jpg")
    paths = {name: top / name for name in names}
    for path in paths.values():
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(_photo_bytes("JPEG"))
    modes = {top: 0o755, paths["unreadable.jpg"]: 0o000, top / "locked": 0o000,
             top / "listable": 0o444}
    try:
        for path, mode in modes.items():
            path.chmod(mode)
        child = subprocess.run([sys.executable, "-c", UNPRIVILEGED_LOADS,
                                *map(str, paths.values())],
                               capture_output=True, text=True, timeout=300)
        assert child.returncode == 0, child.stderr
        results = json.loads(child.stdout)
    finally:
        for path in modes:
            path.chmod(0o755)
        shutil.rmtree(top)
    return top, {name: results[str(path)] for name, path in paths.items()}, results["euid"]


PERMISSION_CASES = {
    "readable photo (the check that the child can load at all)": ("ok.jpg", "loaded (64, 48)"),
    "file without read permission": (
        "unreadable.jpg",
        "PermissionError: Permission denied reading '{top}/unreadable.jpg' "
        "(its mode is ----------)"),
    "file in a folder without any permission": (
        "locked/photo.jpg",
        "PermissionError: Permission denied looking up '{top}/locked/photo.jpg': "
        "this user may not enter the folder '{top}/locked'"),
    "file in a folder without search permission": (
        "listable/photo.jpg",
        "PermissionError: Permission denied looking up '{top}/listable/photo.jpg': "
        "this user may not enter the folder '{top}/listable'"),
}


@pytest.mark.parametrize("name, message", PERMISSION_CASES.values(), ids=PERMISSION_CASES.keys())
def test_load_image_says_permission_denied_naming_file_and_folder(unprivileged_loads, name,
                                                                  message):
    top, results, euid = unprivileged_loads
    assert euid != 0  # the bits really applied to the child
    assert results[name] == message.format(top=top)


# ---------------------------------------------------------------- images load_image must convert
# Two identical rows each: load_image refuses images one pixel high as lines, not pictures.

def _save(img: Image.Image, name: str, **kwargs):
    def make(tmp_path):
        path = tmp_path / name
        img.save(path, **kwargs)
        return path
    return make


def _palette_image() -> Image.Image:
    img = Image.new("P", (3, 2))
    img.putpalette([255, 0, 0, 0, 0, 255, 0, 128, 0] + [0] * (256 * 3 - 9))
    img.putdata([0, 1, 2] * 2)
    return img


def _rgba_image() -> Image.Image:
    # opaque red, fully transparent red, half-transparent black
    return Image.fromarray(np.array([[[255, 0, 0, 255], [255, 0, 0, 0], [0, 0, 0, 128]]] * 2,
                                    np.uint8), "RGBA")


def _cmyk_image() -> Image.Image:
    # no ink, full cyan, full black
    return Image.fromarray(np.array([[[0, 0, 0, 0], [255, 0, 0, 0], [0, 0, 0, 255]]] * 2, np.uint8),
                           "CMYK")


# no pixel at full white, so scaling by the brightest pixel would show too
GRAY16 = np.array([[0, 1000, 32768, 49151]] * 2, np.uint16)
# 16-bit values scaled to 8 bits (v / 65535 * 255); clipping would give 0, 255, 255, 255
GRAY16_AS_8BIT = [(0,) * 3, (4,) * 3, (128,) * 3, (191,) * 3]

def _gray16_pgm(tmp_path):
    """A 16-bit PGM, which PIL opens as 32-bit mode "I"."""
    path = tmp_path / "gray16.pgm"
    path.write_bytes(b"P5\n4 2\n65535\n" + GRAY16.astype(">u2").tobytes())
    return path


def _int32_image(row: list[int]) -> Image.Image:
    return Image.fromarray(np.array([row] * 2, np.int32), "I")


GOOD_FILES = {
    "grayscale L": (_save(Image.fromarray(np.array([[0, 100, 255]] * 2, np.uint8), "L"),
                          "gray.png"), "L", [BLACK, (100,) * 3, WHITE]),
    "RGBA, transparent parts white": (_save(_rgba_image(), "rgba.png"), "RGBA",
                                      [RED, WHITE, (127,) * 3]),
    "palette P": (_save(_palette_image(), "palette.png"), "P", [RED, (0, 0, 255), (0, 128, 0)]),
    "palette P with a transparent entry": (_save(_palette_image(), "palette_t.png", transparency=1),
                                           "P", [RED, WHITE, (0, 128, 0)]),
    "palette GIF with a transparent entry": (_save(_palette_image(), "palette_t.gif",
                                                   transparency=1),
                                             "P", [RED, WHITE, (0, 128, 0)]),
    "CMYK TIFF": (_save(_cmyk_image(), "cmyk.tif"), "CMYK", [WHITE, (0, 255, 255), BLACK]),
    "CMYK JPEG": (_save(_cmyk_image().resize((48, 16), Image.NEAREST), "cmyk.jpg", quality=95),
                  "CMYK", None),  # checked below: JPEG blurs the edges
    "16-bit PNG (I;16)": (_save(Image.fromarray(GRAY16), "gray16.png"), "I;16", GRAY16_AS_8BIT),
    "16-bit PGM (I)": (_gray16_pgm, "I", GRAY16_AS_8BIT),
    # 32-bit integers: 8-bit data stays as it is; beyond 16 bits, scaled by the brightest pixel
    "32-bit TIFF (I) holding 8-bit values": (_save(_int32_image([0, 100, 255]), "gray8.tif"),
                                             "I", [BLACK, (100,) * 3, WHITE]),
    "32-bit TIFF (I) beyond 16 bits": (_save(_int32_image([0, 100_000, 200_000]), "gray18.tif"),
                                       "I", [BLACK, (128,) * 3, WHITE]),
    "RGB JPEG": (_save(Image.new("RGB", (3, 2), RED), "red.jpg", quality=95), "RGB", None),
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
@pytest.mark.parametrize("orientation, upright_corner",
                         [(6, "top right"), (8, "bottom left"), (3, "bottom right")])
def test_load_image_applies_exif_rotation(tmp_path, fmt, orientation, upright_corner):
    # stored 32 wide x 20 high, gray with a red block in its top-left corner
    stored = np.full((20, 32, 3), 128, np.uint8)
    stored[:6, :6] = RED
    exif = Image.Exif()
    exif[0x0112] = orientation  # the EXIF Orientation tag
    path = tmp_path / f"phone.{fmt.lower()}"
    Image.fromarray(stored).save(path, fmt, exif=exif, **({"quality": 95} if fmt == "JPEG" else {}))

    img = load_image(path)

    # 90-degree turns swap width and height
    assert img.size == ((32, 20) if orientation == 3 else (20, 32))
    pixels = np.asarray(img).astype(int)
    corners = {"top left": pixels[2, 2], "top right": pixels[2, -3],
               "bottom left": pixels[-3, 2], "bottom right": pixels[-3, -3]}
    for corner, value in corners.items():
        expected = RED if corner == upright_corner else (128, 128, 128)
        np.testing.assert_allclose(value, expected, atol=12, err_msg=corner)
    if fmt == "PNG":  # lossless: the whole picture is the stored one turned upright
        turns = {6: -1, 8: 1, 3: 2}[orientation]  # np.rot90 turns counter-clockwise
        np.testing.assert_array_equal(pixels, np.rot90(stored, turns))


@pytest.mark.parametrize("width, height", [(280, 14), (14, 280), (2, 2)])
def test_load_image_accepts_sizes_up_to_the_bounds(tmp_path, width, height):
    path = _huge(width, height)(tmp_path)  # 20:1 and 2 pixels a side, the bounds themselves
    img = load_image(path)
    assert img.size == (width, height) and transform(img).shape == (3, 224, 224)


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
    img = Image.fromarray(np.random.default_rng(3).integers(0, 256, (size[1], size[0], 3),
                                                            dtype=np.uint8))
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


def test_a_missing_file_is_explained_in_chinese_in_the_chinese_edition(tmp_path, monkeypatch):
    # notebook 01 prints this message to the learner
    monkeypatch.setenv("CAPTUM_COURSE_LANGUAGE", "zh")
    with pytest.raises(FileNotFoundError, match="没有这个图像文件") as info:
        load_image(tmp_path / "chelsae.png")
    assert "chelsae.png" in str(info.value) and "No such" not in str(info.value)
