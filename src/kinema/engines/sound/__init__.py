"""Sound for the engines that make none of their own: quoted dialogue spoken by a voice
(``voice``) over the scene's ambience (``ambience``), mixed into one track (``soundtrack``)."""

from kinema.engines.sound.soundtrack import build_soundtrack, make_soundtrack

__all__ = ["build_soundtrack", "make_soundtrack"]
