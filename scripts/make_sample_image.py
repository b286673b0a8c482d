"""Write ``src/kinema/assets/sample.jpg``, the picture the README demo animates.

It is painted by the motion engine's own text-to-video painter, so it needs nothing but
kinema itself: ``python scripts/make_sample_image.py``.
"""

from __future__ import annotations

from pathlib import Path

from kinema.engines.motion.engine import paint_first_frame

PROMPT = "Alpine peaks at sunset above a calm lake"
SEED = 3
TARGET = Path(__file__).resolve().parents[1] / "src" / "kinema" / "assets" / "sample.jpg"


def main() -> None:
    picture = paint_first_frame(PROMPT, 1280, 720, SEED)
    picture.save(TARGET, format="JPEG", quality=90, optimize=True, progressive=True)
    print(f"wrote {TARGET} ({TARGET.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
