"""Obtain one verified file from an ordered list of mirrors.

Every byte goes to a hidden temporary file beside the destination, which is
renamed into place only after its size and sha256 match. Whatever happens in
between (a 404, an HTML error page served with status 200, a dropped
connection, Ctrl-C), the destination path never holds a partial file.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import requests
import urllib3

from datasets import verify
from datasets.idx import GZIP_MAGIC
from datasets.pace import Pace
from datasets.progress import Progress, ProgressArg
from datasets.verify import FileSpec
from framework.files import atomic_write, remove_stale_temporaries

CHUNK_SIZE = 1 << 16
# A temporary file older than this was left by a killed process. A live download writes to
# its file at least every read_timeout (plus a backoff), far more often, so a folder that
# another process is downloading into at the same time is safe to sweep.
STALE_TEMPORARY_AGE = 10 * 60.0


class DownloadError(RuntimeError):
    """Every mirror failed for a file. The message lists each mirror with its reason."""

    def __init__(self, spec: FileSpec, attempts: Sequence[tuple[str, str]], hint: str = ""):
        self.spec = spec
        self.attempts = list(attempts)
        lines = [f"Could not obtain {spec.name} ({spec.size} bytes, sha256 {spec.sha256}). Tried:"]
        tried = [f"  - {where}: {reason}" for where, reason in self.attempts]
        lines += tried or ["  (no mirrors given)"]
        if hint:
            lines.append(hint)
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try one mirror before moving on to the next."""

    attempts: int = 4  # tries per mirror for transient errors (connection, timeout, 5xx)
    backoff: float = 0.5  # seconds before the second try, doubled after each failure
    max_backoff: float = 8.0
    connect_timeout: float = 10.0
    read_timeout: float = 30.0  # longest silence tolerated mid-transfer
    # Move on from a mirror whose connection stays under min_rate bytes/s for rate_window
    # seconds (0: no minimum), or that has not delivered the file deadline seconds after the
    # first request, retries included (checked as data arrives and before each try). The
    # deadline lets MNIST's largest file (9.9 MB) arrive at min_rate with time to spare.
    min_rate: float = 10_000.0
    rate_window: float = 30.0
    deadline: float = 1200.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        if not self.min_rate >= 0:
            raise ValueError(f"RetryPolicy: min_rate must be >= 0 bytes/s, got {self.min_rate!r}")
        for name in ("rate_window", "deadline"):
            if not getattr(self, name) > 0:
                raise ValueError(f"RetryPolicy: {name} must be > 0 seconds, "
                                 f"got {getattr(self, name)!r}")


class _MirrorFailed(Exception):
    """This mirror cannot give us this file; try the next one."""


class _Transient(Exception):
    """Worth retrying the same mirror (resuming where we stopped)."""


def fetch(spec: FileSpec, folder: str | Path, mirrors: Sequence[str], *,
          policy: RetryPolicy | None = None, progress: ProgressArg = None, hint: str = "") -> Path:
    """Return ``folder/spec.name``, verified, downloading it from the first mirror that works.

    A file already there is used when it verifies (see ``verify.check``) and is
    otherwise replaced; temporary files a killed process left in ``folder`` are
    removed. Mirrors are http(s) base URLs, file:// URLs or local folders holding
    a file named ``spec.name``; ``policy`` says how hard to try each and when to
    move on. Raises DownloadError, whose message ends with ``hint``, when no
    mirror delivers the right bytes.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(folder, older_than=STALE_TEMPORARY_AGE)
    dest = folder / spec.name
    problem = verify.check(dest, spec)
    if problem is None:
        return dest
    attempts = [] if problem == "missing" else [(str(dest), f"existing file ignored: {problem}")]
    for mirror in mirrors:
        try:
            _fetch_from(mirror, spec, dest, policy or RetryPolicy(), progress)
            return dest
        except _MirrorFailed as exc:
            attempts.append((mirror, str(exc)))
    raise DownloadError(spec, attempts, hint)


def _fetch_from(mirror: str, spec: FileSpec, dest: Path, policy: RetryPolicy,
                progress: ProgressArg) -> None:
    # One temporary file for the whole mirror attempt: retries resume into it with Range.
    # atomic_write removes it on any exception (a failed mirror, Ctrl-C) and renames it
    # over dest only when the block ends normally, i.e. after size and sha256 matched.
    with atomic_write(dest, "w+b") as out, Progress(progress, spec.size, spec.name) as report:
        scheme = urlparse(mirror).scheme.lower()
        if scheme in ("http", "https"):
            _download(f"{mirror.rstrip('/')}/{spec.name}", out, spec, policy, report)
        elif (source := local_folder(mirror)) is not None:
            _copy(source / spec.name, out, spec, report)
        else:
            raise _MirrorFailed(f"unsupported URL scheme {scheme!r}")
        size = out.seek(0, os.SEEK_END)
        if size != spec.size:
            raise _MirrorFailed(f"got {size} bytes, expected {spec.size}")
        out.seek(0)
        digest = verify.sha256_of_file(out)
        if digest != spec.sha256:
            raise _MirrorFailed(
                f"sha256 mismatch: got {digest[:12]}..., expected {spec.sha256[:12]}...")
    verify.remember(dest, digest)


def local_folder(mirror: str) -> Path | None:
    """The folder a mirror names on this machine (a path or a file:// URL), None for any other
    URL."""
    scheme = urlparse(mirror).scheme.lower()
    if scheme == "file":
        return Path(url2pathname(urlparse(mirror).path))
    if scheme == "" or len(scheme) == 1:  # len 1: a Windows drive letter
        return Path(mirror).expanduser()
    return None


def _copy(src: Path, out, spec: FileSpec, report: Progress) -> None:
    try:
        # Not a with: only open's errors mean a bad mirror; a failing write must propagate.
        f = open(src, "rb")  # noqa: SIM115
    except OSError as exc:
        raise _MirrorFailed(f"cannot read {src}: {exc.strerror or exc}") from None
    with f:
        while chunk := f.read(CHUNK_SIZE):
            _write(out, chunk, spec, report)


def _write(out, chunk: bytes, spec: FileSpec, report: Progress) -> None:
    if out.tell() == 0 and spec.name.endswith(".gz") and not GZIP_MAGIC.startswith(chunk[:2]):
        raise _MirrorFailed(f"not gzip data (starts with {chunk[:16]!r})")
    if out.tell() + len(chunk) > spec.size:
        raise _MirrorFailed(f"sent more than the expected {spec.size} bytes")
    out.write(chunk)
    report(len(chunk))


def _download(url: str, out, spec: FileSpec, policy: RetryPolicy, report: Progress) -> None:
    failures, furthest, last_error = 0, 0, ""
    pace = Pace(policy.deadline, policy.min_rate, policy.rate_window, policy.clock)
    with requests.Session() as session:
        while True:
            if reason := pace.overdue():
                raise _gave_up(reason, out, spec, last_error)
            try:
                _attempt(session, url, out, spec, policy, report, pace)
                return
            except _Transient as exc:
                last_error = f"; last error: {exc}"
                if out.tell() > furthest:
                    # The connection worked and then dropped: resume at once, free of charge.
                    # A server that keeps restarting from zero makes no new progress and pays.
                    furthest = out.tell()
                    continue
                failures += 1
                if failures >= policy.attempts:
                    raise _MirrorFailed(f"{exc} (gave up after {failures} attempts)") from None
                policy.sleep(min(policy.backoff * 2 ** (failures - 1), policy.max_backoff))


def _attempt(session: requests.Session, url: str, out, spec: FileSpec, policy: RetryPolicy,
             report: Progress, pace: Pace) -> None:
    have = out.tell()
    # identity: we want the stored .gz bytes, never a transparently decoded body.
    headers = {"Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        with session.get(url, headers=headers, stream=True,
                         timeout=(policy.connect_timeout, policy.read_timeout)) as r:
            if r.status_code >= 500 or r.status_code == 429:
                raise _Transient(f"HTTP {r.status_code} {r.reason}")
            if r.status_code == 200 and have:
                out.seek(0)  # server ignored Range: start over
                out.truncate()
                report.restart()
            elif r.status_code == 206 and have:
                content_range = r.headers.get("Content-Range", "")
                if not content_range.startswith(f"bytes {have}-"):
                    raise _MirrorFailed(
                        f"bad Content-Range {content_range!r} for a resume at byte {have}")
            elif r.status_code != 200:
                raise _MirrorFailed(f"HTTP {r.status_code} {r.reason}")
            content_type = r.headers.get("Content-Type", "")
            if "html" in content_type.lower():
                raise _MirrorFailed(
                    f"served a web page (Content-Type {content_type}), not the file")
            pace.new_connection()
            # read1 returns what has arrived, where iter_content waits for a full chunk: a
            # trickling mirror is judged as it trickles. urllib3 < 2 has only read.
            read = getattr(r.raw, "read1", r.raw.read)
            while chunk := read(CHUNK_SIZE, decode_content=True):
                _write(out, chunk, spec, report)
                if reason := pace.received(len(chunk)):
                    raise _gave_up(reason, out, spec)
    except (requests.exceptions.SSLError, urllib3.exceptions.SSLError) as exc:
        raise _MirrorFailed(_describe(exc)) from None  # a certificate problem will not fix itself
    except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
            urllib3.exceptions.ProtocolError, urllib3.exceptions.ReadTimeoutError) as exc:
        raise _Transient(_describe(exc)) from None
    except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
        raise _MirrorFailed(_describe(exc)) from None
    if out.tell() < spec.size:
        raise _Transient(f"connection closed after {out.tell()} of {spec.size} bytes")


def _gave_up(reason: str, out, spec: FileSpec, last_error: str = "") -> _MirrorFailed:
    return _MirrorFailed(f"{reason} ({out.tell()} of {spec.size} bytes received){last_error}")


def _describe(exc: Exception) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 300 else text[:297] + "..."
