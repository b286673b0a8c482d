"""google-genai 3.x ``generate_videos`` as its docs write it today, in Vertex AI express
mode, unchanged but for base URL and key: the ``source=`` form (the prompt/image/video
keywords warn that they go away), ASSET reference images, ``labels`` and ``resize_mode``.

    python genai3_vertex_source.py BASE_URL KEY MODEL RED_PNG BLUE_PNG SQUARE_PNG OUT_DIR

Makes a reference-to-video (red, then blue) with labels, and an image-to-video of a square
picture padded to 16:9; writes both to OUT_DIR and prints one JSON line.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

from google import genai
from google.genai import types


def image(path: str) -> types.Image:
    return types.Image(image_bytes=Path(path).read_bytes(), mime_type="image/png")


def finish(client: genai.Client, operation: types.GenerateVideosOperation, out: Path) -> dict:
    deadline = time.monotonic() + 180
    while not operation.done:
        if time.monotonic() > deadline:
            sys.exit("the operation did not finish")
        time.sleep(0.5)
        operation = client.operations.get(operation)
    if operation.error:
        sys.exit(f"operation failed: {operation.error}")
    assert operation.response is not None and operation.response.generated_videos
    video = operation.response.generated_videos[0].video
    assert video is not None
    video.save(str(out))
    return dict(operation.metadata or {})


def main() -> None:
    base_url, key, model, red, blue, square, out = sys.argv[1:8]
    client = genai.Client(
        vertexai=True, api_key=key, http_options=types.HttpOptions(base_url=base_url)
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        references = client.models.generate_videos(
            model=model,
            source=types.GenerateVideosSource(prompt="a product on a turntable"),
            config=types.GenerateVideosConfig(
                duration_seconds=8,
                resolution="720p",
                reference_images=[
                    types.VideoGenerationReferenceImage(image=image(red), reference_type="ASSET"),
                    types.VideoGenerationReferenceImage(image=image(blue), reference_type="ASSET"),
                ],
                labels={"team": "video", "run": "nightly"},
            ),
        )
        padded = client.models.generate_videos(
            model=model,
            source=types.GenerateVideosSource(prompt="a slow push-in", image=image(square)),
            config=types.GenerateVideosConfig(
                duration_seconds=4, resolution="720p", aspect_ratio="16:9", resize_mode="PAD"
            ),
        )
    deprecations = [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)]
    metadata = finish(client, references, Path(out) / "references.mp4")
    finish(client, padded, Path(out) / "padded.mp4")
    print(
        json.dumps(
            {
                "names": [references.name, padded.name],
                "labels": metadata.get("labels"),
                "deprecations": [d for d in deprecations if "generate_videos" in d],
            }
        )
    )


if __name__ == "__main__":
    main()
