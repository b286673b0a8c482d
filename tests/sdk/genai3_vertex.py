"""Google's own Python SDK (google-genai 3.x) in Vertex AI mode, unchanged but for its
base URL and key, run in its own virtualenv (the test extra pins 2.x for Gemini mode).

    python genai3_vertex.py express|project BASE_URL KEY MODEL IMAGE_PNG OUT_MP4

Prints one JSON line: the SDK version, the operation name and the video's size.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from google import genai
from google.genai import types


def client(mode: str, base_url: str, key: str) -> genai.Client:
    options = types.HttpOptions(base_url=base_url)
    if mode == "express":
        return genai.Client(vertexai=True, api_key=key, http_options=options)
    # Project mode takes an OAuth credential; its token is the kinema key.
    from google.oauth2.credentials import Credentials

    return genai.Client(
        vertexai=True,
        project="my-project",
        location="us-central1",
        credentials=Credentials(token=key),
        http_options=options,
    )


def main() -> None:
    mode, base_url, key, model, image_path, out = sys.argv[1:7]
    sdk = client(mode, base_url, key)
    image = types.Image(image_bytes=Path(image_path).read_bytes(), mime_type="image/png")
    operation = sdk.models.generate_videos(
        model=model,
        prompt="a slow push-in on the scene",
        image=image,
        config=types.GenerateVideosConfig(
            number_of_videos=1, duration_seconds=4, resolution="720p", aspect_ratio="16:9"
        ),
    )
    first_name = operation.name
    deadline = time.monotonic() + 180
    while not operation.done:
        if time.monotonic() > deadline:
            sys.exit("the operation did not finish")
        time.sleep(0.5)
        operation = sdk.operations.get(operation)
    if operation.error:
        sys.exit(f"operation failed: {operation.error}")
    assert operation.response is not None and operation.response.generated_videos
    video = operation.response.generated_videos[0].video
    assert video is not None
    video.save(out)
    print(
        json.dumps(
            {
                "sdk": genai.__version__,
                "name": first_name,
                "mime_type": video.mime_type,
                "bytes": Path(out).stat().st_size,
            }
        )
    )


if __name__ == "__main__":
    main()
