"""Links in responses and webhooks come from the configured public base URL or from the
request that created the job: never from another request's Host or unvetted
X-Forwarded-* headers."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from tests.hardening_support import Receiver, assert_envelope, quick_settings
from tests.support import LiveServer, live_server


def _wait_done(client: httpx.Client, generation_id: str, **kwargs: Any) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        response = client.get(
            "/v2/video/generations", params={"generation_id": generation_id}, **kwargs
        )
        body = response.json()
        if body["status"] not in ("queued", "generating"):
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.05)


def _create(server: LiveServer, key: str, **extra: Any) -> dict[str, Any]:
    headers = extra.pop("headers", {})
    with server.client(key) as client:
        response = client.post(
            "/v2/video/generations",
            json={"model": "quick", "prompt": "grey", **extra},
            headers=headers,
        )
    assert response.status_code == 200, response.text
    return response.json()


def test_a_forged_host_on_one_keys_poll_leaves_other_keys_webhook_links_alone(tmp_path: Path):
    receiver = Receiver()
    try:
        with live_server(quick_settings(tmp_path, frame_s=0.1)) as server:
            mallory = server.new_key("mallory")
            own = _create(server, mallory)
            alice = _create(server, server.api_key, callback_url=receiver.url)
            with server.client(mallory) as client:
                deadline = time.monotonic() + 60
                while not receiver.deliveries:  # Mallory polls with a forged Host meanwhile
                    assert time.monotonic() < deadline, "no webhook arrived"
                    forged = client.get(
                        "/v2/video/generations",
                        params={"generation_id": own["id"]},
                        headers={"Host": "evil.example"},
                    ).json()
                    time.sleep(0.02)
            [event] = receiver.wait_for(1)
            assert event["data"]["id"] == alice["id"]
            url = event["data"]["video"]["url"]
            assert url.startswith(server.url + "/files/"), url
            assert httpx.get(url).status_code == 200
            # Mallory's own links are as her job was made, not as her poll claims.
            assert forged["status"] == "completed"
            assert forged["video"]["url"].startswith(server.url + "/files/"), forged
    finally:
        receiver.close()


def test_gemini_operation_uris_follow_the_creating_request_not_a_later_poll(tmp_path: Path):
    with live_server(quick_settings(tmp_path)) as server:
        headers = {"x-goog-api-key": server.api_key}
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
            created = client.post(
                "/v1beta/models/quick:predictLongRunning",
                json={"instances": [{"prompt": "grey"}]},
            )
            assert created.status_code == 200, created.text
            name = created.json()["name"]
            deadline = time.monotonic() + 60
            while not (operation := client.get(f"/v1beta/{name}").json())["done"]:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            forged = client.get(f"/v1beta/{name}", headers={"Host": "evil.example:9"}).json()
        for body in (operation, forged):
            [sample] = body["response"]["generateVideoResponse"]["generatedSamples"]
            assert sample["video"]["uri"].startswith(server.url + "/v1beta/files/"), body


def test_hosts_outside_the_trusted_list_get_400_in_the_dialects_envelope(tmp_path: Path):
    settings = quick_settings(tmp_path, trusted_hosts=["127.0.0.1", "*.videos.example"])
    with live_server(settings) as server, server.client() as client:
        evil = {"Host": "evil.example"}
        assert_envelope("openai", client.get("/v1/videos", headers=evil), 400)
        operation = client.get("/v1beta/models/quick/operations/x", headers=evil)
        assert_envelope("gemini", operation, 400)
        refused = client.post(
            "/v2/video/generations", json={"model": "quick", "prompt": "p"}, headers=evil
        )
        body = assert_envelope("aimlapi", refused, 400)
        assert "evil.example" in str(body)
        assert server.runtime.store.list(server.runtime.keys.list()[0].id) == []
        # Health probes by address pass; so do trusted names, with and without a port,
        # and a wildcard's subdomains.
        assert client.get("/healthz", headers={"Host": "10.1.2.3:8000"}).status_code == 200
        assert client.get("/v1/videos").status_code == 200
        ok = client.get("/v1/videos", headers={"Host": "eu.videos.example:8443"})
        assert ok.status_code == 200, ok.text


def test_a_host_header_that_is_no_host_name_is_refused(tmp_path: Path):
    with live_server(quick_settings(tmp_path)) as server, server.client() as client:
        response = client.get("/v1/videos", headers={"Host": "evil.example/x?y=1"})
        assert_envelope("openai", response, 400)


def test_forwarded_headers_from_an_untrusted_peer_do_not_change_links(tmp_path: Path):
    with live_server(quick_settings(tmp_path)) as server:
        forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"}
        created = _create(server, server.api_key, headers=forwarded)
        with server.client() as client:
            done = _wait_done(client, created["id"], headers=forwarded)
        assert done["video"]["url"].startswith(server.url + "/files/"), done


def test_forwarded_headers_from_a_trusted_proxy_make_the_links(tmp_path: Path):
    with live_server(quick_settings(tmp_path, trusted_proxies=["127.0.0.0/8"])) as server:
        forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "videos.example.com"}
        created = _create(server, server.api_key, headers=forwarded)
        with server.client() as client:
            done = _wait_done(client, created["id"])
        assert done["video"]["url"].startswith("https://videos.example.com/files/"), done


def test_public_base_url_wins_over_every_request(tmp_path: Path):
    settings = quick_settings(tmp_path, public_base_url="https://cdn.example/kinema/")
    with live_server(settings) as server:
        created = _create(server, server.api_key, headers={"Host": "other.example"})
        with server.client() as client:
            done = _wait_done(client, created["id"], headers={"Host": "third.example"})
        assert done["video"]["url"].startswith("https://cdn.example/kinema/files/"), done
