"""Time the motion engine against the ffmpeg command line on the same job.

The job: an 8 s, 1080p, 16:9, 24 fps clip (192 frames) of a push-in on the shipped sample
picture, H.264 (libx264, same preset and CRF) plus an AAC track, in an MP4 with
``+faststart``. kinema renders its eased, sub-pixel push-in and a spoken soundtrack;
ffmpeg zooms the same picture (two usual recipes: a per-frame ``scale`` + ``crop``, and
``zoompan``) with a brown-noise track from ``anoisesrc``. kinema runs in this process
with its engine set up, as in a worker; ffmpeg runs as a child process. The runs
alternate, so a busy machine slows both alike, and the medians are reported.

A second kinema job runs every effect of the engine: a portrait photograph (scikit-image's
astronaut, when scikit-image is installed) with a spoken line, so that the face is found,
framed, cut out over its filled-in background, and talks and blinks. After the rounds,
``--effects`` times each effect alone on that job (frames rendered, not encoded; CPU time
per frame, and the one-off preparation).

    python bench/motion_vs_ffmpeg.py [--rounds 5] [--keep DIR] [--effects]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
from PIL import Image

from kinema.engines.motion.engine import MotionEngine
from kinema.media.encode import encode_mp4
from kinema.types import EngineRequest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "src" / "kinema" / "assets" / "sample.jpg"
WIDTH, HEIGHT, FPS, SECONDS = 1920, 1080, 24, 8
FRAMES = FPS * SECONDS
PRESET, CRF = "veryfast", 20
PROMPT = "Slow push-in on the lake at sunset. A woman says softly: 'It is so quiet here.'"
PORTRAIT_PROMPT = (
    "The camera slowly pushes in as she smiles and says: "
    "'Welcome to kinema. Everything you see runs on this machine.'"
)
ZOOM = f"(1+0.12*(3*pow({{t}}/{FRAMES - 1},2)-2*pow({{t}}/{FRAMES - 1},3)))"  # eased, as kinema

FFMPEG_FILTERS = {
    "ffmpeg scale+crop": (
        f"scale=w='trunc({WIDTH}*{ZOOM.format(t='n')}/2)*2'"
        f":h='trunc({HEIGHT}*{ZOOM.format(t='n')}/2)*2':eval=frame,"
        f"crop={WIDTH}:{HEIGHT},format=yuv420p"
    ),
    "ffmpeg zoompan": (
        f"scale={WIDTH}:{HEIGHT},zoompan=z='{ZOOM.format(t='on')}'"
        f":x='iw/2-iw/zoom/2':y='ih/2-ih/zoom/2':d=1:s={WIDTH}x{HEIGHT}:fps={FPS},"
        "format=yuv420p"
    ),
}


def ffmpeg_command(video_filter: str, output: Path) -> list[str]:
    return [
        "ffmpeg", "-nostdin", "-v", "error", "-y",
        "-loop", "1", "-framerate", str(FPS), "-i", str(SAMPLE),
        "-f", "lavfi", "-i", "anoisesrc=color=brown:amplitude=0.03:sample_rate=48000",
        "-vf", video_filter, "-map", "0:v", "-map", "1:a", "-t", str(SECONDS),
        "-c:v", "libx264", "-preset", PRESET, "-crf", str(CRF), "-r", str(FPS),
        "-c:a", "aac", "-b:a", "160k", "-ac", "2", "-ar", "48000",
        "-movflags", "+faststart", str(output),
    ]  # fmt: skip


def ensure_ffmpeg() -> str:
    found = shutil.which("ffmpeg")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("ffmpeg is missing: installing it with apt-get", file=sys.stderr)
        subprocess.run(["apt-get", "install", "-y", "-q", "ffmpeg"], check=True)
        found = shutil.which("ffmpeg")
        if found:
            return found
    sys.exit("ffmpeg is not installed; install it (e.g. apt-get install -y ffmpeg) and rerun")


def portrait() -> Image.Image | None:
    try:
        from skimage import data
    except ImportError:
        return None
    return Image.fromarray(data.astronaut())


def kinema_request(picture: Image.Image, prompt: str, **options: object) -> EngineRequest:
    return EngineRequest(
        prompt=prompt,
        width=WIDTH,
        height=HEIGHT,
        fps=FPS,
        num_frames=FRAMES,
        generate_audio=True,
        seed=7,
        image=picture,
        options=dict(options),
    )


def run_kinema(engine: MotionEngine, output: Path, picture: Image.Image, prompt: str) -> None:
    clip = engine.run(kinema_request(picture, prompt), lambda _: None, lambda: False)
    encode_mp4(clip, output, preset=PRESET, crf=CRF)


EFFECTS = {
    "none (camera only)": dict(framing=False, parallax=False, talking_face=False),
    "framing": dict(framing=True, parallax=False, talking_face=False),
    "parallax": dict(framing=False, parallax=True, talking_face=False),
    "talking face": dict(framing=False, parallax=False, talking_face=True),
    "all": {},
}


def effect_costs(engine: MotionEngine, picture: Image.Image) -> None:
    """CPU time to prepare and per frame to render (no encoding) for each effect alone."""
    print("\n| effects on (portrait job) | preparation CPU (s) | render CPU per frame (ms) |")
    print("|---|---|---|")
    for name, options in EFFECTS.items():
        request = kinema_request(picture, PORTRAIT_PROMPT, **options)
        start = time.process_time()
        clip = engine.run(request, lambda _: None, lambda: False)
        prepared = time.process_time()
        frames = clip.frames
        count = sum(1 for _ in frames.iter_yuv420p())  # type: ignore[attr-defined]
        rendered = time.process_time()
        per_frame = (rendered - prepared) / count * 1000
        print(f"| {name} | {prepared - start:.2f} | {per_frame:.1f} |")


def timed(action: Callable[[], None]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (this process and its children) of ``action``."""
    before, start = os.times(), time.perf_counter()
    action()
    wall, after = time.perf_counter() - start, os.times()
    cpu = sum(after[:4]) - sum(before[:4])
    return wall, cpu


def describe(path: Path) -> str:
    with av.open(str(path)) as container:
        streams = ", ".join(
            f"{stream.codec_context.name} {float(stream.duration * stream.time_base):.3f}s"
            for stream in container.streams
            if stream.duration is not None and stream.time_base is not None
        )
        frames = container.streams.video[0].frames
        return f"{frames} frames, {streams}, {path.stat().st_size // 1024} KiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="keep the videos of the last round here")
    parser.add_argument("--effects", action="store_true", help="time each effect alone too")
    args = parser.parse_args()
    ffmpeg = ensure_ffmpeg()
    version = subprocess.run([ffmpeg, "-version"], capture_output=True, text=True, check=True)

    engine = MotionEngine()
    engine.setup()
    work = Path(tempfile.mkdtemp(prefix="kinema-bench-"))
    sample = Image.open(SAMPLE)
    sample.load()
    face = portrait()
    outputs = {"kinema motion": work / "kinema.mp4"}
    jobs: dict[str, Callable[[], None]] = {
        "kinema motion": lambda: run_kinema(engine, outputs["kinema motion"], sample, PROMPT)
    }
    if face is not None:
        outputs["kinema all effects"] = work / "kinema-portrait.mp4"
        jobs["kinema all effects"] = lambda: run_kinema(
            engine, outputs["kinema all effects"], face, PORTRAIT_PROMPT
        )
    outputs |= {name: work / f"{name.split()[1]}.mp4" for name in FFMPEG_FILTERS}
    for name, video_filter in FFMPEG_FILTERS.items():
        command = ffmpeg_command(video_filter, outputs[name])
        jobs[name] = lambda command=command: subprocess.run(command, check=True)  # type: ignore[misc]

    for name in list(jobs)[: 2 if face is not None else 1]:
        jobs[name]()  # warm up caches and the page cache, untimed
    walls: dict[str, list[float]] = {name: [] for name in jobs}
    cpus: dict[str, list[float]] = {name: [] for name in jobs}
    for round_ in range(args.rounds):
        for name, job in jobs.items():
            wall, cpu = timed(job)
            walls[name].append(wall)
            cpus[name].append(cpu)
            print(f"round {round_ + 1}: {name:18s} {wall:6.2f} s wall {cpu:6.2f} s cpu", flush=True)

    print()
    machine = f"{platform.platform()}, {os.cpu_count()} cores"
    print(f"machine: {machine}, Python {platform.python_version()}")
    print(f"ffmpeg: {version.stdout.splitlines()[0]}; PyAV {av.__version__}")
    for name, path in outputs.items():
        print(f"{name}: {describe(path)}")
    kinema = statistics.median(walls["kinema motion"])
    print("\n| run | median wall (s) | median CPU (s) | kinema motion / this |")
    print("|---|---|---|---|")
    for name in jobs:
        wall = statistics.median(walls[name])
        cpu = statistics.median(cpus[name])
        print(f"| {name} | {wall:.2f} | {cpu:.2f} | {kinema / wall:.2f}x |")
    if face is not None:
        every = statistics.median(walls["kinema all effects"])
        for name in FFMPEG_FILTERS:
            ratio = every / statistics.median(walls[name])
            print(f"kinema all effects / {name}: {ratio:.2f}x (wall)")
    if args.effects and face is not None:
        effect_costs(engine, face)
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        for path in outputs.values():
            shutil.copy2(path, args.keep / path.name)
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
