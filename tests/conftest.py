"""Shared fixtures: the real MNIST files, a small made-up dataset, a misbehaving local web
server, and a Ctrl-C in the middle of a run.

No test touches the network: everything is served from 127.0.0.1.
"""

from __future__ import annotations

import gzip
import socket
import struct
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from datasets import IDX_DATASETS, FileSpec, IDXDataset
from datasets.mnist import holds, local_folders
from datasets.verify import sha256_of
from experiments.run import BiasCSV

SHARED_MNIST = Path(__file__).resolve().parents[1].parent / "shared/data/mnist"
HTML_PAGE = b"<!DOCTYPE html><html><body><h1>Sorry</h1>This file has moved.</body></html>"


def mnist_places() -> list[Path]:
    """Where a user keeps the MNIST .gz files: where load_mnist looks ($MNIST_DIR, the folders
    among $MNIST_MIRRORS, the user's cache folder), and ../shared/data/mnist beside this
    repository (this project's own machines)."""
    return list(dict.fromkeys([*local_folders(IDX_DATASETS["mnist"]), SHARED_MNIST]))


@pytest.fixture(scope="session")
def mnist_files() -> Path:
    """The first of ``mnist_places`` that holds the real MNIST files (skips when none does).

    Tests only read from it (as a mirror), so a user's own data folder is safe to use.
    """
    places = mnist_places()
    for place in places:
        if holds(place, IDX_DATASETS["mnist"]):
            return place
    looked_in = ", ".join(str(place) for place in places)
    pytest.skip(f"real MNIST files needed (run `python train.py` once, or set MNIST_DIR or "
                f"MNIST_MIRRORS to a folder holding the four .gz files); looked in {looked_in}")


def write_idx_gz(path: Path, array: np.ndarray) -> FileSpec:
    """Write a uint8 array as a gzipped IDX file and return the FileSpec that matches it."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))
    return FileSpec(path.name, path.stat().st_size, sha256_of(path))


@dataclass
class TinyData:
    """A small made-up MNIST-format dataset, registered as IDX_DATASETS["tiny"]."""

    mirror: Path  # a local folder mirror holding its four .gz files
    dataset: IDXDataset
    arrays: dict  # the uint8 contents of each file, keyed like dataset.files


@pytest.fixture
def make_tiny(tmp_path, monkeypatch):
    """Makes a TinyData: 40 train and 10 test 4x4 images, 3 classes; keyword arguments
    replace any of the four arrays (e.g. labels out of range)."""

    def make(**replace: np.ndarray) -> TinyData:
        rng = np.random.default_rng(0)
        arrays = {
            "train_images": rng.integers(0, 256, (40, 4, 4), dtype=np.uint8),
            "train_labels": rng.integers(0, 3, 40, dtype=np.uint8),
            "test_images": rng.integers(0, 256, (10, 4, 4), dtype=np.uint8),
            "test_labels": rng.integers(0, 3, 10, dtype=np.uint8),
        } | replace
        mirror = tmp_path / "mirror"
        mirror.mkdir(exist_ok=True)
        files = {key: write_idx_gz(mirror / f"{key}.gz", a) for key, a in arrays.items()}
        dataset = IDXDataset("tiny", files, (str(mirror),), "TINY", n_train=40, n_test=10,
                             image_shape=(4, 4), num_classes=3)
        monkeypatch.setitem(IDX_DATASETS, "tiny", dataset)
        return TinyData(mirror, dataset, arrays)

    return make


@pytest.fixture
def tiny(make_tiny) -> TinyData:
    """The default TinyData."""
    return make_tiny()


@dataclass
class MnistServer:
    """A local server for ``folder``. The first path segment picks its behaviour.

    ``{url}/ok/<file>`` serves the file honouring Range; other modes:
    404, 500 (always), 500-once, html (status 200 with a web page), html-binary
    (the page sent as application/octet-stream), corrupt (one byte flipped),
    drop (the first response stops halfway, then Range is honoured),
    drop-no-range (same, but Range is ignored), slow (waits 1 s before answering),
    trickle (sends 100 bytes every 0.1 s: 1 kB/s).
    """

    url: str
    folder: Path
    log: list = field(default_factory=list)  # (mode, file, Range header, status) per request
    _seen: set = field(default_factory=set)

    def base(self, mode: str) -> str:
        """The mirror base URL for one behaviour."""
        return f"{self.url}/{mode}/"


class _Handler(BaseHTTPRequestHandler):
    server_version = "MnistTestServer/1.0"

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        state: MnistServer = self.server.state
        mode, _, name = self.path.lstrip("/").partition("/")
        first = (mode, name) not in state._seen
        state._seen.add((mode, name))
        src = state.folder / name
        if mode == "404" or not src.is_file():
            return self._reply(state, mode, name, 404, b"not found", "text/plain")
        if mode == "500" or (mode == "500-once" and first):
            return self._reply(state, mode, name, 500, b"oops", "text/plain")
        if mode == "html":
            return self._reply(state, mode, name, 200, HTML_PAGE, "text/html; charset=utf-8")
        if mode == "html-binary":
            return self._reply(state, mode, name, 200, HTML_PAGE, "application/octet-stream")
        if mode == "slow":
            time.sleep(1.0)
        data = src.read_bytes()
        if mode == "corrupt":
            data = data[:100] + bytes([data[100] ^ 0xFF]) + data[101:]
        start, status, headers = 0, 200, {}
        requested = self.headers.get("Range", "")
        if requested.startswith("bytes=") and mode != "drop-no-range":
            start = int(requested[len("bytes="):].split("-")[0])
            status = 206
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        headers["Accept-Ranges"] = "bytes"
        body = data[start:]
        if mode in ("drop", "drop-no-range") and first:
            # Promise the whole body, deliver half, hang up: a dropped connection.
            return self._reply(state, mode, name, status, body, "application/gzip", headers,
                               cut=len(body) // 2)
        return self._reply(state, mode, name, status, body, "application/gzip", headers,
                           trickle=mode == "trickle")

    def _reply(self, state, mode, name, status, body, ctype, headers=None, cut=None,
               trickle=False) -> None:
        state.log.append((mode, name, self.headers.get("Range"), status))
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if trickle:
            for start in range(0, len(body), 100):
                self.wfile.write(body[start:start + 100])  # raises once the client has left
                time.sleep(0.1)
        else:
            self.wfile.write(body if cut is None else body[:cut])
        self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a "slow" handler may still be sleeping at teardown

    def handle_error(self, request, client_address) -> None:
        pass  # clients that give up mid-body (on purpose, in these tests) are not errors


@pytest.fixture
def mnist_server(mnist_files):
    """A fresh MnistServer on 127.0.0.1 serving the real MNIST files."""
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.state = MnistServer(f"http://127.0.0.1:{httpd.server_address[1]}", mnist_files)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02},
                              daemon=True)
    thread.start()
    try:
        yield httpd.state
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def mnist_dead_mirror() -> str:
    """An http URL on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/mnist/"


@pytest.fixture
def ctrl_c_in_epoch_3():
    """A context manager: a run inside it stops as if Ctrl-C hit just after epoch 3's first bias
    lines were written (KeyboardInterrupt from the bias CSV's writer)."""
    @contextmanager
    def interrupting():
        logged_bias = BiasCSV.__call__

        def ctrl_c(self, records):
            logged_bias(self, records)
            if records[0]["epoch"] == 3:
                raise KeyboardInterrupt

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(BiasCSV, "__call__", ctrl_c)
            yield

    return interrupting
