"""Writing image bytes with direct I/O (``O_DIRECT``): from the process's memory to the disk, not via the page cache.

The centre writes each image once and reads it rarely, hours later, when a
dermatologist opens the case. Through the page cache every megabyte is first
copied into freshly allocated cache pages, then written back by the kernel's
threads, and stays cached, pushing out what is read (the database). With
direct I/O the disk takes the bytes from a reused, page-aligned buffer of the
writing thread: one copy in memory that stays warm, no cache pages. On the
2-core build VM, once its page cache's fresh pages became dear (after a few GB
written), buffered writes cost the ingest 5.9-6.5 ms of CPU per case and direct
ones 2.9-3.0 ms: 175-187 vs 343-369 cases/s; before that both were equal
(``bench/ingest_throughput.py --direct-io both``; README, "Benchmarks").

Direct I/O needs block-aligned offsets and lengths: the whole 4 KiB blocks go
direct, the last partial block through the page cache. The ingest copies each
image into that buffer first (:func:`load`), hashes the copy while it is in the
CPU's cache and writes it from there: the received bytes are read from memory
once, for the copy, instead of once more for the hash. Durability is unchanged:
:func:`dashboard.store.commit_image_files` syncs the file system (the device's
cache, the inodes and the tail) before any image is renamed into place.

Where direct I/O is refused (a file system without it: ``EINVAL``) the bytes go
through the page cache instead, and direct I/O is not tried again in this
process. Linux only; elsewhere every write is buffered.
"""

from __future__ import annotations

import errno
import mmap
import os
import threading

try:
    import fcntl
except ImportError:  # pragma: no cover - not Unix: every write is buffered
    fcntl = None

#: Direct I/O's unit: offsets, lengths and the buffer's address are multiples of it (a page, which
#: covers devices of 512-byte and of 4 KiB logical blocks).
BLOCK = 4096
_O_DIRECT = getattr(os, "O_DIRECT", 0) if fcntl is not None else 0
_local = threading.local()
_state = {"enabled": bool(_O_DIRECT)}


def enabled() -> bool:
    """Whether :func:`write_all` still tries direct I/O in this process."""
    return _state["enabled"]


def set_enabled(on: bool) -> None:
    """Turn direct I/O on or off for this process (off: every write goes through the page cache)."""
    _state["enabled"] = bool(on) and bool(_O_DIRECT)


def write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    """Write all of ``data`` at the start of ``fd``, a new regular file opened for writing, without fsync.

    Whole blocks go with direct I/O when the file system takes it; the rest, and
    everything where it does not, through the page cache. Raises OSError
    (ENOSPC, EIO...) as ``os.write`` does; the file is then partly written.
    """
    loaded = data is getattr(_local, "loaded", None)  # from load(): its bytes are in the buffer already
    view = memoryview(data).cast("B")
    done = _write_direct(fd, view, loaded) if _state["enabled"] and len(view) >= BLOCK else 0
    rest = view[done:]
    while rest:
        rest = rest[os.write(fd, rest):]


def load(data: bytes | bytearray | memoryview) -> memoryview:
    """Copy ``data`` into this thread's page-aligned buffer; return a read-only view of the copy.

    For bytes that are to be hashed and then written: hashing the copy, fresh in the CPU's cache,
    costs less than hashing the received bytes from memory, and :func:`write_all` then writes the
    view's whole blocks straight from the buffer, without copying them again. The view is this
    thread's until its next :func:`load` or :func:`write_all` of other bytes, which overwrite the buffer.
    """
    view = memoryview(data).cast("B")
    buf = _buffer(len(view))
    buf[:len(view)] = view
    loaded = _local.loaded = memoryview(buf)[:len(view)].toreadonly()
    return loaded


def _buffer(size: int) -> mmap.mmap:
    """This thread's page-aligned buffer of at least ``size`` bytes (kept, so its pages stay populated)."""
    buf = getattr(_local, "buf", None)
    if buf is None or len(buf) < size:
        # The old buffer is not closed: a view of it may still be held; it goes with the last one.
        _local.loaded = None
        buf = _local.buf = mmap.mmap(-1, max(size, 1 << 20))
    return buf


def _write_direct(fd: int, view: memoryview, loaded: bool = False) -> int:
    """Write the whole blocks of ``view`` (``loaded``: the view :func:`load` returned) with direct I/O; return how
    many bytes were written (a block multiple, 0 where the file system refuses direct I/O). ``fd`` is left without
    O_DIRECT."""
    bulk = len(view) - len(view) % BLOCK
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    done = 0
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | _O_DIRECT)  # EINVAL where the file system has no direct I/O
        if not loaded:
            buf = _buffer(bulk)
            _local.loaded = None  # overwritten
            buf[:bulk] = view[:bulk]
        with memoryview(_local.buf) as mv:
            while done < bulk:
                n = os.write(fd, mv[done:bulk])
                done += n
                if n % BLOCK:  # a short write off a block boundary: the rest goes buffered
                    break
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        set_enabled(False)  # refused (no direct I/O, or an alignment this device does not take): buffered from here
    finally:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags)
    return done
