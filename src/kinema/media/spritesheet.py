"""A spritesheet of a video: evenly spaced frames tiled into one JPEG, for scrubbing previews."""

from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO

import av
from PIL import Image

from kinema.errors import EngineError

__all__ = ["COLUMNS", "ROWS", "TILE_SIDE", "build_spritesheet"]

COLUMNS = 5
ROWS = 5
TILE_SIDE = 256  # long side of one tile, in pixels
_QUALITY = 85


def build_spritesheet(source: Path | BinaryIO, frame_count: int | None = None) -> bytes:
    """``COLUMNS`` x ``ROWS`` evenly spaced frames of an MP4, as one JPEG.

    Tiles keep the video's aspect ratio with their long side ``TILE_SIDE`` and run left to
    right, then top to bottom; the first tile is the first frame and the last tile the
    last frame. ``frame_count`` is used when the container does not state its length.
    """
    count = COLUMNS * ROWS
    with av.open(str(source) if isinstance(source, Path) else source, mode="r") as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        width, height = stream.codec_context.width, stream.codec_context.height
        scale = TILE_SIDE / max(width, height)
        tile_w, tile_h = max(2, round(width * scale)), max(2, round(height * scale))
        total = max(1, stream.frames or frame_count or 1)
        wanted = [round(i * (total - 1) / (count - 1)) for i in range(count)]
        tiles: list[Image.Image] = []
        for index, frame in enumerate(container.decode(stream)):
            while len(tiles) < count and wanted[len(tiles)] == index:
                tiles.append(frame.reformat(width=tile_w, height=tile_h, format="rgb24").to_image())
            if len(tiles) == count:
                break
    if not tiles:
        raise EngineError("the video has no frames")
    tiles += [tiles[-1]] * (count - len(tiles))  # a container that overstated its length
    sheet = Image.new("RGB", (tile_w * COLUMNS, tile_h * ROWS))
    for position, tile in enumerate(tiles):
        row, column = divmod(position, COLUMNS)
        sheet.paste(tile, (column * tile_w, row * tile_h))
    buffer = io.BytesIO()
    sheet.save(buffer, "JPEG", quality=_QUALITY)
    return buffer.getvalue()
