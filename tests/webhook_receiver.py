"""A webhook receiver on loopback that answers as a test scripts it and checks signatures."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from openai import OpenAI

# The receiver checks signatures as a client of kinema would, with the OpenAI SDK's
# Standard Webhooks verifier, not with kinema's own code: a signing bug that kinema's
# verify shared would pass its own check.
_VERIFIER = OpenAI(api_key="unused", base_url="http://127.0.0.1:9").webhooks


@dataclass(frozen=True)
class Delivery:
    headers: dict[str, str]  # lower-case names
    body: bytes
    received_at: float  # unix seconds

    def verified(self, secret: str) -> dict[str, Any]:
        """The event, once its Standard Webhooks signature checks out against ``secret``
        (the OpenAI SDK's ``webhooks.verify_signature``; its tolerance is five minutes)."""
        _VERIFIER.verify_signature(self.body, self.headers, secret=secret)
        event: dict[str, Any] = json.loads(self.body)
        return event


class Receiver:
    """Answers the n-th delivery with ``answers[n]`` (after ``delays_s[n]`` seconds), then 200.

    ``Receiver(failures=2)`` answers 500 twice, then 200; every delivery is recorded.
    """

    def __init__(
        self,
        failures: int = 0,
        status: int = 500,
        *,
        answers: Sequence[int] | None = None,
        delays_s: Sequence[float] = (),
    ) -> None:
        self.answers = list(answers) if answers is not None else [status] * failures
        self.delays_s = list(delays_s)
        self.deliveries: list[Delivery] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver._lock:
                    index = len(receiver.deliveries)
                    receiver.deliveries.append(Delivery(headers, body, time.time()))
                if index < len(receiver.delays_s):
                    time.sleep(receiver.delays_s[index])
                answer = receiver.answers[index] if index < len(receiver.answers) else 200
                try:
                    self.send_response(answer)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:  # the sender gave up waiting (a timeout test)
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/hook"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def wait_for(self, count: int, timeout_s: float = 60) -> list[Delivery]:
        deadline = time.monotonic() + timeout_s
        while len(self.deliveries) < count:
            assert time.monotonic() < deadline, f"only {len(self.deliveries)} deliveries"
            time.sleep(0.05)
        return list(self.deliveries)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
