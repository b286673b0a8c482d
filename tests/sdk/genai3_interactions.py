"""Google's Python SDK (google-genai 3.x) making video with Gemini Omni through the
Interactions API, in its default API-key mode, unchanged but for its base URL and key.

    python genai3_interactions.py BASE_URL KEY MODEL IMAGE_PNG OUT_DIR

Makes an image-to-video and a text-to-video interaction and polls each with a sleep as
Google's guide does, refines the first with ``previous_interaction_id``, streams the
refinement's events, cancels one more and deletes it. Writes the three videos to OUT_DIR
and prints one JSON line of what it saw.
"""

from __future__ import annotations

import base64
import json
import sys
import time
from pathlib import Path

from google import genai
from google.genai import types

DONE = ("completed", "failed", "cancelled", "incomplete")


def wait(client: genai.Client, interaction_id: str) -> object:
    deadline = time.monotonic() + 180
    interaction = client.interactions.get(interaction_id)
    while interaction.status not in DONE:
        if time.monotonic() > deadline:
            sys.exit(f"interaction {interaction_id} did not finish")
        time.sleep(0.5)
        interaction = client.interactions.get(interaction_id)
    return interaction


def save(interaction: object, path: Path) -> None:
    video = interaction.output_video  # type: ignore[attr-defined]
    assert video is not None, interaction
    data = video.data
    path.write_bytes(data if isinstance(data, bytes) else base64.b64decode(data))


def main() -> None:
    base_url, key, model, image_path, out = sys.argv[1:6]
    out_dir = Path(out)
    client = genai.Client(api_key=key, http_options=types.HttpOptions(base_url=base_url))
    image = base64.b64encode(Path(image_path).read_bytes()).decode()
    video_format = {"type": "video", "aspect_ratio": "16:9", "resolution": "360p", "duration": "3"}

    from_image = client.interactions.create(
        model=model,
        background=True,
        input=[
            {"type": "text", "text": "a slow push-in on the scene"},
            {"type": "image", "data": image, "mime_type": "image/png"},
        ],
        response_format=video_format,
        labels={"team": "video"},
    )
    from_text = client.interactions.create(
        model=model,
        background=True,
        input="a lighthouse at dusk, waves below",
        response_format=video_format,
        generation_config={"seed": 7, "video_config": {"task": "text_to_video"}},
    )
    first = wait(client, from_image.id)
    second = wait(client, from_text.id)
    save(first, out_dir / "image.mp4")
    save(second, out_dir / "text.mp4")

    refined = client.interactions.create(
        model=model,
        background=True,
        input="the same scene, now at night",
        previous_interaction_id=first.id,
        response_format=video_format,
    )
    events = [
        event.event_type for event in client.interactions.get(refined.id, stream=True)
    ]
    third = wait(client, refined.id)
    save(third, out_dir / "refined.mp4")

    doomed = client.interactions.create(
        model=model,
        background=True,
        input="a long slow pan over mountains",
        response_format={**video_format, "duration": "15"},
    )
    cancelled = client.interactions.cancel(doomed.id)
    ended = wait(client, doomed.id)
    client.interactions.delete(doomed.id)
    try:
        client.interactions.get(doomed.id)
        gone = False
    except Exception as error:  # the SDK's 404
        gone = "404" in str(error) or "NOT_FOUND" in str(error)

    print(
        json.dumps(
            {
                "sdk": genai.__version__,
                "ids": [first.id, second.id, third.id],
                "statuses": [first.status, second.status, third.status],
                "labels": first.labels,
                "refined_from": third.previous_interaction_id,
                "events": events,
                "cancel_answer": cancelled.status,
                "cancelled": ended.status,
                "deleted": gone,
            }
        )
    )


if __name__ == "__main__":
    main()
