"""An .npz archive (a zip of .npy arrays) read as untrusted input: nothing is allocated, parsed or
waited on before it is known to be bounded.

Only a regular file is opened (a FIFO or a device is refused without waiting on it). Each
member's name and compression, and the dtype and shape of its .npy header, come from the
headers alone and are checked against the bytes the member declares, which are bounded by what
the file can hold (a deflated member's by MAX_RATIO times what it stores), and their sum by the
memory available. Only then is an array read; a JSON text is parsed within limits of size and
depth. A problem is a Bad naming the member.
"""
import json
import math
import os
import re
import stat
import zipfile
import zlib

import numpy as np

from .memory import available_bytes, size

MAX_MEMBERS = 100_000
MAX_NAME = 256  # characters in a member's name
# A deflated member may declare at most MAX_RATIO times its compressed size (or MIN_BOUND):
# real weights barely compress, while a zip bomb declares about 1000 times (2 MB -> 2 GB).
MAX_RATIO, MIN_BOUND = 64, 1 << 20
MAX_TEXT = 1 << 20  # characters in a text: a config, a history of thousands of epochs
MAX_JSON_DEPTH = 32  # a config nests 4 deep
JSON_SYNTAX = re.compile(r'["\\\[\]{}]')  # what json_depth looks at
FILE_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
              (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
              (stat.S_ISSOCK, "a socket"))


class Bad(Exception):
    """What is wrong with one member (None: with the file as a whole)."""

    def __init__(self, member, problem):
        super().__init__(problem)
        self.member, self.problem = member, problem

    def message(self, path):
        """What a user reads: the file, the member, what is wrong."""
        return f"{path}: {self.member + ': ' if self.member else ''}{self.problem}"


def open_regular(path):
    """The file at `path` opened for reading when it is a regular file (a link to one is
    followed): a folder, a FIFO or a device is refused, and opening never waits on one."""
    fd = None
    try:
        kind = os.stat(path).st_mode  # a FIFO's open would wait for a writer: look first
        if stat.S_ISREG(kind):
            # O_NONBLOCK: should a FIFO have taken the file's place since, open does not wait
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
                         | getattr(os, "O_BINARY", 0))
            kind = os.fstat(fd).st_mode
    except FileNotFoundError:
        target = f" (a link to {os.readlink(path)}, which does not exist)" if os.path.islink(
            path) else ""
        raise Bad(None, f"no such checkpoint{target}") from None
    except OSError as e:
        raise Bad(None, f"cannot be opened ({e.strerror or e})") from None
    if not stat.S_ISREG(kind):
        if fd is not None:
            os.close(fd)
        what = next((name for test, name in FILE_KINDS if test(kind)), "not a regular file")
        raise Bad(None, f"{what}; a checkpoint is a file, such as best.npz or checkpoint.npz in a "
                        "run's folder")
    return os.fdopen(fd, "rb")


def open_archive(f):
    """The zip archive a checkpoint is (np.savez writes one)."""
    start = f.read(16)
    f.seek(0)
    if start.startswith(b"\x93NUMPY"):
        raise Bad(None, "holds a single array (a .npy file), not a checkpoint")
    if not start.startswith(b"PK"):
        raise Bad(None, "not a checkpoint: a checkpoint is a zip archive (.npz), this file "
                        + (f"starts with {start!r}" if start else "is empty"))
    try:
        return zipfile.ZipFile(f)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError,
            NotImplementedError) as e:
        raise Bad(None, f"not a complete checkpoint ({shortened(e)}); the file may be truncated "
                        "or damaged") from None


class Member:
    """One array of the archive as its headers declare it, before any of it is read."""

    def __init__(self, info, group, name, dtype, shape, fortran, header_bytes):
        self.info, self.group, self.name, self.dtype, self.shape = info, group, name, dtype, shape
        self.fortran, self.header_bytes = fortran, header_bytes
        self.key = f"{group}/{name}"  # as np.load names it: affine1.W of the model, model/affine1.W

    def described(self):
        return f"{self.dtype} {self.shape}"


def listed(archive, file_bytes, holds):
    """[Member] of every member, named GROUP/NAME.npy with GROUP one of `holds` ({group: (dtype
    kinds, what they are in words)}), each name, compression and size checked, and the dtype and
    shape of its .npy header against the bytes it declares; their sum against the memory
    available."""
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise Bad(None, f"{len(infos):,} members; a checkpoint has at most {MAX_MEMBERS:,}")
    pattern = re.compile(rf"({'|'.join(map(re.escape, holds))})/(.+)\.npy", re.DOTALL)
    members, seen = [], set()
    for info in infos:
        match = pattern.fullmatch(info.filename)
        if not match or not match[2].isprintable() or len(match[2]) > MAX_NAME:
            raise Bad(f"member {info.filename[:MAX_NAME]!r}", "not a member a checkpoint has: "
                      f"GROUP/NAME.npy, GROUP one of {', '.join(holds)}, NAME printable")
        if info.filename in seen:
            raise Bad(info.filename[:-len(".npy")], "stored twice; each member is stored once")
        seen.add(info.filename)
        members.append(Member(info, match[1], match[2],
                              *header(archive, info, holds[match[1]], file_bytes)))
    declared, available = sum(m.info.file_size for m in members), available_bytes()
    if available is not None and declared > available:
        raise Bad(None, f"its members declare {size(declared)} in all, more than the "
                        f"{size(available)} this machine has available")
    return members


def header(archive, info, holds, file_bytes):
    """(dtype, shape, fortran order, header size) of one member, from its zip entry and its .npy
    header alone; holds: (the dtype kinds it may hold, in words)."""
    key = info.filename[:-len(".npy")]
    if info.flag_bits & 0x1:
        raise Bad(key, "encrypted; a checkpoint's members are plain")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise Bad(key, f"compressed with zip method {info.compress_type}; a checkpoint's members "
                       "are stored, or deflated")
    if info.compress_size > file_bytes:
        raise Bad(key, f"declares {info.compress_size:,} bytes in a file of {file_bytes:,}")
    stored = info.compress_type == zipfile.ZIP_STORED
    bound = info.compress_size if stored else max(MAX_RATIO * info.compress_size, MIN_BOUND)
    if info.file_size > bound:
        raise Bad(key, f"declares {info.file_size:,} bytes from {info.compress_size:,} "
                       + ("stored" if stored else f"deflated, more than {MAX_RATIO} to 1 (a zip "
                          "bomb's ratio; framework.save stores members uncompressed)"))
    try:
        with archive.open(info) as fp:
            shape, fortran, dtype = npy_header(fp)
            header_bytes = fp.tell()
    except DAMAGE as e:
        raise Bad(key, damaged(e)) from None
    except ValueError as e:
        raise Bad(key, str(e)) from None
    kinds, allowed = holds
    if (dtype.kind not in kinds or dtype.hasobject or dtype.fields or dtype.subdtype
            or not dtype.itemsize):
        raise Bad(key, f"holds dtype {dtype.descr if dtype.fields else dtype}; a checkpoint's "
                       f"{key.split('/')[0]} members hold {allowed}")
    data_bytes = math.prod(shape) * dtype.itemsize
    if header_bytes + data_bytes != info.file_size:
        raise Bad(key, f"its header declares {dtype} {shape}, {data_bytes:,} bytes, but the member "
                       f"holds {info.file_size - header_bytes:,}")
    if dtype.kind == "U" and dtype.itemsize // 4 > MAX_TEXT:
        raise Bad(key, f"holds {dtype} {shape}: texts of more than {MAX_TEXT:,} characters")
    return dtype, shape, fortran, header_bytes


def read(archive, member):
    """The member's array, read after its header into an array of the size the header declares
    (which listed() has found to be the size the member declares)."""
    data = bytearray(member.info.file_size - member.header_bytes)
    view, done = memoryview(data), 0
    try:
        with archive.open(member.info) as fp:
            fp.read(member.header_bytes)  # known to be a .npy header of this dtype and shape
            while done < len(data):
                chunk = fp.read(min(len(data) - done, 1 << 20))
                if not chunk:
                    raise EOFError(f"the data ends after {done:,} of {len(data):,} bytes")
                view[done:done + len(chunk)] = chunk
                done += len(chunk)
            fp.read(1)  # reaching the end checks the CRC
    except DAMAGE as e:
        raise Bad(member.key, damaged(e)) from None
    array = np.frombuffer(data, member.dtype)
    return array.reshape(member.shape, order="F" if member.fortran else "C")


def npy_header(fp):
    """(shape, fortran order, dtype) from the header of the .npy array at fp, read alone (numpy
    reads at most 10 KB of it, and never unpickles); fp is left where the data start. A header
    that is not one (another format version, text numpy cannot parse, a negative length) is a
    ValueError saying so; a damaged file raises one of DAMAGE."""
    try:
        version = np.lib.format.read_magic(fp)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f".npy format version {version[0]}.{version[1]} (1.0 or 2.0 "
                             "expected)")
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, fortran, dtype = read_header(fp)
    except DAMAGE:
        raise
    except Exception as e:  # noqa: BLE001 - numpy parses the untrusted header with ast and
        # tokenize, which raise SyntaxError, TokenError, RecursionError...: all mean this
        raise ValueError(f"not a readable .npy array ({shortened(e)})") from None
    if any(n < 0 for n in shape):
        raise ValueError(f"its header declares the shape {shape}, with a negative length")
    return shape, fortran, dtype


DAMAGE = (zipfile.BadZipFile, zlib.error, EOFError, OSError)  # what a damaged member raises


def damaged(error):
    return f"damaged ({shortened(error)}); the file may be truncated or damaged"


def shortened(error):
    """An exception as a message quotes it: its type and the start of its text."""
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text if len(text) <= 160 else text[:157] + '...'}"


def parse_json(value, key):
    """The value a JSON member holds, its nesting measured before it is parsed."""
    text = value.item()
    if json_depth(text, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise Bad(key, f"JSON nested more than {MAX_JSON_DEPTH} deep; a checkpoint's nests at "
                       f"most {MAX_JSON_DEPTH} deep")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:
        raise Bad(key, f"not valid JSON ({shortened(e)})") from None


def json_depth(text, limit):
    """How deeply the lists and objects of a JSON text nest (once past `limit`, limit + 1),
    counted in one pass over the characters that matter, without parsing it (brackets within
    strings do not count)."""
    depth = deepest = 0
    inside, escaped = False, -1  # in a string; the position a backslash escapes
    for match in JSON_SYNTAX.finditer(text):
        at, c = match.start(), match.group()
        if inside:
            if c == "\\" and at != escaped:
                escaped = at + 1
            elif c == '"' and at != escaped:
                inside = False
        elif c == '"':
            inside = True
        elif c in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > limit:
                break
        elif c in "]}":
            depth -= 1
    return deepest
