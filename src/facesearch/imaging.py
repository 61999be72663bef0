"""Image decoding, encoding and cropping: the only module that touches Pillow.

Every failure is a :class:`~facesearch.errors.FaceSearchError` subclass; no Pillow exception escapes.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import ExifTags, Image, UnidentifiedImageError

from facesearch.errors import FaceSearchError, ImageDecodeError, ImageTooLarge, ValidationError

Pixels = npt.NDArray[np.uint8]

DEFAULT_MAX_BYTES = 15 * 1024 * 1024
DEFAULT_MAX_PIXELS = 40_000_000
_MAX_CROP_PIXELS = 64_000_000

_PIL_FORMATS = {"jpeg": ("JPEG", "MPO"), "png": ("PNG",), "webp": ("WEBP",)}
_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
_DATA_URI_TYPES = ("image/", "application/octet-stream")
# EXIF orientation -> the transpose that shows the image upright (as in ImageOps.exif_transpose).
_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@dataclass(frozen=True, eq=False)
class DecodedImage:
    """Decoded RGB pixels (HxWx3 uint8) and where they came from.

    ``original_width``/``original_height`` are after EXIF orientation; ``scale`` is
    ``pixels`` width divided by ``original_width`` (1.0 unless downscaled).
    """

    pixels: Pixels
    original_width: int
    original_height: int
    scale: float
    format: str


def sniff_format(data: bytes) -> str | None:
    """``'jpeg'``, ``'png'`` or ``'webp'`` from the magic bytes, else None."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


#: A JPEG decoded at a reduced scale may come out this much under the target side (and is then used
#: at that size): at most 10% smaller faces, for a decode at a quarter of the pixels.
DRAFT_SLACK = 0.9


def decode_image(
    data: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    target_max_side: int | Callable[[int, int], int | None] | None = None,
) -> DecodedImage:
    """Decode a JPEG, PNG or WebP to upright RGB, refusing oversized or broken input.

    With ``target_max_side``, an image whose longer side exceeds it is downscaled so
    that its longer side equals it (JPEGs are decoded at reduced size cheaply). It may be
    a function of the stored (width, height) that returns that side (None: full size).
    """
    if len(data) > max_bytes:
        raise ImageTooLarge(
            f"image is {len(data)} bytes, over the limit of {max_bytes}",
            details={"bytes": len(data), "max_bytes": max_bytes},
        )
    if isinstance(target_max_side, int) and target_max_side < 1:
        raise ValidationError("target_max_side must be at least 1", field="target_max_side")
    if not data:
        raise ImageDecodeError("the image is empty (zero bytes)")
    fmt = sniff_format(data)
    if fmt is None:
        raise ImageDecodeError("not a JPEG, PNG or WebP image")
    if fmt == "png" and len(data) >= 24 and data[12:16] == b"IHDR":
        # Check the declared size before Pillow even parses the rest.
        declared_w, declared_h = struct.unpack(">II", data[16:24])
        _check_pixels(declared_w, declared_h, max_pixels)
    try:
        with Image.open(io.BytesIO(data), formats=[_PIL_FORMATS[fmt][0]]) as img:
            if img.format not in _PIL_FORMATS[fmt]:
                raise ImageDecodeError(f"not a {fmt.upper()} image")
            return _decode_opened(img, fmt, max_pixels, target_max_side)
    except FaceSearchError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning, MemoryError) as exc:
        raise ImageTooLarge("image exceeds the pixel limit", details={"max_pixels": max_pixels}) from exc
    except Exception as exc:  # Pillow raises many types on hostile input; all mean "cannot decode".
        reason = "unrecognised data" if isinstance(exc, UnidentifiedImageError) else str(exc)[:200]
        raise ImageDecodeError(
            f"could not decode the {fmt.upper()} image (corrupt or truncated): {reason}",
            details={"format": fmt, "reason": reason},
        ) from exc


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"image is {width}x{height} pixels, over the limit of {max_pixels}",
            details={"width": width, "height": height, "max_pixels": max_pixels},
        )


def _decode_opened(
    img: Image.Image, fmt: str, max_pixels: int, target: int | Callable[[int, int], int | None] | None
) -> DecodedImage:
    width, height = img.size
    if width < 1 or height < 1:
        raise ImageDecodeError("image has no pixels")
    _check_pixels(width, height, max_pixels)
    target_max_side = target(width, height) if callable(target) else target
    if target_max_side is not None:
        target_max_side = max(1, target_max_side)
    long_side = max(width, height)
    if target_max_side is not None and long_side > target_max_side and fmt == "jpeg":
        # The JPEG decoder scales by 1/2, 1/4 or 1/8 at almost no cost: ask for the smallest scale
        # that still gives at least DRAFT_SLACK of the target side (a 2000x1428 photo decodes at
        # 1000x714 for a target of 1024 and is used as it is, instead of being decoded in full
        # and resampled: 80.9 -> 28 ms, bench/identify.py).
        s = target_max_side * DRAFT_SLACK / long_side
        img.draft("RGB", (max(1, math.ceil(width * s)), max(1, math.ceil(height * s))))
    img.load()
    orientation = _orientation(img)
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    rgb = _to_rgb(img)
    if orientation in _ORIENTATION:
        rgb = rgb.transpose(_ORIENTATION[orientation])
    out_w, out_h = width, height
    if target_max_side is not None and long_side > target_max_side:
        if DRAFT_SLACK * target_max_side <= max(rgb.size) <= target_max_side:
            out_w, out_h = rgb.size  # the decoder's own reduced scale is the work size
        else:
            s = target_max_side / long_side
            out_w, out_h = max(1, round(width * s)), max(1, round(height * s))
    if rgb.size != (out_w, out_h):
        # Pillow's bilinear filter widens with the reduction, so it does not alias when it shrinks;
        # it costs half of LANCZOS (1480x832 -> 1024: 18.8 -> 9.9 ms) for the same detections
        # (tests/pipeline/test_large_photos_real.py, the labelled group photos).
        rgb = rgb.resize((out_w, out_h), Image.Resampling.BILINEAR, reducing_gap=3.0)
    pixels = np.ascontiguousarray(np.array(rgb, dtype=np.uint8))
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ImageDecodeError(f"unexpected decoded shape {pixels.shape}")
    return DecodedImage(pixels, width, height, out_w / width, fmt)


def _orientation(img: Image.Image) -> int:
    """The EXIF orientation (1 when absent or unreadable: bad EXIF never fails a decode)."""
    try:
        value = img.getexif().get(ExifTags.Base.Orientation, 1)
        return int(value) if isinstance(value, int) else 1
    except Exception:
        return 1


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any decoded mode to RGB: 16-bit grey scaled to 8 bits, alpha composited onto white."""
    mode = img.mode
    if mode == "I" or mode.startswith("I;16"):
        wide = np.asarray(img)
        narrow = (np.clip(wide, 0, 65535).astype(np.uint16) >> 8).astype(np.uint8)
        return Image.fromarray(narrow).convert("RGB")
    if mode in _ALPHA_MODES or img.info.get("transparency") is not None:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img if mode == "RGB" else img.convert("RGB")


def decode_base64(text: str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """Plain or url-safe base64 (whitespace and missing padding tolerated) or a ``data:`` URI."""
    # Cheap bound before any work: base64 is 4 chars per 3 bytes; allow generous whitespace.
    if len(text) // 2 > max_bytes + 1024:
        raise ImageTooLarge("base64 image is over the byte limit", details={"max_bytes": max_bytes})
    body = text.strip()
    if body[:5].lower() == "data:":
        header, sep, body = body.partition(",")
        media = header[5:].split(";")
        if not sep or "base64" not in (p.strip().lower() for p in media[1:]):
            raise ImageDecodeError("data URI must be of the form data:image/...;base64,<data>")
        media_type = media[0].strip().lower()
        if media_type and not media_type.startswith(_DATA_URI_TYPES):
            raise ImageDecodeError(f"data URI media type {media_type!r} is not an image")
    body = "".join(body.split()).rstrip("=")
    if not body:
        raise ImageDecodeError("base64 image is empty")
    estimated = len(body) * 3 // 4
    if estimated > max_bytes:
        raise ImageTooLarge(
            f"base64 image decodes to about {estimated} bytes, over the limit of {max_bytes}",
            details={"bytes": estimated, "max_bytes": max_bytes},
        )
    if len(body) % 4 == 1:
        raise ImageDecodeError("invalid base64: wrong length")
    body = body.replace("-", "+").replace("_", "/") + "=" * (-len(body) % 4)
    try:
        return base64.b64decode(body.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError) as exc:
        raise ImageDecodeError("invalid base64: characters outside the base64 alphabet") from exc


def _as_pixels(pixels: npt.NDArray[np.uint8], name: str = "pixels") -> Pixels:
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8:
        raise ValidationError(f"{name} must be a uint8 numpy array", field=name)
    if not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] in (1, 3))) or 0 in pixels.shape:
        raise ValidationError(f"{name} must be HxW or HxWx3, got shape {pixels.shape}", field=name)
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    return np.ascontiguousarray(pixels)


def _encode(pixels: Pixels, fmt: str, **params: int | bool) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(_as_pixels(pixels)).save(buf, fmt, **params)
    return buf.getvalue()


def encode_jpeg(pixels: Pixels, quality: int = 90) -> bytes:
    """Encode HxWx3 RGB (or HxW grey) uint8 pixels as JPEG."""
    if not 1 <= quality <= 100:
        raise ValidationError("quality must be between 1 and 100", field="quality")
    return _encode(pixels, "JPEG", quality=quality)


def encode_png(pixels: Pixels, compress_level: int = 6) -> bytes:
    """Encode HxWx3 RGB (or HxW grey) uint8 pixels as PNG (lossless)."""
    if not 0 <= compress_level <= 9:
        raise ValidationError("compress_level must be between 0 and 9", field="compress_level")
    return _encode(pixels, "PNG", compress_level=compress_level)


def resize_to_fit(pixels: Pixels, max_side: int) -> Pixels:
    """Downscale so the longer side is at most ``max_side``; never upscales."""
    pixels = _as_pixels(pixels)
    if max_side < 1:
        raise ValidationError("max_side must be at least 1", field="max_side")
    h, w = pixels.shape[:2]
    if max(h, w) <= max_side:
        return pixels
    s = max_side / max(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    img = Image.fromarray(pixels).resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    return np.ascontiguousarray(np.array(img, dtype=np.uint8))


def halve(pixels: Pixels) -> Pixels:
    """Half the width and height, averaging 2x2 blocks (fast: a coarse detection pass)."""
    pixels = _as_pixels(pixels)
    img = Image.fromarray(pixels).reduce(2)
    return np.ascontiguousarray(np.array(img, dtype=np.uint8))


def thumbnail_jpeg(pixels: Pixels, max_side: int = 160, quality: int = 85) -> bytes:
    """A JPEG whose longer side is at most ``max_side``."""
    return encode_jpeg(resize_to_fit(pixels, max_side), quality=quality)


def crop_face(
    pixels: Pixels,
    box_left: float,
    box_top: float,
    box_width: float,
    box_height: float,
    *,
    margin: float = 0.2,
    output_size: int | None = None,
    output_aspect: float = 1.0,
) -> Pixels:
    """Crop around a face box, enlarged by ``margin`` of its size on each side.

    The region is then grown along one axis to the ``output_aspect`` (width / height)
    around the box centre, so resizing never distorts. Parts outside the image are
    black. With ``output_size``, the crop is resized to ``output_size`` wide and
    ``round(output_size / output_aspect)`` high.
    """
    pixels = _as_pixels(pixels)
    numbers = (box_left, box_top, box_width, box_height, margin, output_aspect)
    if not all(math.isfinite(v) for v in numbers):
        raise ValidationError("box, margin and output_aspect must be finite numbers", field="box")
    if box_width <= 0 or box_height <= 0:
        raise ValidationError("box width and height must be positive", field="box")
    if margin < 0:
        raise ValidationError("margin must not be negative", field="margin")
    if output_aspect <= 0:
        raise ValidationError("output_aspect must be positive", field="output_aspect")
    if output_size is not None and output_size < 1:
        raise ValidationError("output_size must be at least 1", field="output_size")
    h, w = pixels.shape[:2]
    if box_left >= w or box_top >= h or box_left + box_width <= 0 or box_top + box_height <= 0:
        raise ValidationError("the box lies outside the image", field="box")

    region_w = box_width * (1 + 2 * margin)
    region_h = box_height * (1 + 2 * margin)
    if region_w / region_h < output_aspect:
        region_w = region_h * output_aspect
    else:
        region_h = region_w / output_aspect
    crop_w, crop_h = max(1, round(region_w)), max(1, round(region_h))
    if crop_w * crop_h > _MAX_CROP_PIXELS:
        raise ValidationError("the crop region is too large", field="box")
    x0 = math.floor(box_left + box_width / 2 - crop_w / 2 + 0.5)
    y0 = math.floor(box_top + box_height / 2 - crop_h / 2 + 0.5)

    out = np.zeros((crop_h, crop_w, *pixels.shape[2:]), dtype=np.uint8)
    sx0, sy0 = max(x0, 0), max(y0, 0)
    sx1, sy1 = min(x0 + crop_w, w), min(y0 + crop_h, h)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = pixels[sy0:sy1, sx0:sx1]
    if output_size is not None:
        size = (output_size, max(1, round(output_size / output_aspect)))
        if size != (crop_w, crop_h):
            img = Image.fromarray(out).resize(size, Image.Resampling.LANCZOS)
            out = np.ascontiguousarray(np.array(img, dtype=np.uint8))
    return out


#: A face kept for re-embedding with another model pack (collection setting keep_source): the box
#: enlarged by SOURCE_MARGIN of its size on each side, square, at most SOURCE_SIDE pixels.
SOURCE_MARGIN = 0.5
SOURCE_SIDE = 320


def source_crop(
    data: bytes,
    box: tuple[float, float, float, float],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    margin: float = SOURCE_MARGIN,
    side: int = SOURCE_SIDE,
    quality: int = 92,
) -> bytes:
    """The region of a photo around a face box (left, top, width, height in the photo's pixels)
    that another pack can detect and align the face in again: enlarged by ``margin`` on each side,
    square, decoded at reduced size when large (never upscaled), at most ``side`` pixels, JPEG."""
    left, top, width, height = (float(v) for v in box)
    region = max(width, height) * (1 + 2 * margin)
    scale = min(1.0, side / region) if region > 0 else 1.0

    def target(w: int, h: int) -> int | None:
        return None if scale >= 1.0 else max(1, math.ceil(max(w, h) * scale))

    decoded = decode_image(data, max_bytes=max_bytes, max_pixels=max_pixels, target_max_side=target)
    k = decoded.scale
    crop = crop_face(
        decoded.pixels, left * k, top * k, width * k, height * k, margin=margin, output_aspect=1.0
    )
    return encode_jpeg(resize_to_fit(crop, side), quality=quality)
