"""``KINEMA_PUBLIC_BASE_URL``: the base of every link kinema hands out, whatever the request.

Behind a proxy the server's own address is not what clients reach; with the setting,
poll answers, file metadata and webhook bodies all link under the configured base, even
for a request that arrived with another ``Host``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.dialects import COMPLETED, DIALECTS, job_id_of, owner_of
from tests.support import LiveServer, live_server, make_settings, probe
from tests.webhook_receiver import Receiver

PUBLIC = "https://videos.example.test/kinema"
LINKING_DIALECTS = ["aimlapi", "gemini", "unified", "v1"]  # OpenAI's object has no link


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = make_settings(
        tmp_path_factory.mktemp("public"),
        public_base_url=PUBLIC + "/",  # a trailing slash is not doubled
        fetch_allow_hosts=["127.0.0.1"],
        webhook_poll_s=0.05,
    )
    with live_server(settings, workers=1) as live:
        yield live


@pytest.mark.parametrize("name", LINKING_DIALECTS)
def test_links_in_every_dialect_start_with_the_public_base_url(server: LiveServer, name: str):
    dialect = DIALECTS[name]
    with Receiver() as receiver, server.client() as client:
        wire_id = dialect.create(client, callback_url=receiver.url)
        done = dialect.wait(client, wire_id)
        assert dialect.state(done) == COMPLETED, done
        forged = client.get(dialect.poll_path(wire_id), headers={"Host": "elsewhere.test"})
        [delivery] = receiver.wait_for(1)
        url = dialect.video_url(done)
        assert url is not None and url.startswith(PUBLIC + "/") and "//" not in url[8:]
        # The proxy would forward the path under the base to this server.
        video = client.get(server.url + url.removeprefix(PUBLIC))
    assert video.status_code == 200 and probe(video.content).frames == 96
    assert dialect.video_url(forged.json()) is not None
    assert dialect.video_url(forged.json()).startswith(PUBLIC + "/")  # type: ignore[union-attr]
    event = delivery.verified(server.runtime.service.webhook_secret(owner_of(server)))
    hooked = dialect.video_url(event["data"])
    assert hooked is not None and hooked.startswith(PUBLIC + "/")


def test_gemini_file_metadata_links_under_the_public_base_url(server: LiveServer):
    dialect = DIALECTS["gemini"]
    with server.client() as client:
        name = dialect.create(client)
        dialect.wait(client, name)
        job_id = job_id_of(server, name)
        described = client.get(f"/v1beta/files/{job_id}")
    assert described.status_code == 200, described.text
    assert described.json()["downloadUri"] == (
        f"{PUBLIC}/v1beta/files/{job_id}:download?alt=media"
    )
