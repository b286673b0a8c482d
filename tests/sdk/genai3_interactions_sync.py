"""Google's Python SDK (google-genai 3.x): a create with ``background=False`` (the
finished interaction in its answer, as Google's guide reads ``output_video`` at once),
then the interaction read back with ``include_input=True``. Unchanged but for its base
URL and key.

    python genai3_interactions_sync.py BASE_URL KEY MODEL IMAGE_PNG OUT_DIR

Writes the video to OUT_DIR and prints one JSON line of what it saw.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

from google import genai
from google.genai import types


def main() -> None:
    base_url, key, model, image_path, out = sys.argv[1:6]
    client = genai.Client(api_key=key, http_options=types.HttpOptions(base_url=base_url))
    image = base64.b64encode(Path(image_path).read_bytes()).decode()
    video_format = {"type": "video", "aspect_ratio": "16:9", "resolution": "360p", "duration": "3"}

    interaction = client.interactions.create(
        model=model,
        background=False,
        input=[
            {"type": "text", "text": "a slow push-in on the scene"},
            {"type": "image", "data": image, "mime_type": "image/png"},
        ],
        response_format=video_format,
    )
    video = interaction.output_video
    if video is not None:
        data = video.data
        raw = data if isinstance(data, bytes) else base64.b64decode(data)
        Path(out, "sync.mp4").write_bytes(raw)
    read = client.interactions.get(interaction.id, include_input=True)
    plain = client.interactions.get(interaction.id)
    sent = read.input if isinstance(read.input, list) else []
    echoed = []  # the items, out of the user_input turns the SDK wrapped them in
    for entry in sent:
        dumped = entry.model_dump(mode="json", exclude_none=True)
        turn = dumped.get("content") if dumped.get("type") == "user_input" else None
        echoed += turn if isinstance(turn, list) else [dumped]
    image_item = next((item for item in echoed if item.get("type") == "image"), {})
    print(
        json.dumps(
            {
                "status": interaction.status,
                "has_video": video is not None,
                "input": [item.get("type") for item in echoed],
                "text": next((i.get("text") for i in echoed if i.get("type") == "text"), None),
                "image_round_trips": image_item.get("data") == image,
                "plain_input": plain.input is not None,
            }
        )
    )


if __name__ == "__main__":
    main()
