"""fetch(): one verified file from an ordered list of mirrors, never a partial file on disk.

Most cases use the small train labels file (28881 bytes) to keep the suite fast;
the dropped-connection cases use the 1.6 MB test images so there is a middle to drop in.
"""

from __future__ import annotations

import os
import time

import pytest

from datasets import download, memo, verify
from datasets.download import STALE_TEMPORARY_AGE, DownloadError, RetryPolicy, fetch
from datasets.mnist import IDX_DATASETS

LABELS = IDX_DATASETS["mnist"].files["train_labels"]
IMAGES = IDX_DATASETS["mnist"].files["test_images"]  # 1.6 MB: big enough to drop mid-stream
SIDECAR = memo.SIDECAR_NAME


@pytest.fixture
def sleeps():
    """Backoff delays requested by fetch, recorded instead of slept."""
    return []


@pytest.fixture
def policy(sleeps):
    return RetryPolicy(attempts=3, backoff=0.01, read_timeout=0.3, sleep=sleeps.append)


def test_plain_download_is_verified_and_recorded(tmp_path, mnist_server, policy):
    path = fetch(LABELS, tmp_path, [mnist_server.base("ok")], policy=policy)
    assert path == tmp_path / LABELS.name
    assert verify.sha256_of(path) == LABELS.sha256
    assert sorted(os.listdir(tmp_path)) == [SIDECAR, LABELS.name]


def test_404_moves_on_to_next_mirror(tmp_path, mnist_server, policy):
    fetch(LABELS, tmp_path, [mnist_server.base("404"), mnist_server.base("ok")], policy=policy)
    assert [entry[0] for entry in mnist_server.log] == ["404", "ok"]


def test_html_page_with_status_200_is_rejected(tmp_path, mnist_server, policy):
    with pytest.raises(DownloadError, match="web page"):
        fetch(LABELS, tmp_path, [mnist_server.base("html")], policy=policy)
    assert os.listdir(tmp_path) == []


def test_html_sent_as_binary_is_caught_by_leading_bytes(tmp_path, mnist_server, policy):
    with pytest.raises(DownloadError, match="not gzip data"):
        fetch(LABELS, tmp_path, [mnist_server.base("html-binary")], policy=policy)
    assert os.listdir(tmp_path) == []


def test_corrupted_bytes_fail_checksum_then_next_mirror_wins(tmp_path, mnist_server, policy):
    fetch(LABELS, tmp_path, [mnist_server.base("corrupt"), mnist_server.base("ok")], policy=policy)
    assert verify.sha256_of(tmp_path / LABELS.name) == LABELS.sha256
    assert sorted(os.listdir(tmp_path)) == [SIDECAR, LABELS.name]


def test_dropped_connection_resumes_with_range(tmp_path, mnist_server, policy, sleeps):
    fetch(IMAGES, tmp_path, [mnist_server.base("drop")], policy=policy)
    (_, _, first_range, first_status), (_, _, resume_range, resume_status) = mnist_server.log
    assert (first_range, first_status, resume_status) == (None, 200, 206)
    # Bytes received before the drop are kept (requests may lose the last partial chunk).
    assert int(resume_range.removeprefix("bytes=").rstrip("-")) > IMAGES.size // 4
    assert sleeps == []  # progress was made, so the resume is immediate
    assert verify.sha256_of(tmp_path / IMAGES.name) == IMAGES.sha256


def test_server_ignoring_range_restarts_from_zero(tmp_path, mnist_server, policy):
    fetch(IMAGES, tmp_path, [mnist_server.base("drop-no-range")], policy=policy)
    (_, _, first_range, first_status), (_, _, retry_range, retry_status) = mnist_server.log
    assert (first_range, first_status, retry_status) == (None, 200, 200)
    assert retry_range.startswith("bytes=")
    assert verify.sha256_of(tmp_path / IMAGES.name) == IMAGES.sha256
    assert sorted(os.listdir(tmp_path)) == [SIDECAR, IMAGES.name]


def test_server_error_is_retried_with_backoff(tmp_path, mnist_server, policy, sleeps):
    fetch(LABELS, tmp_path, [mnist_server.base("500-once")], policy=policy)
    assert sleeps == [0.01]
    assert verify.sha256_of(tmp_path / LABELS.name) == LABELS.sha256


def test_persistent_server_error_gives_up_after_policy_attempts(tmp_path, mnist_server, policy,
                                                                 sleeps):
    with pytest.raises(DownloadError, match="HTTP 500.*gave up after 3 attempts"):
        fetch(LABELS, tmp_path, [mnist_server.base("500")], policy=policy)
    assert sleeps == [0.01, 0.02]  # doubling backoff between the three attempts
    assert os.listdir(tmp_path) == []


def test_read_timeout_moves_on_to_next_mirror(tmp_path, mnist_server, sleeps):
    quick = RetryPolicy(attempts=1, read_timeout=0.2, sleep=sleeps.append)
    fetch(LABELS, tmp_path, [mnist_server.base("slow"), mnist_server.base("ok")], policy=quick)
    assert verify.sha256_of(tmp_path / LABELS.name) == LABELS.sha256


def test_slow_mirror_is_abandoned_for_the_next(tmp_path, mnist_server):
    impatient = RetryPolicy(attempts=1, min_rate=5000, rate_window=1.0)
    fetch(LABELS, tmp_path, [mnist_server.base("trickle"), mnist_server.base("ok")],
          policy=impatient)
    assert [entry[0] for entry in mnist_server.log] == ["trickle", "ok"]
    assert verify.sha256_of(tmp_path / LABELS.name) == LABELS.sha256


def test_slow_mirror_is_reported_with_its_rate(tmp_path, mnist_server):
    impatient = RetryPolicy(attempts=1, min_rate=5000, rate_window=1.0)
    reason = r"too slow: \d+ B/s over the last 1 s \(\d+ of 28881 bytes received\)"
    with pytest.raises(DownloadError, match=rf"  - {mnist_server.base('trickle')}: {reason}"):
        fetch(LABELS, tmp_path, [mnist_server.base("trickle")], policy=impatient)
    assert os.listdir(tmp_path) == []


def test_deadline_moves_on_from_a_mirror_that_is_steady_but_too_long(tmp_path, mnist_server):
    hurried = RetryPolicy(attempts=1, min_rate=0, deadline=1.0)
    with pytest.raises(DownloadError, match=r"trickle/: deadline of 1 s passed \(\d+ of 28881"):
        fetch(LABELS, tmp_path, [mnist_server.base("trickle")], policy=hurried)
    assert os.listdir(tmp_path) == []


class Clock:
    """Time that passes only while fetch sleeps."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_deadline_counts_the_waits_between_retries(tmp_path, mnist_server):
    clock = Clock()
    policy = RetryPolicy(attempts=100, backoff=1.0, max_backoff=8.0, deadline=20.0,
                         sleep=clock.sleep, clock=clock)
    with pytest.raises(DownloadError, match=r"deadline of 20 s passed .*last error: HTTP 500"):
        fetch(LABELS, tmp_path, [mnist_server.base("500")], policy=policy)
    assert len(mnist_server.log) == 5  # after waits of 1, 2, 4, 8 and 8 s, 20 s have passed


@pytest.mark.parametrize("field, value", [("min_rate", -1), ("rate_window", 0),
                                          ("deadline", float("nan"))])
def test_retry_policy_refuses_meaningless_limits(field, value):
    with pytest.raises(ValueError, match=f"{field} must be .*, got {value!r}"):
        RetryPolicy(**{field: value})


def test_all_mirrors_failing_raise_one_error_listing_each(tmp_path, mnist_server,
                                                          mnist_dead_mirror, policy):
    mirrors = [mnist_server.base("404"), mnist_server.base("html"), mnist_dead_mirror,
               str(tmp_path / "nowhere")]
    with pytest.raises(DownloadError) as info:
        fetch(LABELS, tmp_path, mirrors, policy=policy, hint="Put the files in X by hand.")
    message = str(info.value)
    assert isinstance(info.value, RuntimeError)
    lines = {line.split(": ", 1)[0]: line for line in message.splitlines()}
    for mirror, reason in zip(mirrors, ["HTTP 404", "web page", "ConnectionError", "cannot read"]):
        assert reason in lines[f"  - {mirror}"]
    assert message.endswith("Put the files in X by hand.")
    assert os.listdir(tmp_path) == []


def test_keyboard_interrupt_mid_download_leaves_nothing(tmp_path, mnist_server, policy):
    def interrupt(nbytes):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fetch(LABELS, tmp_path, [mnist_server.base("ok")], policy=policy, progress=interrupt)
    assert os.listdir(tmp_path) == []


def test_error_while_writing_leaves_nothing(tmp_path, mnist_server, policy, monkeypatch):
    real_write = download._write

    def write_then_fail(out, chunk, spec, report):
        real_write(out, chunk[:100], spec, report)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(download, "_write", write_then_fail)
    with pytest.raises(OSError, match="No space"):
        fetch(LABELS, tmp_path, [mnist_server.base("ok")], policy=policy)
    assert os.listdir(tmp_path) == []


def test_local_folder_and_file_url_mirrors(tmp_path, mnist_files):
    fetch(LABELS, tmp_path / "a", [str(mnist_files)], progress=False)
    fetch(LABELS, tmp_path / "b", [mnist_files.as_uri()], progress=False)
    for sub in "ab":
        assert verify.sha256_of(tmp_path / sub / LABELS.name) == LABELS.sha256


def test_damaged_cached_file_is_replaced(tmp_path, mnist_files):
    # Right size, wrong bytes.
    (tmp_path / LABELS.name).write_bytes(b"\x1f\x8b" + b"\0" * (LABELS.size - 2))
    fetch(LABELS, tmp_path, [str(mnist_files)])
    assert verify.sha256_of(tmp_path / LABELS.name) == LABELS.sha256


def test_verified_cache_needs_no_mirror(tmp_path, mnist_files, mnist_dead_mirror):
    fetch(LABELS, tmp_path, [str(mnist_files)])
    assert fetch(LABELS, tmp_path, [mnist_dead_mirror]) == tmp_path / LABELS.name


def test_cache_check_hashes_once_then_trusts_sidecar(tmp_path, mnist_files, monkeypatch):
    fetch(LABELS, tmp_path, [str(mnist_files)])
    calls = []
    real = verify.sha256_of
    monkeypatch.setattr(verify, "sha256_of", lambda path: calls.append(path) or real(path))
    assert verify.check(tmp_path / LABELS.name, LABELS) is None
    assert calls == []
    os.utime(tmp_path / LABELS.name, ns=(0, 0))  # touched file: memo no longer applies
    assert verify.check(tmp_path / LABELS.name, LABELS) is None
    assert calls == [tmp_path / LABELS.name]


def test_progress_callback_sees_every_byte_and_forced_bar_never_breaks(tmp_path, mnist_files):
    seen = []
    fetch(LABELS, tmp_path / "a", [str(mnist_files)], progress=seen.append)
    assert sum(seen) == LABELS.size
    # A bar forced on must not break a download, with or without tqdm installed.
    fetch(LABELS, tmp_path / "b", [str(mnist_files)], progress=True)
    assert (tmp_path / "b" / LABELS.name).stat().st_size == LABELS.size


def leave_temporaries(folder, age: float) -> list[str]:
    """Temporary files as a process killed ``age`` seconds ago leaves them: those of
    atomic_write (.tmp) and of earlier versions' downloads (.part)."""
    names = [f".train_labels.gz.{age:.0f}a.tmp", f".train_labels.gz.{age:.0f}b.part",
             f".train_images.npy.{age:.0f}c.tmp"]
    then = time.time() - age
    for name in names:
        (folder / name).write_bytes(b"partial")
        os.utime(folder / name, (then, then))
    return names


def test_stale_temporaries_are_removed_even_when_nothing_is_downloaded(tmp_path, tiny):
    spec = tiny.dataset.files["train_labels"]
    fetch(spec, tmp_path / "data", [str(tiny.mirror)])
    leave_temporaries(tmp_path / "data", STALE_TEMPORARY_AGE + 60)
    fetch(spec, tmp_path / "data", [])
    assert sorted(os.listdir(tmp_path / "data")) == [SIDECAR, spec.name]


def test_recent_temporaries_are_kept_for_a_download_that_may_be_live(tmp_path, tiny):
    spec = tiny.dataset.files["train_labels"]
    (tmp_path / "data").mkdir()
    recent = leave_temporaries(tmp_path / "data", STALE_TEMPORARY_AGE - 60)
    fetch(spec, tmp_path / "data", [str(tiny.mirror)])
    assert sorted(os.listdir(tmp_path / "data")) == sorted([SIDECAR, spec.name, *recent])
