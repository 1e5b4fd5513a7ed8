"""Child processes that do not outlive the process that started them."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import signal


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


_LIBC = _libc()  # loaded here: the forked child may only make the call
_PR_SET_PDEATHSIG = 1


def stop_with_parent() -> None:
    """A ``preexec_fn``: in the child, before it runs, ask for SIGTERM when the parent
    dies (even by SIGKILL), so no part of a stack outlives the process that owns it.
    Linux only; elsewhere nothing. The signal follows the *thread* that started the
    child: start such children from a thread that lives as long as they should."""
    if _LIBC is not None:
        with contextlib.suppress(AttributeError):
            _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
