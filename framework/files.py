"""Writing files so that a crash, Ctrl-C or a full disk never leaves a partial one at the
destination."""
import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

TEMP_SUFFIX = ".tmp"


@contextmanager
def atomic_write(path, mode="wb", encoding=None):
    """Yields a file to write; on success it is flushed, synced and renamed over `path`.

    The temporary file sits beside `path` (a hidden `.<name>.<random>.tmp`), so the rename is
    atomic; it is removed when the block raises, Ctrl-C included. The new file gets the mode
    the user's umask gives (mkstemp alone would make it private, 0600).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, mode, encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass  # never let the clean-up replace the exception that brought us here
        if isinstance(e, OSError) and e.filename is None and e.errno is not None:
            # write() and fsync() errors (a full disk) name no file: say which one failed
            raise OSError(e.errno, e.strerror, str(path)) from e
        raise


def current_umask():
    """The process's umask: from /proc on Linux, else by setting it and straight back."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def remove_stale_temporaries(folder, older_than=0.0):
    """Deletes the temporary files a killed process left in `folder` (by atomic_write or a
    download).

    older_than: seconds since a file last changed; a folder others may be writing into at the
    same time (a shared data folder) passes a few minutes, so a live writer's file is kept.
    """
    removed, now = [], time.time()
    for path in Path(folder).glob(".*"):
        if path.name.endswith((TEMP_SUFFIX, ".part")) and path.is_file():
            try:
                if now - path.stat().st_mtime < older_than:
                    continue
                path.unlink()
                removed.append(path.name)
            except OSError:
                pass
    return removed
