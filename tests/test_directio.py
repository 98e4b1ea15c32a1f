"""Image bytes written with direct I/O: every byte right at any size and offset, no page cache, and a fallback."""

from __future__ import annotations

import ctypes
import fcntl
import mmap
import os
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dashboard import directio
from dashboard.store import _write_temp

BLOCK = directio.BLOCK


@pytest.fixture(autouse=True)
def direct_io_on():
    """Each test starts with direct I/O on, and leaves it so (a fallback turns it off for the process)."""
    directio.set_enabled(True)
    yield
    directio.set_enabled(True)


def resident_pages(path) -> tuple[int, int]:
    """(pages of the file in the page cache, pages of the file), from mincore(2)."""
    size = os.path.getsize(path)
    pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    with open(path, "rb") as f, mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY) as m:
        vec = (ctypes.c_ubyte * pages)()
        addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mincore.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)
        assert libc.mincore(ctypes.c_void_p(addr), ctypes.c_size_t(size), vec) == 0, os.strerror(ctypes.get_errno())
        del addr
        return sum(b & 1 for b in vec), pages


def new_file(path):
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)


@settings(max_examples=60, deadline=None)
@given(size=st.one_of(st.integers(0, 3 * BLOCK + 1), st.sampled_from([BLOCK, 2 * BLOCK, 300_123, 1 << 20,
                                                                      (1 << 20) + 7, 3 * (1 << 20) + 4095])),
       offset=st.integers(0, 63), kind=st.sampled_from(["bytes", "bytearray", "view"]))
def test_every_byte_lands_at_any_size_and_alignment(tmp_path_factory, size, offset, kind):
    """Sizes around the block, odd offsets into the caller's buffer (an image inside a received payload)."""
    payload = bytearray(os.urandom(offset + size + 5))
    data = {"bytes": bytes(payload[offset:offset + size]), "bytearray": payload[offset:offset + size],
            "view": memoryview(payload).toreadonly()[offset:offset + size]}[kind]
    folder = tmp_path_factory.mktemp("d")
    tmp = _write_temp(folder / "x.jpg", data)
    with open(tmp, "rb") as f:
        assert f.read() == bytes(payload[offset:offset + size])


def test_whole_blocks_bypass_the_page_cache(tmp_path):
    """Written direct, the file's pages are not cached (but the tail's); written buffered, all of them are."""
    data = os.urandom(64 * BLOCK + 100)
    direct = _write_temp(tmp_path / "a.jpg", data)
    if not directio.enabled():
        pytest.skip("this file system refuses direct I/O (the fallback is tested below)")
    cached, pages = resident_pages(direct)
    assert pages == 65 and cached <= 1, f"{cached} of {pages} pages cached after a direct write"
    directio.set_enabled(False)
    buffered = _write_temp(tmp_path / "b.jpg", data)
    assert resident_pages(buffered) == (65, 65)
    with open(direct, "rb") as f:
        assert f.read() == data


def test_a_file_system_refusing_direct_io_gets_every_byte_buffered():
    """The kernel refuses O_DIRECT on a socket (EINVAL) as on a file system without it: the bytes go
    through the normal path, and direct I/O is not tried again in this process."""
    a, b = socket.socketpair()
    data = os.urandom(5 * BLOCK + 3)
    try:
        directio.write_all(a.fileno(), data)
        assert not directio.enabled()
        got = b""
        while len(got) < len(data):
            got += b.recv(len(data))
        assert got == data
        assert not fcntl.fcntl(a.fileno(), fcntl.F_GETFL) & os.O_DIRECT, "the descriptor's flags are restored"
    finally:
        a.close()
        b.close()


def test_direct_io_off_writes_buffered(tmp_path):
    directio.set_enabled(False)
    data = os.urandom(3 * BLOCK)
    path = tmp_path / "c"
    fd = new_file(path)
    try:
        directio.write_all(fd, data)
    finally:
        os.close(fd)
    assert path.read_bytes() == data and resident_pages(path) == (3, 3)


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.one_of(st.integers(0, 3 * BLOCK + 1), st.sampled_from([300_123, (1 << 20) + 7, 3 << 20])),
                      min_size=1, max_size=4),
       offset=st.integers(0, 63))
def test_a_loaded_copy_is_what_gets_written(tmp_path_factory, sizes, offset):
    """load() copies into the thread's aligned buffer (growing it past 1 MiB while an older view is held);
    write_all() of that view writes its bytes, and writing other bytes afterwards is not confused by it."""
    folder = tmp_path_factory.mktemp("l")
    views = []
    for k, size in enumerate(sizes):
        payload = bytearray(os.urandom(offset + size))
        data = memoryview(payload).toreadonly()[offset:]
        loaded = directio.load(data)
        views.append(loaded)  # held on purpose: a bigger buffer must not need the old one closed
        assert loaded.readonly and bytes(loaded) == bytes(data)
        tmp = _write_temp(folder / f"{k}.jpg", loaded)
        with open(tmp, "rb") as f:
            assert f.read() == bytes(data)
        other = os.urandom(size)  # not loaded: copied into the buffer over the loaded bytes, and written
        tmp = _write_temp(folder / f"{k}-other.jpg", other)
        with open(tmp, "rb") as f:
            assert f.read() == other


def test_a_loaded_view_is_written_from_the_buffer_without_a_second_copy(tmp_path, monkeypatch):
    """The view load() returned goes to the disk as it is (its whole blocks direct, from the aligned buffer);
    any other bytes are first copied into that buffer."""
    copies = []
    real = directio._buffer
    monkeypatch.setattr(directio, "_buffer", lambda size: (copies.append(size), real(size))[1])
    data = os.urandom(10 * BLOCK + 17)
    loaded = directio.load(data)
    assert copies == [len(data)]
    tmp = _write_temp(tmp_path / "a.jpg", loaded)
    assert copies == [len(data)], "the loaded bytes were copied again"
    _write_temp(tmp_path / "b.jpg", data)  # the same bytes, not the loaded view: copied
    assert copies == [len(data), 10 * BLOCK] or not directio.enabled()
    if directio.enabled():  # (before reading it back, which caches it)
        assert resident_pages(tmp)[0] <= 1, "the loaded bytes went through the page cache"
    with open(tmp, "rb") as f:
        assert f.read() == data
