"""A person's own digit, made to look like an MNIST one.

MNIST's digits are white on black, scaled to fit a 20x20 box keeping their aspect ratio (with
grey levels where a pixel is partly covered), and placed in 28x28 so that their centre of mass
is at the centre. A photo or a drawing is none of that: ``mnist_like`` does the same steps, in
plain NumPy, and ``read_image`` reads the file (PNG or JPEG through Pillow, which matplotlib
brings, or a ``.npy`` array) with its size bounded before anything is decoded.
"""

from __future__ import annotations

import io
import math

import numpy as np

from framework.archive import npy_header

MAX_PIXELS = 4096 * 4096  # a 16-megapixel photo; decoded larger images would need GBs here
SIDE, BOX = 28, 20  # MNIST's image and the box its digits are scaled into
CENTRE = 14.0  # where MNIST's centres of mass lie (pixel indices; 13.5-14.5 in its test set)
NOISE = 0.1  # ink fainter than this fraction of the darkest stroke is paper, not digit
NPY_MAGIC = b"\x93NUMPY"


class ImageError(ValueError):
    """An image that cannot be read or holds no digit; the message names the file."""


def read_image(source, name=None) -> np.ndarray:
    """A greyscale image, (H, W) float32 in [0, 1] (1 is white), from a path or a binary file
    object: PNG or JPEG (transparent parts count as white paper; a photo is turned upright by
    its EXIF orientation), or a .npy array of shape (H, W) (axes of length 1 aside: (1, H, W),
    (H, W, 1)) or of one MNIST row ((784,), (1, 784)), uint8 or float in [0, 1]. At most
    MAX_PIXELS pixels, checked from the header before decoding."""
    name = str(name or source)
    try:
        f = open(source, "rb") if not hasattr(source, "read") else source
    except FileNotFoundError:
        raise ImageError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{name}: a folder, not an image") from None
    try:
        head = f.read(len(NPY_MAGIC))
        f.seek(0)
        return read_npy(f, name) if head == NPY_MAGIC else read_picture(f, name)
    finally:
        if f is not source:
            f.close()


def read_npy(f, name):
    """A .npy image, its header checked before the array is read (never unpickled)."""
    try:
        shape, _, dtype = npy_header(f)
    except (ValueError, EOFError) as e:
        raise ImageError(f"{name}: {e}") from None
    if dtype.kind not in "uf" or dtype.itemsize > 8:
        raise ImageError(f"{name}: a .npy image holds uint8 or float pixels, got {dtype}")
    given = shape
    shape = tuple(n for n in shape if n != 1)  # (1, H, W), (H, W, 1), a batch of one flat row
    if shape == (SIDE * SIDE,):
        shape = (SIDE, SIDE)  # one flat MNIST row, as load_mnist() gives them
    elif len(shape) == 2 and SIDE * SIDE in shape:  # x_test[:5]: rows, or a picture?
        raise ImageError(f"{name}: {math.prod(shape) // (SIDE * SIDE)} MNIST rows of 784 "
                         f"(shape {given}); --predict takes one image a file: save each row "
                         "(x[i]) on its own (a picture with a side of 784 pixels: scale it "
                         "first, or save it as a PNG)")
    if len(shape) != 2 or min(shape) < 1:
        raise ImageError(f"{name}: a .npy image is one greyscale array (H, W) (or (1, H, W), "
                         f"(H, W, 1)), or a flat MNIST row of 784; got shape {given}")
    if math.prod(shape) > MAX_PIXELS:
        raise ImageError(f"{name}: {shape[0]}x{shape[1]} pixels, more than the {MAX_PIXELS:,} "
                         "allowed; scale it down first")
    f.seek(0)
    try:
        x = np.lib.format.read_array(f, allow_pickle=False).reshape(shape)
    except (ValueError, EOFError, OSError) as e:
        raise ImageError(f"{name}: a truncated or damaged .npy file ({e})") from None
    if dtype.kind == "u":
        if x.max() > 255:
            raise ImageError(f"{name}: integer pixels go from 0 to 255, found {x.max()}")
        return np.divide(x, 255, dtype=np.float32)
    if not np.isfinite(x).all():
        raise ImageError(f"{name}: {np.count_nonzero(~np.isfinite(x)):,} pixels are NaN or "
                         "infinite; float pixels go from 0 to 1 (pixels / 255)")
    if x.min() < 0 or x.max() > 1:
        raise ImageError(f"{name}: float pixels go from 0 to 1 (pixels / 255, as load_mnist "
                         f"gives them), found values from {x.min()} to {x.max()}")
    return x.astype(np.float32)


def read_picture(f, name):
    """A PNG or JPEG through Pillow, as greyscale in [0, 1]."""
    try:
        from PIL import Image, ImageOps
    except ImportError:
        raise ImageError(f"{name}: reading PNG and JPEG images needs Pillow, which the plot "
                         "extra brings: python -m pip install -e \".[plot]\"") from None
    try:
        with Image.open(f, formats=("PNG", "JPEG")) as image:
            width, height = image.size  # from the header: nothing is decoded yet
            if width * height > MAX_PIXELS:
                raise ImageError(f"{name}: {width}x{height} pixels, more than the "
                                 f"{MAX_PIXELS:,} allowed; scale it down first")
            image = ImageOps.exif_transpose(image)
            if image.mode.startswith("I"):  # 16-bit greyscale PNG
                return np.clip(np.asarray(image, np.float32) / 65535, 0, 1)
            if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
                rgba = image.convert("RGBA")
                image = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
            return np.asarray(image.convert("L"), np.float32) / 255
    except ImageError:  # ours, about a readable image: not one of Pillow's below
        raise
    except Image.UnidentifiedImageError:
        raise ImageError(f"{name}: not a PNG or JPEG image (nor a .npy array)") from None
    except Image.DecompressionBombError as e:
        raise ImageError(f"{name}: refused as too large to decode ({e})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:  # Pillow's words for broken files
        raise ImageError(f"{name}: a truncated or damaged image ({e})") from None


def from_bytes(data: bytes, name) -> np.ndarray:
    """read_image of bytes already in memory (stdin, say)."""
    return read_image(io.BytesIO(data), name)


def mnist_like(image, name="image") -> np.ndarray:
    """The (28, 28) float32 image in [0, 1] a model trained on MNIST expects, from a greyscale
    image (H, W) with values in [0, 1] (uint8 0-255 too), as MNIST was made:

    1. ink = distance from the background (the median of the border pixels): a light
       background is inverted, so the digit is white on black;
    2. contrast stretched so the darkest stroke is 1; ink under NOISE of that is set to 0;
    3. cropped to the ink and scaled so its longer side is 20 pixels, keeping the aspect
       ratio (each new pixel the average of the area it covers);
    4. placed in 28x28 with its centre of mass at the centre (whole pixels, as MNIST did).
    """
    grey = np.asarray(image)
    if grey.ndim != 2 or grey.dtype.kind not in "uf":
        raise ImageError(f"{name}: mnist_like takes a 2-D greyscale array, got "
                         f"{grey.dtype} {grey.shape}")
    grey = np.divide(grey, 255, dtype=np.float32) if grey.dtype.kind == "u" else grey
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    background = float(np.median(border))
    ink = np.abs(grey - background, dtype=np.float32)
    ink[(grey > background) if background > 0.5 else (grey < background)] = 0  # lighter paper
    peak = float(ink.max())
    if peak < NOISE:
        raise ImageError(f"{name}: no digit found (the darkest mark differs from the paper by "
                         f"{peak:.0%}); draw it darker, on plain paper")
    ink /= peak
    ink[ink < NOISE] = 0
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    ink = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    scale = BOX / max(ink.shape)
    height, width = (max(1, round(side * scale)) for side in ink.shape)
    small = area_resize(ink, height, width)
    small /= small.max()  # MNIST's strokes reach 255 (254.9 on average over its test set)
    mass = small.sum()
    centre_y = (small.sum(axis=1) @ np.arange(height)) / mass
    centre_x = (small.sum(axis=0) @ np.arange(width)) / mass
    # A digit whose mass is far off its box's centre would stick out: it stays inside instead.
    top = min(max(round(CENTRE - centre_y), 0), SIDE - height)
    left = min(max(round(CENTRE - centre_x), 0), SIDE - width)
    out = np.zeros((SIDE, SIDE), np.float32)
    out[top:top + height, left:left + width] = small
    return out


def area_resize(x, height, width):
    """x resized to (height, width), each new pixel the mean of the area of x it covers."""
    return area_weights(x.shape[0], height) @ x @ area_weights(x.shape[1], width).T


def area_weights(n_in, n_out):
    """(n_out, n_in): the share of each old pixel in each new one (rows sum to 1)."""
    edges = np.arange(n_in + 1) * (n_out / n_in)  # old pixels' edges in new pixels
    new = np.arange(n_out)[:, None]
    overlap = np.minimum(edges[1:], new + 1) - np.maximum(edges[:-1], new)
    weights = np.clip(overlap, 0, None, dtype=np.float32)
    return weights / weights.sum(axis=1, keepdims=True)
