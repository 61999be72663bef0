"""Tests for facesearch.imaging; every image is generated in memory."""

from __future__ import annotations

import base64
import io
import struct
import warnings
import zlib
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from facesearch.errors import FaceSearchError, ImageDecodeError, ImageTooLarge, ValidationError
from facesearch.imaging import (
    DecodedImage,
    crop_face,
    decode_base64,
    decode_image,
    encode_jpeg,
    encode_png,
    resize_to_fit,
    sniff_format,
    thumbnail_jpeg,
)

RED = (255, 0, 0)
BLUE = (0, 0, 255)


# --- helpers -------------------------------------------------------------------------------------


def _gradient(width: int, height: int) -> np.ndarray:
    """A smooth RGB image whose every pixel differs from its neighbours."""
    ys, xs = np.mgrid[0:height, 0:width]
    channels = [xs * 255 // max(width - 1, 1), ys * 255 // max(height - 1, 1), (xs + ys) % 256]
    return np.stack(channels, axis=-1).astype(np.uint8)


def _noise(width: int, height: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _save(img: Image.Image, fmt: str, **params: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def _corner_image(width: int, height: int) -> Image.Image:
    """Blue, with a red square in the stored top-left corner."""
    arr = np.zeros((height, width, 3), dtype=np.uint8)
    arr[:] = BLUE
    arr[: height // 3, : height // 3] = RED
    return Image.fromarray(arr)


def _jpeg_with_orientation(img: Image.Image, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _save(img, "JPEG", quality=95, exif=exif.tobytes())


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png_header_only(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)


def _jpeg_with_size(width: int, height: int) -> bytes:
    """A real small JPEG whose SOF0 header is patched to claim width x height."""
    data = bytearray(_save(Image.fromarray(_gradient(16, 16)), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _is_colour(pixel: np.ndarray, colour: tuple[int, int, int], tol: int = 40) -> bool:
    return bool(np.all(np.abs(pixel.astype(int) - np.array(colour)) <= tol))


# --- round trips ---------------------------------------------------------------------------------


def test_png_round_trip_is_exact() -> None:
    arr = _gradient(64, 48)
    out = decode_image(_save(Image.fromarray(arr), "PNG"))
    assert isinstance(out, DecodedImage)
    assert out.format == "png"
    assert (out.original_width, out.original_height, out.scale) == (64, 48, 1.0)
    assert out.pixels.dtype == np.uint8 and out.pixels.flags.c_contiguous
    np.testing.assert_array_equal(out.pixels, arr)


def test_jpeg_round_trip_is_close() -> None:
    arr = _gradient(64, 48)
    out = decode_image(_save(Image.fromarray(arr), "JPEG", quality=95))
    assert out.format == "jpeg"
    assert out.pixels.shape == (48, 64, 3)
    assert np.abs(out.pixels.astype(int) - arr).mean() < 4


def test_webp_lossless_round_trip_is_exact() -> None:
    arr = _gradient(40, 30)
    out = decode_image(_save(Image.fromarray(arr), "WEBP", lossless=True))
    assert out.format == "webp"
    np.testing.assert_array_equal(out.pixels, arr)


def test_webp_with_alpha_is_composited_on_white() -> None:
    rgba = np.zeros((10, 10, 4), dtype=np.uint8)
    rgba[:, :5] = (255, 0, 0, 255)
    out = decode_image(_save(Image.fromarray(rgba), "WEBP", lossless=True))
    assert _is_colour(out.pixels[5, 2], RED, 0)
    assert _is_colour(out.pixels[5, 8], (255, 255, 255), 0)


def test_palette_png() -> None:
    arr = np.zeros((8, 8, 3), dtype=np.uint8)
    arr[:4] = RED
    arr[4:] = (0, 128, 0)
    pal = Image.fromarray(arr).quantize(colors=4)
    assert pal.mode == "P"
    np.testing.assert_array_equal(decode_image(_save(pal, "PNG")).pixels, arr)


def test_palette_png_with_transparency_is_white() -> None:
    pal = Image.fromarray(np.full((4, 4, 3), RED, dtype=np.uint8)).quantize(colors=2)
    index = pal.getpixel((0, 0))
    out = decode_image(_save(pal, "PNG", transparency=index))
    assert (out.pixels == 255).all()


def test_grey_png() -> None:
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    out = decode_image(_save(Image.fromarray(grey), "PNG"))
    assert out.pixels.shape == (8, 8, 3)
    for channel in range(3):
        np.testing.assert_array_equal(out.pixels[:, :, channel], grey)


def test_grey_alpha_png() -> None:
    la = np.zeros((1, 3, 2), dtype=np.uint8)
    la[0] = [(100, 255), (100, 0), (0, 128)]
    out = decode_image(_save(Image.fromarray(la, "LA"), "PNG"))
    assert tuple(out.pixels[0, 0]) == (100, 100, 100)
    assert tuple(out.pixels[0, 1]) == (255, 255, 255)
    assert all(abs(int(v) - 127) <= 1 for v in out.pixels[0, 2])


def test_16bit_grey_png_scales_to_8_bits() -> None:
    wide = (np.arange(256, dtype=np.uint16) * 257).reshape(16, 16)
    img = Image.fromarray(wide)
    assert img.mode.startswith("I;16")
    out = decode_image(_save(img, "PNG"))
    expected = np.arange(256, dtype=np.uint8).reshape(16, 16)
    for channel in range(3):
        np.testing.assert_array_equal(out.pixels[:, :, channel], expected)


def test_rgba_png_composited_on_white() -> None:
    rgba = np.array([[(255, 0, 0, 255), (255, 0, 0, 0), (0, 0, 0, 128)]], dtype=np.uint8)
    out = decode_image(_save(Image.fromarray(rgba), "PNG"))
    assert tuple(out.pixels[0, 0]) == RED
    assert tuple(out.pixels[0, 1]) == (255, 255, 255)
    assert all(abs(int(v) - 127) <= 1 for v in out.pixels[0, 2])


# --- EXIF orientation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("orientation", "shape", "red_at", "blue_at"),
    [
        (1, (60, 90), (5, 5), (55, 85)),
        (3, (60, 90), (55, 85), (5, 5)),  # 180 degrees: top-left goes bottom-right
        (6, (90, 60), (5, 55), (5, 5)),  # rotate 90 clockwise: top-left goes top-right
        (8, (90, 60), (85, 5), (5, 5)),  # rotate 90 counter-clockwise: top-left goes bottom-left
    ],
)
def test_exif_orientation(
    orientation: int, shape: tuple[int, int], red_at: tuple[int, int], blue_at: tuple[int, int]
) -> None:
    out = decode_image(_jpeg_with_orientation(_corner_image(90, 60), orientation))
    assert out.pixels.shape[:2] == shape
    assert (out.original_height, out.original_width) == shape
    assert _is_colour(out.pixels[red_at], RED)
    assert _is_colour(out.pixels[blue_at], BLUE)


def test_orientation_with_downscale() -> None:
    data = _jpeg_with_orientation(_corner_image(400, 200), 6)
    out = decode_image(data, target_max_side=100)
    assert (out.original_width, out.original_height) == (200, 400)
    assert out.pixels.shape == (100, 50, 3)
    assert out.scale == pytest.approx(0.25)
    assert _is_colour(out.pixels[5, 45], RED)


def test_bad_exif_does_not_fail_decode() -> None:
    data = _save(Image.fromarray(_gradient(20, 10)), "JPEG", exif=b"Exif\x00\x00garbage-not-tiff")
    assert decode_image(data).pixels.shape == (10, 20, 3)


# --- downscaling ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_target_max_side_downscales(fmt: str) -> None:
    out = decode_image(_save(Image.fromarray(_gradient(400, 300)), fmt), target_max_side=100)
    assert out.pixels.shape == (75, 100, 3)
    assert (out.original_width, out.original_height) == (400, 300)
    assert out.scale == pytest.approx(0.25)
    assert out.pixels.flags.c_contiguous


def test_target_max_side_odd_sizes_and_colour_kept() -> None:
    img = Image.fromarray(np.full((333, 517, 3), (10, 200, 30), dtype=np.uint8))
    out = decode_image(_save(img, "JPEG", quality=95), target_max_side=123)
    assert out.pixels.shape == (round(333 * 123 / 517), 123, 3)
    assert out.scale == pytest.approx(123 / 517)
    assert _is_colour(out.pixels[10, 10], (10, 200, 30), 8)


def test_a_jpeg_near_twice_the_target_is_decoded_at_half_scale_and_used_as_it_is() -> None:
    from facesearch.imaging import DRAFT_SLACK

    data = _save(Image.fromarray(_gradient(2000, 1428)), "JPEG", quality=90)
    out = decode_image(data, target_max_side=1024)
    assert out.pixels.shape == (714, 1000, 3)  # the decoder's 1/2 scale: within DRAFT_SLACK of 1024
    assert out.scale == pytest.approx(0.5) and 1000 >= DRAFT_SLACK * 1024
    # Half of 1480 (740) is under 0.9 x 1024: decoded in full and resampled to the target side.
    out = decode_image(_save(Image.fromarray(_gradient(1480, 832)), "JPEG"), target_max_side=1024)
    assert out.pixels.shape == (round(832 * 1024 / 1480), 1024, 3)
    # A PNG has no reduced-scale decode: resampled to the target side.
    out = decode_image(_save(Image.fromarray(_gradient(2000, 1428)), "PNG"), target_max_side=1024)
    assert out.pixels.shape == (731, 1024, 3)


def test_target_max_side_never_upscales() -> None:
    out = decode_image(_save(Image.fromarray(_gradient(50, 40)), "PNG"), target_max_side=100)
    assert out.pixels.shape == (40, 50, 3) and out.scale == 1.0


def test_target_max_side_must_be_positive() -> None:
    with pytest.raises(ValidationError):
        decode_image(_save(Image.fromarray(_gradient(5, 5)), "PNG"), target_max_side=0)


# --- hostile input -------------------------------------------------------------------------------


def _decode_code(data: bytes, **kwargs: Any) -> str:
    try:
        decode_image(data, **kwargs)
    except FaceSearchError as exc:
        return exc.code
    return "OK"


def test_zero_bytes() -> None:
    assert _decode_code(b"") == "IMAGE_DECODE_FAILED"


def test_truncated_jpeg() -> None:
    data = _save(Image.fromarray(_noise(200, 200)), "JPEG", quality=90)
    assert _decode_code(data[: len(data) // 2]) == "IMAGE_DECODE_FAILED"


def test_truncated_png() -> None:
    data = _save(Image.fromarray(_noise(200, 200)), "PNG")
    assert _decode_code(data[: len(data) // 2]) == "IMAGE_DECODE_FAILED"


def test_png_header_claiming_huge_size() -> None:
    with pytest.raises(ImageTooLarge) as info:
        decode_image(_png_header_only(100_000, 100_000))
    assert info.value.code == "IMAGE_TOO_LARGE"
    assert info.value.details["width"] == 100_000


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_over_max_pixels_real_images(fmt: str) -> None:
    data = _save(Image.fromarray(_gradient(100, 100)), fmt)
    assert _decode_code(data, max_pixels=5000) == "IMAGE_TOO_LARGE"
    assert _decode_code(data, max_pixels=10_000) == "OK"


def test_pillow_decompression_bomb_error_is_converted() -> None:
    # 30000 x 30000 is over twice Pillow's own limit: Image.open raises DecompressionBombError.
    assert _decode_code(_jpeg_with_size(30_000, 30_000), max_pixels=10**12) == "IMAGE_TOO_LARGE"


def test_pillow_decompression_bomb_warning_as_error_is_converted() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _decode_code(_jpeg_with_size(10_000, 10_000)) == "IMAGE_TOO_LARGE"


def test_over_max_bytes_checked_first() -> None:
    assert _decode_code(b"x" * 1000, max_bytes=100) == "IMAGE_TOO_LARGE"
    assert _decode_code(_save(Image.fromarray(_noise(50, 50)), "PNG"), max_bytes=100) == "IMAGE_TOO_LARGE"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8)), id="random"),
        pytest.param(b"hello, this is a text file\nnot an image\n", id="text"),
        pytest.param(_save(Image.fromarray(_gradient(8, 8)), "GIF"), id="gif"),
        pytest.param(_save(Image.fromarray(_gradient(8, 8)), "BMP"), id="bmp"),
        pytest.param(_save(Image.fromarray(_gradient(8, 8)), "TIFF"), id="tiff"),
        pytest.param(b"\xff\xd8\xff" + b"\x00" * 100, id="jpeg-magic-garbage"),
        pytest.param(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, id="png-magic-garbage"),
        pytest.param(b"RIFF\x00\x00\x00\x00WEBP" + b"\x00" * 100, id="webp-magic-garbage"),
        pytest.param(_png_header_only(10, 10), id="png-header-only"),
    ],
)
def test_refused_inputs(data: bytes) -> None:
    assert _decode_code(data) == "IMAGE_DECODE_FAILED"


def _mutate(sample: bytes, edits: list[tuple[int, int]], cut: int) -> bytes:
    data = bytearray(sample)
    for pos, value in edits:
        data[pos % len(data)] = value
    return bytes(data[: max(cut % (len(data) + 1), 1)])


_SAMPLES = [
    _save(Image.fromarray(_noise(24, 16)), "PNG"),
    _save(Image.fromarray(_noise(24, 16)), "JPEG"),
    _save(Image.fromarray(_noise(24, 16)), "WEBP"),
    _jpeg_with_orientation(_corner_image(24, 16), 6),
]
_PREFIXES = [b"", b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"RIFF\x10\x00\x00\x00WEBP", b"GIF89a"]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.binary(max_size=512),
        st.builds(bytes.__add__, st.sampled_from(_PREFIXES), st.binary(max_size=512)),
        st.builds(
            _mutate,
            st.sampled_from(_SAMPLES),
            st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=6),
            st.integers(0, 10_000),
        ),
    )
)
def test_arbitrary_bytes_only_raise_facesearch_errors(data: bytes) -> None:
    try:
        out = decode_image(data, max_pixels=2_000_000, target_max_side=64)
    except FaceSearchError as exc:
        assert exc.code in {"IMAGE_DECODE_FAILED", "IMAGE_TOO_LARGE"}
    else:
        assert out.pixels.dtype == np.uint8 and out.pixels.ndim == 3 and out.pixels.shape[2] == 3


# --- base64 --------------------------------------------------------------------------------------

_PAYLOAD = bytes(range(256)) + b"\xfb\xff\xbf" * 10


def test_base64_plain() -> None:
    assert decode_base64(base64.b64encode(_PAYLOAD).decode()) == _PAYLOAD


def test_base64_with_newlines_and_spaces() -> None:
    text = base64.encodebytes(_PAYLOAD).decode()
    assert "\n" in text
    assert decode_base64("  " + text.replace("\n", "\r\n ") + "\n") == _PAYLOAD


def test_base64_data_uri() -> None:
    png = _save(Image.fromarray(_gradient(6, 4)), "PNG")
    text = "data:image/png;base64," + base64.b64encode(png).decode()
    assert decode_base64(text) == png
    assert decode_image(decode_base64(text)).pixels.shape == (4, 6, 3)


def test_base64_url_safe_without_padding() -> None:
    text = base64.urlsafe_b64encode(_PAYLOAD).decode().rstrip("=")
    assert "-" in text or "_" in text
    assert decode_base64(text) == _PAYLOAD
    assert decode_base64(base64.b64encode(b"ab").decode().rstrip("=")) == b"ab"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "not base64!!!",
        "abcde",
        "ab=cd",
        "ÿÿÿÿ",
        "data:text/plain;base64,aGVsbG8=",
        "data:image/png,abc",
        "data:image/png;base64,",
    ],
)
def test_bad_base64(text: str) -> None:
    with pytest.raises(ImageDecodeError) as info:
        decode_base64(text)
    assert info.value.code == "IMAGE_DECODE_FAILED"


def test_base64_over_limit() -> None:
    text = base64.b64encode(b"x" * 1000).decode()
    with pytest.raises(ImageTooLarge):
        decode_base64(text, max_bytes=500)
    with pytest.raises(ImageTooLarge):
        decode_base64("A" * 10_000_000, max_bytes=1000)
    assert decode_base64(text, max_bytes=1000) == b"x" * 1000


# --- encoding, thumbnails, crops -----------------------------------------------------------------


def test_sniff_format() -> None:
    assert sniff_format(_save(Image.fromarray(_gradient(4, 4)), "JPEG")) == "jpeg"
    assert sniff_format(_save(Image.fromarray(_gradient(4, 4)), "PNG")) == "png"
    assert sniff_format(_save(Image.fromarray(_gradient(4, 4)), "WEBP")) == "webp"
    assert sniff_format(_save(Image.fromarray(_gradient(4, 4)), "GIF")) is None
    assert sniff_format(b"") is None and sniff_format(b"RIFF") is None


def test_encode_png_and_jpeg() -> None:
    arr = _gradient(30, 20)
    np.testing.assert_array_equal(decode_image(encode_png(arr)).pixels, arr)
    assert np.abs(decode_image(encode_jpeg(arr, quality=95)).pixels.astype(int) - arr).mean() < 4
    grey = arr[:, :, 0].copy()
    assert decode_image(encode_jpeg(grey)).pixels.shape == (20, 30, 3)
    with pytest.raises(ValidationError):
        encode_jpeg(arr, quality=0)
    with pytest.raises(ValidationError):
        encode_png(arr.astype(np.float32))
    with pytest.raises(ValidationError):
        encode_png(np.zeros((4, 4, 2), dtype=np.uint8))


def test_thumbnail_jpeg() -> None:
    thumb = decode_image(thumbnail_jpeg(_gradient(400, 200)))
    assert thumb.pixels.shape == (80, 160, 3)
    small = decode_image(thumbnail_jpeg(_gradient(40, 20), max_side=160))
    assert small.pixels.shape == (20, 40, 3)
    assert resize_to_fit(_gradient(10, 300), 30).shape == (30, 1, 3)


def test_crop_face_inside() -> None:
    arr = _gradient(100, 100)
    np.testing.assert_array_equal(crop_face(arr, 40, 40, 20, 20, margin=0.0), arr[40:60, 40:60])
    np.testing.assert_array_equal(crop_face(arr, 40, 40, 20, 20, margin=0.5), arr[30:70, 30:70])


def test_crop_face_pads_with_black_outside_image() -> None:
    arr = np.full((50, 50, 3), 200, dtype=np.uint8)
    out = crop_face(arr, 0, 0, 20, 20, margin=0.5)
    assert out.shape == (40, 40, 3)
    assert (out[:10] == 0).all() and (out[:, :10] == 0).all()
    assert (out[10:, 10:] == 200).all()
    out = crop_face(arr, 40, 45, 20, 10, margin=0.0)  # square region 20x20 around (50, 50)
    assert out.shape == (20, 20, 3)
    assert (out[:10, :10] == 200).all() and (out[10:] == 0).all() and (out[:, 10:] == 0).all()


def test_crop_face_aspect_and_output_size() -> None:
    arr = _gradient(100, 100)
    tall = crop_face(arr, 40, 40, 20, 20, margin=0.0, output_aspect=0.5)
    np.testing.assert_array_equal(tall, arr[30:70, 40:60])
    assert crop_face(arr, 40, 40, 20, 20, output_size=64).shape == (64, 64, 3)
    assert crop_face(arr, 40, 40, 20, 20, output_size=60, output_aspect=0.75).shape == (80, 60, 3)
    assert crop_face(arr, 40, 40, 20, 20, output_size=112).flags.c_contiguous


@pytest.mark.parametrize(
    "kwargs",
    [
        {"box_width": 0},
        {"box_height": -1},
        {"box_left": 500},
        {"box_top": -100},
        {"box_left": float("nan")},
        {"margin": -0.1},
        {"output_size": 0},
        {"output_aspect": 0.0},
        {"box_width": 1e6, "box_height": 1e6},
    ],
)
def test_crop_face_validation(kwargs: dict[str, Any]) -> None:
    args: dict[str, Any] = {"box_left": 10, "box_top": 10, "box_width": 20, "box_height": 20, **kwargs}
    with pytest.raises(ValidationError):
        crop_face(_gradient(50, 50), **args)
