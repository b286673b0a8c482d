"""Render the stills of docs/motion/ from photographs scikit-image installs.

    .venv/bin/python scripts/motion_stills.py [docs/motion]

Each still is a strip of frames from one clip of the motion engine (decoded from the
MP4 it encodes), so what the README shows is what a client gets.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageOps
from skimage import data

from kinema.engines.motion.engine import MotionEngine
from kinema.engines.sound.soundtrack import make_soundtrack
from kinema.media.encode import encode_mp4
from kinema.types import EngineRequest

DEMO = (
    "She says: 'Welcome to kinema. Everything you see and hear was made on this machine.' "
    "The camera slowly pushes in as she smiles."
)
# (the sound, as the voice reports it; its label in ASCII, which the default font draws)
SHOWN = (("m", "m: lips shut"), ("ɛ", "e of 'Welcome': open"), ("i", "ee: spread"),
         ("u", "oo: rounded"))  # fmt: skip
SPEECH = "The camera pans right as she smiles and says: 'Hello there, welcome to the launch pad.'"


def clip_frames(
    picture: Image.Image, prompt: str, size: tuple[int, int], seconds: int = 4, **options
) -> list:
    request = EngineRequest(
        prompt=prompt,
        width=size[0],
        height=size[1],
        fps=24,
        num_frames=24 * seconds,
        generate_audio=True,
        seed=5,
        image=picture,
        options=options,
    )
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "clip.mp4"
        encode_mp4(MotionEngine().run(request, lambda _: None, lambda: False), path)
        with av.open(str(path)) as container:
            return [frame.to_image() for frame in container.decode(video=0)]


def strip(pictures: list[Image.Image], labels: list[str], height: int = 240) -> Image.Image:
    scaled = [ImageOps.contain(p, (10_000, height)) for p in pictures]
    sheet = Image.new("RGB", (sum(p.width for p in scaled) + 8 * (len(scaled) - 1), height + 22))
    x = 0
    draw = ImageDraw.Draw(sheet)
    for picture, label in zip(scaled, labels, strict=True):
        sheet.paste(picture, (x, 22))
        draw.text((x + 4, 4), label, fill=(230, 230, 230))
        x += picture.width + 8
    return sheet


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/motion")
    out.mkdir(parents=True, exist_ok=True)
    astronaut = Image.fromarray(data.astronaut())

    # the demo's portrait, speaking: its face on the frames of four sounds of the line
    portrait = Image.open(Path(__file__).resolve().parents[1] / "src/kinema/assets/astronaut.jpg")
    frames = clip_frames(portrait, DEMO, (640, 360), camera="static", seconds=8)
    phones = make_soundtrack(DEMO, 8.0, seed=5).phones
    faces, labels = [frames[0]], ["at rest"]
    for symbol, label in SHOWN:
        phone = next(p for p in phones if p.symbol == symbol)
        faces.append(frames[round((phone.start_s + phone.end_s) / 2 * 24)])
        labels.append(label)
    box = (235, 75, 405, 245)  # the face, in the 640x360 frame
    strip([face.crop(box) for face in faces], labels, height=200).save(
        out / "demo_speaking.jpg", quality=85
    )

    frames = clip_frames(astronaut, SPEECH, (640, 360))
    picks = [0, 30, 52, 95]
    strip([frames[i] for i in picks], [f"frame {i}" for i in picks]).save(
        out / "talking_pan.jpg", quality=82
    )

    off_centre = astronaut.crop((100, 0, 512, 300))
    framed = clip_frames(off_centre, "A still camera.", (360, 640))[0]
    centre = ImageOps.fit(off_centre, (360, 640))
    strip([off_centre, centre, framed], ["input", "centre crop", "kinema frame 0"]).save(
        out / "framing_9x16.jpg", quality=82
    )

    group = Image.new("RGB", (1024, 512))
    group.paste(astronaut, (0, 0))
    group.paste(ImageOps.mirror(astronaut), (512, 0))
    padded = clip_frames(group, "A still camera.", (360, 640))[0]
    strip([group, padded], ["input (two faces)", "9:16: padded"]).save(
        out / "pad_group.jpg", quality=82
    )

    flat = clip_frames(astronaut, "The camera pans right.", (640, 360), parallax=False)[-1]
    layered = clip_frames(astronaut, "The camera pans right.", (640, 360))[-1]
    difference = Image.fromarray(
        np.clip(np.abs(np.asarray(flat, np.int16) - np.asarray(layered, np.int16)) * 3, 0, 255)
        .astype(np.uint8)
    )
    strip([flat, layered, difference], ["pan, flat", "pan, layered", "difference x3"]).save(
        out / "parallax_pan.jpg", quality=82
    )


if __name__ == "__main__":
    main()
