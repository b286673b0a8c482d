"""Google's Interactions API for video (Gemini Omni), as ``google-genai`` 3.x sends it.

Since 2026-10-22 the Gemini API makes video with Gemini Omni through the Interactions
API (``client.interactions`` in google-genai 3.x and @google/genai 3.x). Wire facts,
checked against the 3.6.1 SDK sources; every path answers under ``/v1/`` (3.x's default)
and ``/v1beta/``, with the caller's key in ``x-goog-api-key`` (or ``?key=``, or a bearer):

- ``POST /v1/interactions`` ``{"model", "background": true, "input", "response_format":
  {"type": "video", "aspect_ratio", "resolution", "duration", "delivery", "gcs_uri"},
  "generation_config": {"seed", "video_config": {"task"}}, "previous_interaction_id",
  "webhook_config": {"uris", "user_metadata"}, "labels", "store", "stream"}``; answered
  200 with the interaction. ``input`` is a string, the flat list of content items the JS
  SDK sends (``{"type": "text" | "image" | "video", ...}``), or the ``user_input`` turns
  the Python SDK wraps them in. Images come inline (``data`` + ``mime_type``) or as an
  http(s) ``uri``; a video inline, or by the ``uri`` of a video this server made.
- ``GET /v1/interactions/{id}`` (``stream=false``) reads it; status ``queued``,
  ``in_progress``, then ``completed``, ``failed``, ``cancelled`` or ``incomplete`` (a
  video removed after retention). A completed interaction's ``steps`` end with a
  ``model_output`` step whose content is the video, ``{"type": "video", "mime_type":
  "video/mp4", "data": <base64>}`` (``delivery: inline``, the default) or ``"uri"`` (a
  signed link, ``delivery: uri``): the SDKs derive ``output_video`` from it.
- ``GET ...?stream=true`` (and a create with ``"stream": true``) answers server-sent
  events, ``data: {"event_type", "event_id", ...}``: ``interaction.created``,
  ``interaction.status_update`` on each change, on success ``step.start`` /
  ``step.delta`` (the video) / ``step.stop``, an ``error`` event on failure, then
  ``interaction.completed`` with the interaction and ``data: [DONE]``. ``last_event_id``
  (or ``Last-Event-ID``) resumes after the event it names. ``include_input=true`` (on a
  read, not a stream) echoes the create's ``input`` back as it was sent, each inline image
  or video filled in from the copy the interaction keeps (an edited video uploaded inline
  is kept as its picture only, and echoed without ``data``; an ``incomplete`` one's inputs
  are gone, echoed without ``data`` too).
- ``POST .../{id}/cancel`` (what both SDKs send; ``{id}:cancel`` too) answers the
  interaction; ``DELETE .../{id}`` cancels an unfinished one, removes it and its video,
  and answers ``{}``.
- Errors: ``{"error": {"code": "<http status>", "message", "status": <google.rpc
  name>}}``; ``code`` is a string, as the SDKs' error model types it. An interaction of
  another key is a 404.

Tasks (``generation_config.video_config.task``), each onto kinema's own jobs:
``text_to_video`` (text only), ``image_to_video`` (the first frame), ``reference_to_video``
(every image a reference, up to the model's limit), ``extend`` (the video of
``previous_interaction_id``, or a video in ``input``, continued by ``duration``),
``edit`` (a video re-filmed as the prompt says: of ``previous_interaction_id`` or one in
``input``). Without a task: ``previous_interaction_id`` refines that video (a remix with
the new prompt; an ``edit`` of a 3-15 s source), a video in ``input`` is edited, several
images are references, one image is the first frame, text alone is text-to-video.
``upscale`` is a 400 that says so, as are output types other than video, tools, agents
and ``gcs_uri`` outside this server's storage. ``background: false`` answers the create
once the interaction has ended, as Google's API does (the video in the answer), holding
the request for at most ``KINEMA_SYNC_WAIT_S``; an interaction still running then is
answered as it stands (``queued`` or ``in_progress``: poll it), since every interaction is
a durable job. ``background: true``, or no ``background``, answers at once. ``store`` is
accepted and ignored: interactions are kept until deleted or expired.

Webhooks: ``webhook_config.uris`` (one URI) gets a signed webhook (Standard Webhooks)
when the interaction ends, kinema's event whose ``data`` is ``{"event_type":
"interaction.completed" | "interaction.failed" | "interaction.cancelled", "interaction":
{...}, "user_metadata": {...}}`` (the video as a ``uri``). ``labels`` are echoed in every
answer. Every answer about an interaction created with a retired id
(``gemini-omni-flash-preview``), its polls included, says which model serves it in the
``X-Kinema-Model-Alias`` header.

The package, one concept a module: ``bodies`` (the request and answer models, as pydantic
reads them and OpenAPI shows them), ``inputs`` (``input``'s content items and
``response_format``'s video entry, read from the wire), ``creation`` (a create translated
into kinema's ``Creation``: the task, the media placed, the refusals), ``answers`` (the
wait of ``background: false``, the event stream and ``include_input``) and ``routes`` (the
``Interactions`` dialect: its routes, polls and errors).
"""

from kinema.api.dialects.interactions.routes import ERROR_SCHEMA, Interactions

__all__ = ["ERROR_SCHEMA", "Interactions"]
