"""Property-based: generated requests never get a 5xx, and every error is in the
envelope of the dialect whose path it is under.

Bodies and parameters are drawn from each operation's own OpenAPI schema, mixed with
hostile values: digit strings ``int`` refuses, lone surrogates, huge numbers and
strings, booleans where numbers belong, empty strings and JSON nested far too deep.
The run is seeded (``derandomize``) and small enough for a loaded 2-core machine.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kinema.api.app import error_envelopes
from kinema.api.dialects import dialects
from kinema.api.mount import envelope_for
from tests.hardening_support import ERROR_SCHEMAS
from tests.support import LiveServer, live_server, make_settings

# Examples per operation; seeded, so every run sends the same requests. Creates and
# signed downloads, where client values reach parsing, get the most.
EXAMPLES = 15
EXAMPLES_RICH = 60

SERVED = error_envelopes(dialects())  # each with the path prefixes whose errors it renders

HOSTILE_STRINGS = st.sampled_from(  # the likeliest culprits first
    [
        "\u00b2",
        "\ud800",
        "8" * 5000,
        "",
        "\uff14",
        "true",
        "a\udfffb",
        "x" * 20_000,
        "\u0663",
        " ",
        "-" + "9" * 40,
        "\x00",
        "%2f%00",
        "data:image/png;base64,",
        "task-unified-\u00b2-abcdefgh",
        "\u00e9" * 64,  # non-ASCII where hex is expected (a link's signature)
        "\U0001f3ac",
    ]
)
HOSTILE_NUMBERS = st.sampled_from([True, False, -1, 0, 2**63, -(2**63) - 1, 10**30, 1e308, -0.0])


def nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


HOSTILE = st.one_of(
    HOSTILE_STRINGS,
    HOSTILE_STRINGS,
    HOSTILE_NUMBERS,
    st.none(),
    st.sampled_from([nested(50), {"a": {"b": {"c": [None]}}}, [1, "2", None]]),
)


def from_schema(schema: dict[str, Any], components: dict[str, Any], depth: int = 0) -> Any:
    """A strategy for values of a JSON schema, one time in four a hostile value instead."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        return from_schema(components[name], components, depth)
    options = schema.get("anyOf") or schema.get("oneOf")
    if options:
        # an optional field's examples sit beside its anyOf (a link's expiry, say): valid
        # values, so that a hostile neighbour gets past them to the code behind
        examples = [e for e in schema.get("examples", []) if not isinstance(e, dict)]
        alternatives = [from_schema(s, components, depth + 1) for s in options]
        plain = st.one_of([*alternatives, *([st.sampled_from(examples)] * 2 if examples else [])])
    elif "enum" in schema:
        plain = st.sampled_from(schema["enum"])
    else:
        plain = _typed(schema, components, depth)
    return st.one_of(plain, plain, plain, HOSTILE)


def _typed(schema: dict[str, Any], components: dict[str, Any], depth: int) -> Any:
    kind = schema.get("type")
    if isinstance(kind, list):
        return st.one_of([_typed({**schema, "type": k}, components, depth) for k in kind])
    examples = [e for e in schema.get("examples", []) if not isinstance(e, dict)]
    if kind == "string":
        text = st.text(max_size=30)
        return st.one_of(st.sampled_from(examples), text) if examples else text
    if kind == "integer":
        return st.integers(min_value=-(2**40), max_value=2**40)
    if kind == "number":
        return st.floats(allow_nan=False, allow_infinity=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array" and depth < 4:
        return st.lists(from_schema(schema.get("items", {}), components, depth + 1), max_size=3)
    if kind == "object" and depth < 4:
        properties = schema.get("properties", {})
        required = set(schema.get("required", ()))
        return st.fixed_dictionaries(
            {
                k: from_schema(v, components, depth + 1)
                for k, v in properties.items()
                if k in required
            },
            optional={
                k: from_schema(v, components, depth + 1)
                for k, v in properties.items()
                if k not in required
            },
        )
    return HOSTILE


def hostile_body(schema: dict[str, Any], components: dict[str, Any]) -> Any:
    """Objects of ``schema`` whose required properties are plausible (their examples when
    the schema has some, so a request gets past the model lookup) and whose optional
    properties, and sometimes an unknown one, are as often hostile as not."""
    if "$ref" in schema:
        return hostile_body(components[schema["$ref"].rsplit("/", 1)[1]], components)
    properties = schema.get("properties", {})
    required = set(schema.get("required", ()))

    def plausible(sub: dict[str, Any]) -> Any:
        if "$ref" in sub:
            sub = components[sub["$ref"].rsplit("/", 1)[1]]
        examples = [e for e in sub.get("examples", []) if not isinstance(e, dict)]
        return st.sampled_from(examples) if examples else from_schema(sub, components)

    return st.fixed_dictionaries(
        {k: plausible(v) for k, v in properties.items() if k in required},
        optional={
            **{
                k: st.one_of(from_schema(v, components), HOSTILE)
                for k, v in properties.items()
                if k not in required
            },
            "unknown_field": HOSTILE,
        },
    )


def encode(body: Any, deep: int) -> bytes:
    """``body`` as JSON (surrogates escaped, as a client may send them); with ``deep``,
    one field nested that many levels (built as text: Python cannot build it)."""
    raw = json.dumps(body, ensure_ascii=True).encode()
    if deep and isinstance(body, dict):
        head = raw[:-1] + (b", " if body else b"")
        raw = head + b'"deep": ' + b"[" * deep + b"]" * deep + b"}"
    return raw


def dialect_of(path: str) -> str:
    envelope = envelope_for(SERVED, path)
    if envelope is None:
        raise AssertionError(f"{path} is under no dialect")
    return envelope.name


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings_ = make_settings(tmp_path_factory.mktemp("fuzz"), key_cache_s=600)
    with live_server(settings_, workers=0) as live:
        yield live


@pytest.fixture(scope="module")
def document(server: LiveServer) -> dict[str, Any]:
    return dict(httpx.get(server.url + "/openapi.json", timeout=30).json())


def operations() -> list[tuple[str, str]]:
    """Every dialect operation of the OpenAPI document (as the app builds it)."""
    import tempfile
    from pathlib import Path

    from kinema.api.app import create_app
    from kinema.runtime import Runtime

    with tempfile.TemporaryDirectory() as directory:
        runtime = Runtime.build(make_settings(Path(directory)), workers=0)
        try:
            paths = create_app(runtime.settings, runtime=runtime).openapi()["paths"]
        finally:
            runtime.close()
    return [
        (method.upper(), path)
        for path, methods in paths.items()
        for method in methods
        if path != "/healthz" and not path.endswith("/events")
    ]


def check(response: httpx.Response, path: str) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:300])
    if response.status_code >= 400 and response.request.method != "HEAD":
        jsonschema.validate(response.json(), ERROR_SCHEMAS[dialect_of(path)])


@pytest.mark.parametrize(("method", "path"), operations())
def test_no_generated_request_gets_a_5xx(
    server: LiveServer, document: dict[str, Any], method: str, path: str
):
    operation = document["paths"][path][method.lower()]
    components = document.get("components", {}).get("schemas", {})
    parameters = [p for p in operation.get("parameters", []) if p["in"] in ("path", "query")]
    path_values = {
        p["name"]: st.one_of(from_schema(p.get("schema", {}), components), HOSTILE_STRINGS)
        for p in parameters
        if p["in"] == "path"
    }
    query_values = {
        p["name"]: st.one_of(from_schema(p.get("schema", {}), components), HOSTILE_STRINGS)
        for p in parameters
        if p["in"] == "query"
    }
    content = operation.get("requestBody", {}).get("content", {})
    body_schema = content.get("application/json", {}).get("schema")
    body = hostile_body(body_schema, components) if body_schema else st.none()
    auth = {"Authorization": f"Bearer {server.api_key}", "x-goog-api-key": server.api_key}
    rich = body_schema is not None or path.startswith("/files")

    @settings(
        max_examples=EXAMPLES_RICH if rich else EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        st.fixed_dictionaries(path_values),
        st.fixed_dictionaries(query_values),
        body,
        st.sampled_from([0, 0, 0, 0, 2_000, 100_000]),
        st.booleans(),
    )
    def run(paths: dict, query: dict, payload: Any, deep: int, signed: bool) -> None:
        url = path
        for name, value in paths.items():
            text = str(value).encode("utf-8", "surrogatepass")  # lone surrogates too
            url = url.replace("{" + name + "}", quote(text, safe="") or "x")
        params = {
            k: str(v).encode("utf-8", "surrogatepass") for k, v in query.items() if v is not None
        }
        if params:
            url += "?" + urlencode(params)
        headers = dict(auth) if signed or not path.startswith("/files") else {}
        if body_schema is not None:
            response = client.request(
                method,
                url,
                content=encode(payload, deep),
                headers={**headers, "Content-Type": "application/json"},
            )
        else:
            response = client.request(method, url, headers=headers)
        check(response, path)

    with httpx.Client(base_url=server.url, timeout=60) as client:
        run()
