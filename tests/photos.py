"""Real photographs that packages ship, fetched from the package registry and kept.

A group photograph: ``t1.jpg`` of the ``insightface`` 0.7.3 source distribution on PyPI
(MIT licence; six people round a poker table, 1280x886, faces turned several ways). The
archive is fetched once from PyPI, checked against its published SHA-256, and the one
picture is kept under ``.photos/`` (ignored by git), so later runs need no network.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import urllib.request
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
KEPT = ROOT / ".photos"

_GROUP_SDIST = (
    "https://files.pythonhosted.org/packages/0b/8d/"
    "0f4af90999ca96cf8cb846eb5ae27c5ef5b390f9c090dd19e4fa76364c13/insightface-0.7.3.tar.gz"
)
_GROUP_SHA256 = "f191f719612ebb37018f41936814500544cd0f86e6fcd676c023f354c668ddf7"
_GROUP_MEMBER = "insightface-0.7.3/insightface/data/images/t1.jpg"

# The six faces of the group photograph, (left, top, right, bottom) in its pixels, each from
# the hairline to the chin and ear to ear, labelled by hand (checked by eye, not by a
# detector): from the left, the woman with the cards, the woman standing behind, the man
# in grey, the man in red, the man standing, the woman on the right.
GROUP_FACES = (
    (52, 262, 168, 400),
    (268, 146, 372, 270),
    (468, 258, 574, 410),
    (738, 336, 846, 476),
    (904, 56, 1016, 206),
    (1130, 268, 1230, 402),
)


def group_photo() -> Image.Image:
    """Six people round a table (``GROUP_FACES`` gives where their faces are)."""
    kept = KEPT / "insightface-0.7.3-t1.jpg"
    if not kept.exists():
        with urllib.request.urlopen(_GROUP_SDIST, timeout=120) as response:
            archive = response.read()
        digest = hashlib.sha256(archive).hexdigest()
        if digest != _GROUP_SHA256:
            raise RuntimeError(f"insightface 0.7.3 from PyPI has SHA-256 {digest}")
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            member = tar.extractfile(_GROUP_MEMBER)
            assert member is not None, _GROUP_MEMBER
            picture = member.read()
        KEPT.mkdir(exist_ok=True)
        partial = kept.with_suffix(".part")
        partial.write_bytes(picture)
        partial.replace(kept)
    return Image.open(kept).convert("RGB")
