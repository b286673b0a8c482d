from __future__ import annotations

import base64
import random
import struct
import warnings
import zlib
from io import BytesIO

import pytest
from PIL import Image

from kinema.errors import InvalidImage, UnsafeURL
from kinema.media.fetch import FieldPath, ImageFetcher
from kinema.media.images import (
    ImageData,
    ImageFormat,
    decode_image,
    read_image_source,
    validate_image,
)

LIMIT = 50 * 2**20


def encode(img: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = BytesIO()
    img.save(buffer, fmt, **params)
    return buffer.getvalue()


def noisy(size: tuple[int, int], seed: int = 7) -> Image.Image:
    """An image that does not compress away, so its bytes cover every base64 character."""
    rng = random.Random(seed)
    return Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3))


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` with almost no pixel data behind it."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


def problem(excinfo: pytest.ExceptionInfo[InvalidImage]) -> str:
    return excinfo.value.problems[0].message


class StubFetcher(ImageFetcher):
    """Answers every URL with fixed bytes and records what it was asked for."""

    def __init__(self, body: bytes = b"", max_bytes: int = LIMIT) -> None:
        super().__init__(max_bytes=max_bytes)
        self.body = body
        self.requests: list[tuple[str, FieldPath]] = []

    def fetch(self, url: str, *, field: FieldPath) -> bytes:
        if not url.startswith(("http://", "https://")):
            return super().fetch(url, field=field)
        self.requests.append((url, field))
        return self.body


# --- validate_image: what is accepted -----------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "mime"), [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")]
)
def test_accepts_png_jpeg_and_webp(fmt: ImageFormat, mime: str) -> None:
    data = encode(Image.new("RGB", (64, 48), "purple"), fmt)

    image = validate_image(data, field="image_url", max_bytes=LIMIT)

    assert image == ImageData(data, fmt, mime, 64, 48)


def test_multi_picture_jpeg_counts_as_jpeg() -> None:
    first, second = Image.new("RGB", (32, 32), "red"), Image.new("RGB", (32, 32), "blue")
    data = encode(first, "MPO", save_all=True, append_images=[second])

    image = validate_image(data, field="image_url", max_bytes=LIMIT)

    assert (image.format, image.mime) == ("JPEG", "image/jpeg")


def test_animated_webp_is_accepted_and_decodes_to_its_first_frame() -> None:
    frames = [Image.new("RGB", (16, 16), color) for color in ("red", "blue")]
    data = encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True)

    assert validate_image(data, field="image_url", max_bytes=LIMIT).format == "WEBP"
    assert decode_image(data).getpixel((8, 8)) == (255, 0, 0)


@pytest.mark.parametrize("size", [(100, 400), (400, 100), (300, 300)])
def test_aspect_ratio_at_the_bounds_is_accepted(size: tuple[int, int]) -> None:
    data = encode(Image.new("RGB", size), "PNG")
    assert validate_image(data, field="image_url", max_bytes=LIMIT).width == size[0]


def test_size_exactly_at_the_limit_is_accepted() -> None:
    data = encode(Image.new("RGB", (10, 10)), "PNG")
    assert validate_image(data, field="image_url", max_bytes=len(data)).format == "PNG"


def test_reports_dimensions_as_displayed_after_exif_rotation() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    data = encode(Image.new("RGB", (80, 40)), "JPEG", exif=exif)

    image = validate_image(data, field="image_url", max_bytes=LIMIT)

    assert (image.width, image.height) == (40, 80)


# --- validate_image: what is refused ------------------------------------------------


def test_refuses_bytes_that_are_no_image() -> None:
    with pytest.raises(InvalidImage) as caught:
        validate_image(b"this is plain text, not pixels", field="image_url", max_bytes=LIMIT)
    assert problem(caught).startswith("not a PNG, JPEG or WebP image")
    assert caught.value.problems[0].path == ("image_url",)


def test_refuses_empty_bytes() -> None:
    with pytest.raises(InvalidImage, match="image is empty"):
        validate_image(b"", field="image_url", max_bytes=LIMIT)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_refuses_truncated_image(fmt: str) -> None:
    data = encode(noisy((128, 128)), fmt)
    with pytest.raises(InvalidImage) as caught:
        validate_image(data[: len(data) // 2], field="image_url", max_bytes=LIMIT)
    assert problem(caught).startswith("image data is corrupt or truncated")


def test_refuses_png_with_corrupted_pixel_data() -> None:
    data = bytearray(encode(noisy((64, 64)), "PNG"))
    data[200:260] = b"\xff" * 60
    with pytest.raises(InvalidImage, match="corrupt or truncated"):
        validate_image(bytes(data), field="image_url", max_bytes=LIMIT)


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
def test_refuses_other_formats_by_name(fmt: str) -> None:
    data = encode(Image.new("RGB", (32, 32)), fmt)
    with pytest.raises(InvalidImage) as caught:
        validate_image(data, field=("image_urls", 1), max_bytes=LIMIT)
    assert problem(caught) == f"format {fmt} is not accepted; use PNG, JPEG or WebP"
    assert caught.value.problems[0].path == ("image_urls", 1)


def test_refuses_oversized_image() -> None:
    data = encode(noisy((64, 64)), "PNG")
    with pytest.raises(InvalidImage) as caught:
        validate_image(data, field="image_url", max_bytes=4096)
    assert problem(caught) == f"image is {-(-len(data) * 10 // 1024) / 10} KB; the limit is 4 KB"


@pytest.mark.parametrize(
    ("size", "shape"),
    [((100, 500), "1:5"), ((500, 100), "5:1"), ((200, 1040), "1:5.2"), ((100, 401), "1:4.01")],
)
def test_refuses_extreme_aspect_ratio(size: tuple[int, int], shape: str) -> None:
    data = encode(Image.new("RGB", size), "PNG")
    with pytest.raises(InvalidImage) as caught:
        validate_image(data, field="image_url", max_bytes=LIMIT)
    width, height = size
    assert problem(caught) == (
        f"aspect ratio {shape} ({width} x {height} pixels) is outside 1:4 .. 4:1"
    )


@pytest.mark.parametrize(
    "size",
    [
        (10_000, 9_000),  # above Pillow's warning threshold: its warning becomes an error
        (30_000, 30_000),  # above its hard limit
    ],
)
def test_refuses_decompression_bomb(size: tuple[int, int]) -> None:
    filters_before = list(warnings.filters)
    limit_before = Image.MAX_IMAGE_PIXELS

    with pytest.raises(InvalidImage) as caught:
        validate_image(png_declaring(*size), field="image_url", max_bytes=LIMIT)

    assert "too large to decode safely" in problem(caught)
    assert warnings.filters == filters_before
    assert limit_before == Image.MAX_IMAGE_PIXELS


def test_decode_refuses_decompression_bomb_too() -> None:
    with pytest.raises(InvalidImage, match="too large to decode safely"):
        decode_image(png_declaring(10_000, 9_000))


# --- read_image_source --------------------------------------------------------------


def test_data_uri_is_decoded() -> None:
    data = encode(Image.new("RGB", (20, 10), "teal"), "PNG")
    uri = "data:image/png;base64," + base64.b64encode(data).decode()

    image = read_image_source(uri, StubFetcher(), field="image_url")

    assert (image.data, image.format, image.width, image.height) == (data, "PNG", 20, 10)


def test_data_uri_media_type_is_not_trusted_over_the_bytes() -> None:
    data = encode(Image.new("RGB", (20, 10)), "JPEG")
    uri = "DATA:image/png;base64," + base64.b64encode(data).decode()
    assert read_image_source(uri, StubFetcher(), field="image_url").format == "JPEG"


def test_raw_base64_is_decoded() -> None:
    data = encode(Image.new("RGB", (20, 10)), "WEBP")
    source = base64.b64encode(data).decode()
    assert read_image_source(source, StubFetcher(), field="image_url").data == data


def test_urlsafe_base64_without_padding_is_decoded() -> None:
    data = next(d for h in range(16, 32) if len(d := encode(noisy((16, h)), "PNG")) % 3)
    source = base64.urlsafe_b64encode(data).decode().rstrip("=")
    assert set(source) & {"-", "_"}, "the sample must exercise the URL-safe alphabet"
    assert len(source) % 4, "the sample must exercise missing padding"

    assert read_image_source(source, StubFetcher(), field="image_url").data == data


def test_base64_with_line_breaks_is_decoded() -> None:
    data = encode(noisy((16, 16)), "PNG")
    source = base64.encodebytes(data).decode()
    assert "\n" in source.strip()
    assert read_image_source(source, StubFetcher(), field="image_url").data == data


def test_http_url_goes_through_the_fetcher() -> None:
    data = encode(Image.new("RGB", (30, 30)), "PNG")
    fetcher = StubFetcher(data)

    image = read_image_source(" https://cdn.example.com/a.png ", fetcher, field=("image_urls", 0))

    assert image.data == data
    assert fetcher.requests == [("https://cdn.example.com/a.png", ("image_urls", 0))]


def test_fetched_bytes_are_validated() -> None:
    fetcher = StubFetcher(encode(Image.new("RGB", (30, 30)), "GIF"))
    with pytest.raises(InvalidImage, match="format GIF is not accepted"):
        read_image_source("https://cdn.example.com/a.gif", fetcher, field="image_url")


def test_other_url_schemes_are_refused() -> None:
    with pytest.raises(UnsafeURL, match="only http and https URLs are fetched, not file:"):
        read_image_source("file:///etc/passwd", StubFetcher(), field="image_url")


@pytest.mark.parametrize(
    ("source", "detail"),
    [
        ("hello_world!", "character '!' at position 11 is not base64"),
        ("a picture of a cat", "character ' ' at position 1 is not base64"),
        ("abcde", "its length or padding is wrong"),
        ("ab+c-d__", "it mixes the standard and URL-safe alphabets"),
        ("ab=c", "character '=' at position 2 is not base64"),
    ],
)
def test_garbage_string_is_refused_with_a_clear_message(source: str, detail: str) -> None:
    with pytest.raises(InvalidImage) as caught:
        read_image_source(source, StubFetcher(), field="image_url")
    assert problem(caught).startswith("not an http(s) URL or valid base64 (")
    assert detail in problem(caught)


def test_valid_base64_of_non_image_bytes_says_so() -> None:
    source = base64.b64encode(b"just some text").decode()
    with pytest.raises(InvalidImage, match="not a PNG, JPEG or WebP image"):
        read_image_source(source, StubFetcher(), field="image_url")


def test_empty_source_is_refused() -> None:
    with pytest.raises(InvalidImage, match="no image given"):
        read_image_source("   ", StubFetcher(), field="image_url")


def test_data_uri_must_be_base64() -> None:
    with pytest.raises(InvalidImage, match=r"data URI must be base64-encoded"):
        read_image_source("data:image/png,%89PNG", StubFetcher(), field="image_url")


def test_data_uri_with_bad_payload() -> None:
    with pytest.raises(InvalidImage, match=r"data URI is not valid base64 \(character"):
        read_image_source("data:image/png;base64,iVBOR*w0", StubFetcher(), field="image_url")


def test_oversized_base64_is_refused_before_decoding() -> None:
    source = "A" * 8000  # decodes to 6000 bytes
    with pytest.raises(InvalidImage) as caught:
        read_image_source(source, StubFetcher(max_bytes=4096), field="image_url")
    assert problem(caught) == "image is 5.9 KB; the limit is 4 KB"


# --- decode_image -------------------------------------------------------------------


def test_decode_applies_exif_orientation() -> None:
    stored = Image.new("RGB", (80, 40), (255, 0, 0))
    stored.paste((0, 0, 255), (40, 0, 80, 40))  # left half red, right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise: the left edge becomes the top
    data = encode(stored, "JPEG", exif=exif, quality=95)

    upright = decode_image(data)

    assert upright.size == (40, 80)
    top, bottom = upright.getpixel((20, 10)), upright.getpixel((20, 70))
    assert isinstance(top, tuple) and isinstance(bottom, tuple)
    assert top[0] > 200 and top[2] < 60
    assert bottom[2] > 200 and bottom[0] < 60


def test_decode_composites_alpha_on_white() -> None:
    rgba = Image.new("RGBA", (3, 1), (0, 0, 0, 0))
    rgba.putpixel((1, 0), (255, 0, 0, 255))
    rgba.putpixel((2, 0), (0, 0, 0, 128))

    rgb = decode_image(encode(rgba, "PNG"))

    assert rgb.mode == "RGB"
    assert rgb.getpixel((0, 0)) == (255, 255, 255)
    assert rgb.getpixel((1, 0)) == (255, 0, 0)
    assert rgb.getpixel((2, 0)) == (127, 127, 127)


def test_decode_palette_transparency_on_white() -> None:
    palette = Image.new("P", (2, 1))
    palette.putpalette([0, 0, 0, 0, 255, 0])
    palette.putpixel((1, 0), 1)
    data = encode(palette, "PNG", transparency=0)

    rgb = decode_image(data)

    assert rgb.getpixel((0, 0)) == (255, 255, 255)
    assert rgb.getpixel((1, 0)) == (0, 255, 0)


def test_decode_scales_sixteen_bit_grey() -> None:
    data = encode(Image.new("I;16", (2, 2), 40000), "PNG")
    assert decode_image(data).getpixel((0, 0)) == (155, 155, 155)


def test_decode_returns_independent_rgb_image() -> None:
    data = encode(Image.new("L", (5, 4), 90), "WEBP", lossless=True)
    rgb = decode_image(data)
    assert (rgb.mode, rgb.size, rgb.getpixel((0, 0))) == ("RGB", (5, 4), (90, 90, 90))


def test_decode_refuses_corrupt_bytes() -> None:
    with pytest.raises(InvalidImage, match="not a PNG, JPEG or WebP image"):
        decode_image(b"\x89PNG but not really")
