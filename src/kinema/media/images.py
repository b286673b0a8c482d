"""Image intake: turn a client's image source into checked bytes, and bytes into pixels.

A source is an http(s) URL, a ``data:image/...;base64,`` URI or raw base64. At submit
time ``read_image_source`` gets the bytes and ``validate_image`` accepts them only if
they are a PNG, JPEG or WebP image within the size, pixel and aspect limits that fully
decodes, so a bad image is a 400 for the client instead of a failed job later.
The worker then calls ``decode_image`` on the stored bytes.

Choices worth knowing:

* The format is sniffed from the bytes; a ``data:`` URI's declared media type is not
  trusted or needed. Multi-picture JPEGs (MPO, as many cameras write) count as JPEG.
* Animated PNG and WebP are accepted; only the first frame is checked and used.
* Pillow's decompression-bomb warning is an error here, and the pixel count is also
  checked explicitly against ``Image.MAX_IMAGE_PIXELS``, because the warnings filter is
  process-wide state that another thread may restore while this one is decoding.
* Transparent pixels are composited on white: transparent inputs are mostly logos and
  cut-out products drawn for light backgrounds, and dark artwork vanishes on black.
* The stored bytes are the client's bytes, metadata included; orientation is applied
  when decoding, not by rewriting the file.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import math
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from io import BytesIO
from typing import Literal, TypeAlias
from urllib.parse import unquote

from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from kinema.errors import InvalidImage
from kinema.media.fetch import FieldPath, ImageFetcher, format_size

__all__ = [
    "MAX_ASPECT",
    "ImageData",
    "ImageFormat",
    "decode_image",
    "read_image_source",
    "validate_image",
]

ImageFormat: TypeAlias = Literal["PNG", "JPEG", "WEBP"]

MAX_ASPECT = 4
"""The long side may be at most this many times the short side (1:4 .. 4:1)."""

# Pillow's format name -> the format kinema records. Image.open is limited to these
# plugins, so no other decoder ever parses client bytes beyond naming the format.
_ACCEPTED: dict[str, ImageFormat] = {"PNG": "PNG", "JPEG": "JPEG", "MPO": "JPEG", "WEBP": "WEBP"}
_OPEN_FORMATS = ("PNG", "JPEG", "WEBP")
_MIME: dict[ImageFormat, str] = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
_ACCEPTED_NAMES = "PNG, JPEG or WebP"

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
# Either base64 alphabet, and line breaks as MIME encoders insert them.
_NOT_BASE64 = re.compile(r"[^A-Za-z0-9+/\-_\r\n]")
_URLSAFE_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
_SIXTEEN_BIT_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N"})
_BACKGROUND = (255, 255, 255, 255)


@dataclasses.dataclass(frozen=True)
class ImageData:
    """An accepted input image: the bytes as received, and what they were found to be.

    ``width`` and ``height`` are as displayed, i.e. after EXIF orientation.
    """

    data: bytes = dataclasses.field(repr=False)
    format: ImageFormat
    mime: str
    width: int
    height: int


def read_image_source(source: str, fetcher: ImageFetcher, *, field: FieldPath) -> ImageData:
    """Fetch or decode ``source`` and validate it, or raise ``InvalidImage``/``UnsafeURL``.

    ``field`` is the wire field the source came from; ``fetcher.max_bytes`` is the size
    limit for every kind of source.
    """
    return validate_image(
        _source_bytes(source, fetcher, field), field=field, max_bytes=fetcher.max_bytes
    )


def validate_image(data: bytes, *, field: FieldPath, max_bytes: int) -> ImageData:
    """Accept ``data`` as an input image, or say exactly why not with ``InvalidImage``."""
    if not data:
        raise InvalidImage.for_field(field, "image is empty")
    if len(data) > max_bytes:
        raise InvalidImage.for_field(
            field, f"image is {format_size(len(data))}; the limit is {format_size(max_bytes)}"
        )
    with _decoding(field):
        with _open(data, field) as img:
            image_format = _ACCEPTED[str(img.format)]
            _check_pixels(img, field)
            _check_aspect(img.size, field)
            img.verify()
        with _open(data, field) as img:
            img.load()
            width, height = _displayed_size(img)
    return ImageData(data, image_format, _MIME[image_format], width, height)


def decode_image(data: bytes, *, field: FieldPath = "image") -> Image.Image:
    """The first frame of an accepted image as upright RGB, alpha composited on white."""
    with _decoding(field), _open(data, field) as img:
        _check_pixels(img, field)
        img.load()
        upright = ImageOps.exif_transpose(img)
        return _to_rgb(upright)


def _source_bytes(source: str, fetcher: ImageFetcher, field: FieldPath) -> bytes:
    text = source.strip()
    if not text:
        raise InvalidImage.for_field(
            field, "no image given; send an http(s) URL or base64 image data"
        )
    scheme = _SCHEME.match(text)
    if scheme is None:
        # Base64 has no ':' in its alphabet, so anything without a scheme is meant as base64.
        return _decode_base64(text, field, fetcher.max_bytes, "not an http(s) URL or valid base64")
    if scheme.group().lower() == "data:":
        return _decode_data_uri(text, field, fetcher.max_bytes)
    return fetcher.fetch(text, field=field)


def _decode_data_uri(uri: str, field: FieldPath, max_bytes: int) -> bytes:
    header, comma, payload = uri[len("data:") :].partition(",")
    if not comma:
        raise InvalidImage.for_field(field, "data URI has no ',' before its data")
    if header.split(";")[-1].strip().lower() != "base64":
        raise InvalidImage.for_field(
            field, "data URI must be base64-encoded (data:image/png;base64,...)"
        )
    return _decode_base64(
        unquote(payload).strip(), field, max_bytes, "data URI is not valid base64"
    )


def _decode_base64(text: str, field: FieldPath, max_bytes: int, problem: str) -> bytes:
    """Strict base64 in either alphabet, padding optional, line breaks ignored.

    Strict means any other character (spaces included) is an error, where the standard
    library's default would silently drop it and decode something else.
    """
    unpadded = text.rstrip("=")
    stray = _NOT_BASE64.search(unpadded)
    if stray is not None:
        raise InvalidImage.for_field(
            field,
            f"{problem} (character {stray.group()!r} at position {stray.start()} is not base64)",
        )
    compact = unpadded.replace("\r", "").replace("\n", "")
    if len(text) - len(unpadded) > 2 or len(compact) % 4 == 1:
        raise InvalidImage.for_field(field, f"{problem} (its length or padding is wrong)")
    standard_only = "+" in compact or "/" in compact
    if standard_only and ("-" in compact or "_" in compact):
        raise InvalidImage.for_field(
            field, f"{problem} (it mixes the standard and URL-safe alphabets)"
        )
    decoded_size = len(compact) * 3 // 4
    if decoded_size > max_bytes:
        raise InvalidImage.for_field(
            field, f"image is {format_size(decoded_size)}; the limit is {format_size(max_bytes)}"
        )
    standard = compact.encode("ascii").translate(_URLSAFE_TO_STANDARD)
    try:
        return base64.b64decode(standard + b"=" * (-len(standard) % 4), validate=True)
    except binascii.Error as exc:
        raise InvalidImage.for_field(field, f"{problem} ({exc})") from exc


@contextmanager
def _decoding(field: FieldPath) -> Iterator[None]:
    """Turn decompression-bomb warnings into errors and every Pillow failure into ours."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            yield
        except InvalidImage:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise InvalidImage.for_field(field, _too_many_pixels()) from exc
        # Pillow's decoders report malformed input with many exception types (OSError,
        # SyntaxError, ValueError, EOFError, struct.error, ...); all of them mean the same.
        except Exception as exc:
            raise InvalidImage.for_field(
                field, f"image data is corrupt or truncated ({exc or type(exc).__name__})"
            ) from exc


@contextmanager
def _open(data: bytes, field: FieldPath) -> Iterator[Image.Image]:
    try:
        img = Image.open(BytesIO(data), formats=_OPEN_FORMATS)
    except UnidentifiedImageError:
        raise InvalidImage.for_field(field, _unaccepted_format(data)) from None
    with img:
        if img.format not in _ACCEPTED:
            raise InvalidImage.for_field(field, _unaccepted_format(data))
        yield img


def _unaccepted_format(data: bytes) -> str:
    """Name the format of bytes kinema does not accept, if Pillow can tell what they are."""
    try:
        with Image.open(BytesIO(data)) as img:
            name = img.format
    except Exception:
        name = None
    if name is None or name in _ACCEPTED:
        return f"not a {_ACCEPTED_NAMES} image (the data is in no recognised image format)"
    return f"format {name} is not accepted; use {_ACCEPTED_NAMES}"


def _check_pixels(img: Image.Image, field: FieldPath) -> None:
    width, height = img.size
    if width <= 0 or height <= 0:
        raise InvalidImage.for_field(field, f"image is {width} x {height} pixels; it has none")
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and width * height > limit:
        raise InvalidImage.for_field(
            field, f"image is {width} x {height} pixels; {_too_many_pixels()}"
        )


def _too_many_pixels() -> str:
    limit = Image.MAX_IMAGE_PIXELS or 0
    return f"images over {limit / 1e6:.1f} megapixels are too large to decode safely"


def _check_aspect(size: tuple[int, int], field: FieldPath) -> None:
    width, height = size
    long_side, short_side = max(width, height), min(width, height)
    if long_side <= MAX_ASPECT * short_side:
        return
    ratio = f"{math.ceil(long_side / short_side * 100) / 100:.2f}".rstrip("0").rstrip(".")
    shape = f"{ratio}:1" if width > height else f"1:{ratio}"
    raise InvalidImage.for_field(
        field,
        f"aspect ratio {shape} ({width} x {height} pixels) is outside "
        f"1:{MAX_ASPECT} .. {MAX_ASPECT}:1",
    )


def _displayed_size(img: Image.Image) -> tuple[int, int]:
    width, height = img.size
    orientation = img.getexif().get(ExifTags.Base.Orientation)
    # Orientations 5 to 8 turn the picture a quarter, so its sides swap.
    if orientation in (5, 6, 7, 8):
        return height, width
    return width, height


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in _SIXTEEN_BIT_MODES:
        # A plain convert would clip 16-bit samples to 255 rather than scale them.
        img = img.convert("I").point(lambda value: value / 257).convert("L")
    if img.has_transparency_data:
        background = Image.new("RGBA", img.size, _BACKGROUND)
        return Image.alpha_composite(background, img.convert("RGBA")).convert("RGB")
    return img.convert("RGB")
