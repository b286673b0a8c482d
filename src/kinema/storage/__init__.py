"""Where videos and input images live: a local directory by default."""

from kinema.storage.base import Storage
from kinema.storage.local import LocalStorage
from kinema.storage.signing import LinkSigner

__all__ = ["LinkSigner", "LocalStorage", "Storage"]
