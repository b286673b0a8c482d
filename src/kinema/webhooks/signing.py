"""Standard Webhooks signatures (the scheme OpenAI and Replicate use).

Each delivery carries ``webhook-id`` (the same on every retry), ``webhook-timestamp``
(unix seconds) and ``webhook-signature: v1,<base64 HMAC-SHA256>`` over
``"{id}.{timestamp}.{body}"``, keyed with the base64-decoded part of a ``whsec_`` secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from kinema.keys import SECRET_PREFIX

TOLERANCE_S = 5 * 60


class SignatureError(Exception):
    pass


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value for one delivery."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secret: str, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, message_id, timestamp, body),
        "content-type": "application/json",
    }


def verify(secret: str, received: dict[str, str], body: bytes, *, now: float) -> None:
    """Check a delivery as a receiver should; raise ``SignatureError`` if it fails."""
    message_id = received.get("webhook-id", "")
    timestamp = received.get("webhook-timestamp", "")
    if not message_id or not timestamp.isdigit():
        raise SignatureError("missing webhook-id or webhook-timestamp")
    if abs(now - int(timestamp)) > TOLERANCE_S:
        raise SignatureError("timestamp outside the tolerance window")
    expected = sign(secret, message_id, int(timestamp), body).removeprefix("v1,")
    offered = [
        part.removeprefix("v1,")
        for part in received.get("webhook-signature", "").split()
        if part.startswith("v1,")
    ]
    if not any(hmac.compare_digest(expected, candidate) for candidate in offered):
        raise SignatureError("no matching signature")
