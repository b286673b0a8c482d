"""How ``kinema`` reports a failure: one line on stderr and exit status 1.

``kinema --debug ...`` shows the whole traceback instead. Errors the code expects (a
``KinemaError``, a catalog mistake, a file that is not there, a server that does not
answer) are put in the user's words; anything else is its type and first line.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

import httpx

from kinema.catalog_check import CatalogError
from kinema.client import GenerationFailed, GenerationTimeout, KinemaAPIError
from kinema.errors import KinemaError

DEBUG_FLAG = "--debug"
_MAX_CHARS = 400


def describe(error: BaseException) -> str:
    """One line that says what went wrong."""
    if isinstance(error, KinemaError):
        text = error.message
    elif isinstance(error, CatalogError):
        text = f"catalog: {error}" if error.table else str(error)
    elif isinstance(error, KinemaAPIError | GenerationFailed | GenerationTimeout):
        text = str(error)
    elif isinstance(error, httpx.TransportError):
        text = _unreachable(error)
    elif isinstance(error, OSError) and error.filename is not None:
        text = f"{error.filename}: {error.strerror or error}"
    else:
        text = f"{type(error).__name__}: {error}"
    first = (text.strip().splitlines() or [type(error).__name__])[0]
    return first if len(first) <= _MAX_CHARS else first[: _MAX_CHARS - 3] + "..."


def _unreachable(error: httpx.TransportError) -> str:
    try:
        url = error.request.url
        where = f"{url.scheme}://{url.netloc.decode()}"
    except RuntimeError:  # an error raised before its request was made
        where = "the server"
    reason = str(error) or type(error).__name__
    return f"cannot reach {where}: {reason}"


def run(command: Callable[[Sequence[str]], object], argv: Sequence[str]) -> None:
    """Run the command line ``argv``; ``--debug`` anywhere in it shows tracebacks."""
    debug = DEBUG_FLAG in argv
    args = [arg for arg in argv if arg != DEBUG_FLAG]
    try:
        command(args)
    except Exception as error:
        if debug:
            raise
        print(f"error: {describe(error)}", file=sys.stderr)
        print(f"(run with {DEBUG_FLAG} for the traceback)", file=sys.stderr)
        sys.exit(1)
