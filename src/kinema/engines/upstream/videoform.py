"""The multipart create form of the open GPU video servers (vLLM-Omni, SGLang Diffusion).

Both take ``POST /v1/videos`` as ``multipart/form-data`` with the OpenAI fields (``prompt``,
``model``, ``seconds``, ``size``, the first frame as the ``input_reference`` file part)
and their own extensions: ``num_frames`` and ``fps`` (which win over ``seconds``),
``seed``, ``negative_prompt``, ``generate_sound``, sampling fields
(``num_inference_steps``, ``guidance_scale``, ``flow_shift``...) and ``extra_params``, a
JSON-encoded object of model-specific parameters.

Seconds to frames: both servers turn ``seconds`` into ``seconds * fps`` frames (24 fps
unless told), which is not a frame count the video models make (Wan: 4k + 1, LTX: 8k + 1)
and not at their native rate (Wan 2.2 A14B: 16 fps). kinema sends the count itself, at
the served model's rate and step (catalog ``fps`` and ``frame_step``): the smallest
``frame_step * k + 1`` covering the requested seconds, e.g. 5 s of Wan TI2V 5B at 24 fps
is 121 frames, 5 s of Wan A14B at 16 fps is 81.

The first frame is fitted to the requested size (cover, centre crop), as kinema's own
engines fit it: vLLM-Omni resizes an image of another shape to the size without keeping
its aspect ratio.

Catalog keys of such an engine, beside the upstream ones: ``fps`` (default 24),
``frame_step`` (default 4), ``fields`` (a table of form fields sent with every job, e.g.
``{ num_inference_steps = 40, guidance_scale = 5.0 }``) and ``extra_params`` (a table sent
JSON-encoded).
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from PIL import Image as PILImage
from PIL import ImageOps

from kinema.engines.upstream.protocol import Image, Submission
from kinema.wire import videojobs as wire

FilePart = tuple[str | None, bytes | str, str | None]
_SCALARS = (str, int, float, bool)


@dataclass(frozen=True)
class ServedModel:
    """What kinema knows of the model the server runs, from the engine's catalog table."""

    fps: int = 24
    frame_step: int = 4
    fields: dict[str, Any] = field(default_factory=dict)
    extra_params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> ServedModel:
        """Read the catalog keys; ``ValueError`` names the one at fault."""
        fps, step = options.get("fps", 24), options.get("frame_step", 4)
        for name, value in (("fps", fps), ("frame_step", step)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"'{name}' must be a whole number of at least 1, not {value!r}")
        fields, extra = options.get("fields", {}), options.get("extra_params", {})
        if not isinstance(fields, dict) or not all(
            isinstance(v, _SCALARS) for v in fields.values()
        ):
            raise ValueError("'fields' must be a table of strings, numbers and booleans")
        if not isinstance(extra, dict):
            raise ValueError("'extra_params' must be a table")
        return cls(int(fps), int(step), dict(fields), dict(extra))

    def frames(self, seconds: float) -> int:
        """The model's frame count for ``seconds``: ``frame_step * k + 1``, at least as long."""
        return self.frame_step * max(1, math.ceil(seconds * self.fps / self.frame_step)) + 1


def form(submission: Submission, served: ServedModel) -> dict[str, FilePart]:
    """The create form for ``submission``, each field a multipart part."""
    request = submission.request
    values: dict[str, Any] = {
        wire.MODEL: submission.model,
        wire.PROMPT: request.prompt,
        wire.SECONDS: str(request.duration_s),
        wire.SIZE: submission.size,
        wire.NUM_FRAMES: served.frames(request.duration_s),
        wire.FPS: served.fps,
    }
    seed = submission.optional("seed")  # kinema's option names, not the wire's
    if seed is not None:
        values[wire.SEED] = seed
    negative = submission.optional("negative_prompt")
    if negative:
        values[wire.NEGATIVE_PROMPT] = negative
    if request.generate_audio:
        values[wire.GENERATE_SOUND] = True
    values |= served.fields
    if served.extra_params:
        values[wire.EXTRA_PARAMS] = json.dumps(served.extra_params, separators=(",", ":"))
    parts: dict[str, FilePart] = {name: (None, _text(v), None) for name, v in values.items()}
    if submission.image is not None:
        picture = fitted(submission.image, submission.width, submission.height)
        parts[wire.IMAGE] = ("input.png", picture, "image/png")
    return parts


def fitted(image: Image, width: int, height: int) -> bytes:
    """``image`` covering ``width`` x ``height`` (centre crop), as PNG bytes."""
    with PILImage.open(io.BytesIO(image.data)) as opened:
        picture = ImageOps.fit(opened.convert("RGB"), (width, height), PILImage.Resampling.LANCZOS)
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    return buffer.getvalue()


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
