"""Byte-count progress for one download: a tqdm bar, a callback, or nothing."""

from __future__ import annotations

import sys
from collections.abc import Callable

# None: a bar only when stderr is a terminal; True/False: force on/off;
# a callable: called with the size of each chunk written (handy in tests).
ProgressArg = None | bool | Callable[[int], None]


def _make_bar(total: int, desc: str):
    try:
        from tqdm import tqdm
    except ImportError:
        return None  # tqdm is a dependency, but a missing bar must never fail a download
    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, leave=False)


class Progress:
    """Report bytes received for one file according to a ``progress`` argument (see ProgressArg)."""

    def __init__(self, progress: ProgressArg, total: int, desc: str):
        self._callback = progress if callable(progress) else None
        show = progress is True or (progress is None and sys.stderr.isatty())
        self._bar = _make_bar(total, desc) if show and self._callback is None else None

    def __call__(self, nbytes: int) -> None:
        if self._callback is not None:
            self._callback(nbytes)
        if self._bar is not None:
            self._bar.update(nbytes)

    def restart(self) -> None:
        """The server ignored our Range request: the count starts again from zero."""
        if self._bar is not None:
            self._bar.reset()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.close()
