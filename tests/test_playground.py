"""The playground page in a real browser: Debian's Chromium, headless, driven by Playwright.

Load the page, enter a key, submit a job with an image, watch the progress reach 100, see
the video element play the real MP4, cancel another job, reload and find the history. A
screenshot of each state is written to ``$KINEMA_SCREENSHOTS_DIR`` when set (that is how
docs/playground/ is made), else under the test's temporary directory.
"""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import sync_playwright

from kinema.types import JobStatus
from tests.fixture_engines import model_toml
from tests.support import LiveServer, live_server, make_settings

SAMPLE = Path(__file__).parents[1] / "src" / "kinema" / "assets" / "sample.jpg"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

CATALOG = (
    """
[engines.motion]
kind = "motion"
fps = 24

[engines.slow]
kind = "python"
class = "tests.fixture_engines:SlowEngine"
fps = 8
frame_s = 0.4

[models."studio/animate"]
dialect = "aimlapi"
engine = "motion"
description = "Animate a still"
inputs = "image"
durations = [2, 4]
default_duration = 2
aspect_ratios = ["16:9", "9:16"]
resolutions = ["720p"]
default_resolution = "720p"
audio = true
default_audio = false
options = ["duration", "aspect_ratio", "resolution", "generate_audio", "seed"]
"""
    + model_toml("slow-text", engine="slow", dialect="v1", durations=(8,))
    + """
[engines.quick]
kind = "python"
class = "tests.fixture_engines:SlowEngine"
fps = 4
frame_s = 0.01

[models."tasks/i2v"]
dialect = "unified"
engine = "quick"
description = "Unified task dialect"
inputs = "image"
durations = [1]
default_duration = 1
aspect_ratios = ["16:9"]
resolutions = ["720p"]
options = ["duration", "negative_prompt"]

[models."videos/any"]
dialects = ["openai"]
engine = "quick"
description = "OpenAI Videos dialect"
inputs = "any"
durations = [1]
default_duration = 1
aspect_ratios = ["16:9", "9:16"]
resolutions = ["720p"]
sizes = ["1280x720", "720x1280"]
options = ["duration", "aspect_ratio", "resolution", "size", "seed"]

[models."frames/first-last"]
dialect = "v1"
engine = "quick"
description = "First and last frame"
inputs = "first_last"
durations = [1]
default_duration = 1
aspect_ratios = ["16:9"]
resolutions = ["720p"]
options = ["duration"]
"""
)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(CATALOG)
    settings = make_settings(tmp_path, catalog_path=catalog, progress_interval_s=0.1)
    with live_server(settings, workers=2) as server:
        yield server


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("KINEMA_SCREENSHOTS_DIR") or tmp_path / "shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/test.sh installs Debian's chromium")
    with sync_playwright() as driver:
        launched = driver.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            launched.close()


def until(page, expression: str, timeout_s: float = 90) -> None:  # type: ignore[no-untyped-def]
    """Poll ``expression`` in the page until it is true. (Playwright's wait_for_function
    evaluates strings with eval, which the page's Content-Security-Policy forbids.)"""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"never true: {expression}")
        time.sleep(0.05)


def test_playground_generates_plays_cancels_and_remembers(
    live: LiveServer, browser, shots: Path, tmp_path: Path
):
    image = SAMPLE
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(90_000)
    outside: list[str] = []
    local = (live.url, "data:", "blob:")
    page.on("request", lambda r: None if r.url.startswith(local) else outside.append(r.url))

    # 1. The page loads with the catalog's models and no key.
    page.goto(live.url + "/")
    page.wait_for_selector("#model option[value='studio/animate']", state="attached")
    assert page.locator("#history-empty").inner_text() == "Enter a key to see its jobs."

    # 2. A key is entered; only the fields the model takes are shown.
    page.fill("#api-key", live.api_key)
    page.click("#save-key")
    page.wait_for_selector("#history-empty:has-text('No jobs yet')")
    page.select_option("#model", "studio/animate")
    assert page.locator("[data-field='image']").is_visible()
    assert page.locator("[data-field='seed']").is_visible()
    assert not page.locator("[data-field='negative_prompt']").is_visible()
    assert not page.locator("[data-field='last_image']").is_visible()

    # 3. A create the API refuses shows the API's own words.
    page.fill("#prompt", "Slow push in towards the sunset, gentle ripples on the water")
    page.click("#submit")
    page.wait_for_selector("#error:not([hidden])")
    assert "HTTP 400" in page.locator("#error").inner_text()
    assert "image_url" in page.locator("#error").inner_text()
    page.screenshot(path=str(shots / "1-error.png"))

    # 4. With an image it is accepted and followed live to 100%.
    page.set_input_files("#image-file", str(image))
    page.wait_for_selector("#image-drop img:not([hidden])")
    page.click("#submit")
    page.wait_for_selector("#job:not([hidden])")
    until(page, "document.querySelector('#progress').value > 0")
    page.screenshot(path=str(shots / "2-progress.png"))
    until(page, "document.querySelector('#progress').value === 100")
    assert page.locator("#phase").inner_text() == "succeeded"
    assert page.locator("#percent").inner_text() == "100%"

    # 5. The video element plays the real MP4: it has data and its clock advances.
    page.wait_for_selector("#result:not([hidden])")
    until(page, "document.querySelector('#video').readyState >= 2")
    page.evaluate("document.querySelector('#video').muted = true")
    page.evaluate("document.querySelector('#video').play()")
    until(page, "document.querySelector('#video').currentTime > 0.3")
    facts = page.evaluate(
        "(() => { const v = document.querySelector('#video');"
        " return {w: v.videoWidth, h: v.videoHeight, d: v.duration, err: v.error}; })()"
    )
    assert (facts["w"], facts["h"]) == (1280, 720)
    assert facts["d"] == pytest.approx(2.0, abs=0.1)
    assert facts["err"] is None
    download = page.get_attribute("#download", "href")
    assert download is not None and "/files/" in download
    assert httpx.get(download).headers["content-type"] == "video/mp4"
    page.wait_for_selector("#thumbnail:not([hidden])")
    assert '"status": "succeeded"' in (page.locator("#job-json").text_content() or "")
    page.screenshot(path=str(shots / "3-finished.png"))

    # 6. Another job is cancelled while it runs.
    page.select_option("#model", "slow-text")
    assert not page.locator("[data-field='image']").is_visible()
    page.fill("#prompt", "a long one")
    page.click("#submit")
    until(page,
        "document.querySelector('#phase').dataset.status === 'in_progress'"
        " && document.querySelector('#progress').value > 0"
    )
    running_id = page.locator("#job-id").inner_text()
    page.click("#cancel")
    until(page, "document.querySelector('#phase').dataset.status === 'cancelled'")
    assert live.runtime.store.get_any(running_id).status is JobStatus.CANCELLED
    page.screenshot(path=str(shots / "4-cancelled.png"))

    # 7. After a reload the key and the history are still there.
    page.reload()
    page.wait_for_selector("#history li[data-status='cancelled']")
    assert page.input_value("#api-key") == live.api_key
    items = page.locator("#history li")
    assert items.count() == 2
    page.wait_for_selector("#history li[data-status='succeeded'] img.thumb[src^='blob:']")
    assert "slow-text" in items.nth(0).inner_text()
    assert "studio/animate" in items.nth(1).inner_text()
    page.screenshot(path=str(shots / "5-history.png"), full_page=True)

    # 8. At phone width nothing runs off the side.
    page.set_viewport_size({"width": 390, "height": 844})
    page.locator("#history li[data-status='succeeded']").click()
    page.wait_for_selector("#result:not([hidden])")
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    page.screenshot(path=str(shots / "6-phone.png"), full_page=True)

    assert outside == [], f"the page fetched from elsewhere: {outside}"
    context.close()


def test_playground_creates_in_each_dialect_a_model_speaks(
    live: LiveServer, browser, tmp_path: Path
):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(live.url + "/playground")
    page.fill("#api-key", live.api_key)
    page.click("#save-key")
    page.wait_for_selector("#model option[value='tasks/i2v']", state="attached")

    def generate(model: str) -> str:
        before = page.locator("#job-id").text_content() or ""
        page.select_option("#model", model)
        page.fill("#prompt", f"made through {model}")
        page.click("#submit")
        until(page, f"document.querySelector('#job-id').textContent !== '{before}'", 60)
        until(page, "document.querySelector('#phase').dataset.status === 'succeeded'", 60)
        return page.locator("#job-id").inner_text()

    # The unified task id carries 40 bits of the job id; the page finds the rest.
    page.select_option("#model", "tasks/i2v")
    page.set_input_files("#image-file", str(SAMPLE))
    assert page.locator("[data-field='negative_prompt']").is_visible()
    page.fill("#negative-prompt", "blur")
    unified = live.runtime.store.get_any(generate("tasks/i2v"))
    assert unified.dialect == "unified" and unified.request.negative_prompt == "blur"

    # OpenAI's dialect takes a pixel size instead of resolution and aspect ratio.
    page.select_option("#model", "videos/any")
    assert page.locator("[data-field='size']").is_visible()
    assert not page.locator("[data-field='aspect_ratio']").is_visible()
    page.select_option("#size", "720x1280")
    openai = live.runtime.store.get_any(generate("videos/any"))
    assert openai.dialect == "openai" and openai.request.aspect_ratio == "9:16"
    assert openai.request.image is not None  # the chosen image went along

    # First and last frames through /v1/video/generations.
    page.select_option("#model", "frames/first-last")
    assert page.locator("[data-field='last_image']").is_visible()
    page.set_input_files("#last-image-file", str(SAMPLE))
    both = live.runtime.store.get_any(generate("frames/first-last"))
    assert both.dialect == "v1" and both.request.last_image is not None
    context.close()


def test_playground_serves_its_files_and_catalog(live: LiveServer):
    with httpx.Client(base_url=live.url) as client:
        page = client.get("/playground")
        assert page.status_code == 200 and "kinema playground" in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert client.get("/playground/app.js").headers["content-type"].startswith(
            "text/javascript"
        )
        assert client.get("/playground/nothing.js").status_code == 404
        models = client.get("/playground/models.json").json()["models"]
    animate = next(m for m in models if m["id"] == "studio/animate")
    assert animate["fields"] == [
        "aspect_ratio", "duration", "generate_audio", "image", "prompt", "resolution",
        "sample_count", "seed",
    ]
    assert animate["image_required"] is True and animate["durations"] == [2, 4]


@pytest.fixture
def picture_host() -> Iterator[str]:
    """A plain HTTP server on loopback holding the sample picture, as a web page would."""
    import functools
    import http.server
    import threading

    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(SAMPLE.parent)
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{SAMPLE.name}"
    finally:
        server.shutdown()
        server.server_close()


def test_playground_takes_a_dropped_picture_and_a_picture_url(
    tmp_path: Path, browser, picture_host: str
):
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(CATALOG)
    settings = make_settings(
        tmp_path, catalog_path=catalog, progress_interval_s=0.1, fetch_allow_hosts=["127.0.0.1"]
    )
    with live_server(settings, workers=2) as live:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.goto(live.url + "/playground")
        page.fill("#api-key", live.api_key)
        page.click("#save-key")
        page.wait_for_selector("#model option[value='studio/animate']", state="attached")
        page.select_option("#model", "studio/animate")

        def generate(prompt: str) -> str:
            before = page.locator("#job-id").text_content() or ""
            page.fill("#prompt", prompt)
            page.click("#submit")
            until(page, f"document.querySelector('#job-id').textContent !== '{before}'", 60)
            until(page, "document.querySelector('#phase').dataset.status === 'succeeded'", 60)
            return page.locator("#job-id").inner_text()

        # 1. A file dropped on the picture's zone, as a file manager drops it.
        page.evaluate(
            """(b64) => {
                const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
                const file = new File([bytes], "sample.jpg", {type: "image/jpeg"});
                const data = new DataTransfer();
                data.items.add(file);
                const zone = document.querySelector("#image-drop");
                zone.dispatchEvent(new DragEvent("dragover", {dataTransfer: data, bubbles: true,
                                                              cancelable: true}));
                zone.dispatchEvent(new DragEvent("drop", {dataTransfer: data, bubbles: true,
                                                          cancelable: true}));
            }""",
            base64.b64encode(SAMPLE.read_bytes()).decode(),
        )
        page.wait_for_selector("#image-drop img:not([hidden])")
        dropped = live.runtime.store.get_any(generate("the dropped picture"))

        # 2. A picture's URL pasted into the field instead: the server fetches it.
        page.fill("#image-url", picture_host)
        fetched = live.runtime.store.get_any(generate("the picture from its URL"))
        context.close()
        storage = live.runtime.storage
        kept = [storage.get_bytes(job.request.image or "") for job in (dropped, fetched)]

    for job in (dropped, fetched):
        assert job.status is JobStatus.SUCCEEDED
    assert kept == [SAMPLE.read_bytes()] * 2  # each job kept the very picture it was given


RECOMMENDED_CATALOG = """
[engines.motion]
kind = "motion"
fps = 24

[models."aaa/listed-first"]
dialect = "aimlapi"
engine = "motion"
inputs = "image"
durations = [2]
default_duration = 2
aspect_ratios = ["16:9"]
resolutions = ["720p"]
options = ["duration"]

[models."google/veo-3.1-i2v-fast"]
dialect = "aimlapi"
engine = "motion"
description = "Veo 3.1 Fast image-to-video"
inputs = "image"
durations = [2, 4]
default_duration = 4
aspect_ratios = ["16:9", "9:16"]
resolutions = ["720p"]
default_resolution = "720p"
audio = true
default_audio = false
options = ["duration", "aspect_ratio", "resolution", "generate_audio"]
"""


def portrait_with_a_face(path: Path) -> Path:
    """A 9:16 picture with a face near its top: the astronaut scikit-image ships, above a
    plain floor, as a phone photo of someone standing would be."""
    from PIL import Image

    skimage_data = pytest.importorskip("skimage.data")
    canvas = Image.new("RGB", (720, 1280), (118, 110, 102))
    canvas.paste(Image.fromarray(skimage_data.astronaut()).resize((720, 720)), (0, 0))
    canvas.save(path, quality=92)
    return path


def test_playground_recommends_remembers_frames_faces_and_copies_its_request(
    tmp_path: Path, browser
):
    from PIL import Image

    from kinema.engines.motion.faces import find_faces

    catalog = tmp_path / "catalog.toml"
    catalog.write_text(RECOMMENDED_CATALOG)
    settings = make_settings(tmp_path, catalog_path=catalog, progress_interval_s=0.1)
    with live_server(settings, workers=1) as live:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(90_000)

        # 1. The recommended model comes first and is chosen, not the alphabetical first.
        page.goto(live.url + "/")
        page.wait_for_selector("#model option", state="attached")
        first = page.locator("#model option").first
        assert first.get_attribute("value") == "google/veo-3.1-i2v-fast"
        assert "(recommended)" in first.inner_text()
        assert page.input_value("#model") == "google/veo-3.1-i2v-fast"
        assert page.get_attribute("link[rel='icon']", "href") == "/favicon.ico"

        # 2. The form survives a reload.
        page.fill("#api-key", live.api_key)
        page.click("#save-key")
        page.fill("#prompt", "She looks up and smiles")
        page.select_option("#aspect-ratio", "9:16")
        page.select_option("#duration", "2")
        page.set_input_files("#image-file", str(portrait_with_a_face(tmp_path / "p.jpg")))
        page.wait_for_selector("#image-drop img:not([hidden])")
        page.reload()
        page.wait_for_selector("#model option", state="attached")
        assert page.input_value("#prompt") == "She looks up and smiles"
        assert page.input_value("#aspect-ratio") == "9:16"
        assert page.input_value("#duration") == "2"
        assert page.locator("#image-drop img").get_attribute("src", timeout=5000) or ""

        # 3. A portrait video's history tile shows the face, not the middle of the frame.
        page.click("#submit")
        until(page, "document.querySelector('#phase').dataset.status === 'succeeded'")
        job_id = page.locator("#job-id").inner_text()
        page.click("#refresh")
        tile = f"#history li[data-id='{job_id}'] img.thumb"
        framed = f'document.querySelector("{tile}")'
        until(page, f"!!{framed} && {framed}.style.objectPosition !== ''")
        shown = page.evaluate(
            f"""(() => {{ const i = document.querySelector("{tile}");
                return {{w: i.clientWidth, h: i.clientHeight, nw: i.naturalWidth,
                         nh: i.naturalHeight, at: getComputedStyle(i).objectPosition}}; }})()"""
        )
        thumbnail = httpx.get(
            f"{live.url}/v1/videos/video_{job_id}/content", params={"variant": "thumbnail"},
            headers={"Authorization": f"Bearer {live.api_key}"},
        ).content  # fmt: skip
        picture = Image.open(io.BytesIO(thumbnail))
        [face, *_] = find_faces(picture)
        face_y = face.box[1] + face.box[3] / 2  # in the thumbnail's pixels
        assert (shown["nw"], shown["nh"]) == picture.size
        assert shown["nh"] * 9 == shown["nw"] * 16  # a portrait video's thumbnail
        scale = shown["w"] / shown["nw"]
        spare = shown["nh"] * scale - shown["h"]

        def visible(percent: float) -> bool:
            top = spare * percent / 100
            return top <= face_y * scale <= top + shown["h"]

        assert not visible(50.0)  # a centred crop would show the chest
        assert visible(float(shown["at"].split()[1].rstrip("%"))), shown

        # 4. The request it sent, copied as Python and as curl, makes the same job again.
        page.click("#copy-python")
        python = page.locator("#sent-code").inner_text()
        page.click("#copy-curl")
        curl = page.locator("#sent-code").inner_text()
        context.close()
        env = {**os.environ, "KINEMA_API_KEY": live.api_key}
        (tmp_path / "copied.py").write_text(python)
        (tmp_path / "copied.sh").write_text(curl)
        ran_python = subprocess.run(
            [sys.executable, str(tmp_path / "copied.py")], env=env, capture_output=True,
            text=True, timeout=60,
        )  # fmt: skip
        ran_curl = subprocess.run(
            ["bash", str(tmp_path / "copied.sh")], env=env, capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
        jobs = live.runtime.store.list(next(
            k.id for k in live.runtime.keys.list() if live.api_key.startswith(k.prefix)
        ))  # fmt: skip
        favicon = httpx.get(f"{live.url}/favicon.ico")

    assert ran_python.returncode == 0 and ran_python.stdout.startswith("200 "), ran_python
    assert ran_curl.returncode == 0 and '"status":"queued"' in ran_curl.stdout.replace(" ", "")
    requests = [(j.model, j.request.prompt, j.request.aspect_ratio, j.request.duration_s,
                 live.runtime.storage.get_bytes(j.request.image or "")) for j in jobs]  # fmt: skip
    assert len(requests) == 3 and len(set(requests)) == 1, [r[:4] for r in requests]
    assert favicon.status_code == 200 and favicon.headers["content-type"] == "image/x-icon"
    assert Image.open(io.BytesIO(favicon.content)).format == "ICO"
