"""The one exception type for bad user input, and the guard every command line runs under.

Anything a user can get wrong (a path, a method name, an image size) raises :class:`InputError`
with a single line that names the thing and says how to fix it. Front ends print that line and
exit non-zero instead of showing a traceback.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable

__all__ = ["InputError", "ServiceError", "first_line", "guarded", "redact"]

_USERINFO = re.compile(r"(://)[^/\s@]+@")


class InputError(ValueError):
    """Bad user input; ``str(err)`` is one line meant for the user."""


class ServiceError(RuntimeError):
    """A service the run depends on (storage, a cluster) failed for longer than we wait; ``str(err)`` is one
    line that says what and what to do (usually: run again once it is back; nothing finished is lost)."""


def first_line(err: BaseException) -> str:
    """An exception as one line for a message: its first line, or its type when it says nothing."""
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def redact(text: str) -> str:
    """``text`` (a URI, or a message that quotes one) without any ``user:password@`` part."""
    return _USERINFO.sub(r"\1", text)


def guarded(prog: str, command: Callable[[], int]) -> int:
    """Run a command; bad input becomes one ``PROG: error: ...`` line and exit code 2, a service that stayed
    down one such line and exit code 1, Ctrl-C exit code 130."""
    try:
        return command()
    except InputError as err:  # (a URI the user gave may carry credentials: never printed)
        print(f"{prog}: error: {redact(str(err))}", file=sys.stderr)
        return 2
    except ServiceError as err:
        print(f"{prog}: error: {redact(str(err))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
