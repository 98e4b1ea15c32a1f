"""The content-addressed image folder: ``images_dir/ab/abcdef....jpg`` (SHA-256), written durably.

Images are written atomically and durably *before* the row that names them
commits, so a committed case never points at a missing or half file, and a
file under its final name is always complete. A batch is group-committed
(Linux): every new image goes to a temp file without fsync, one ``syncfs``
makes all their bytes durable, they are renamed into place, a second
``syncfs`` makes the renames durable (:func:`commit_image_files`). Elsewhere
each file is fsynced before its rename and each folder after
(:func:`write_image_files`). File names are hashes, never anything a patient
could be recognised by.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import sys
from concurrent.futures import Executor
from pathlib import Path

from wire.durable import fsync_dir, write_new

from .. import directio

TMP_PREFIX = ".tmp-"


def image_path(images_dir: Path, sha256: str) -> Path:
    """Content-addressed location of an image: ``images_dir/ab/abcdef....jpg``."""
    return Path(_image_file(images_dir, sha256))


def _image_file(images_dir: Path | str, sha256: str) -> str:
    """:func:`image_path` as a string: the ingest's hot path (pathlib's objects cost more than the syscalls)."""
    return f"{os.fspath(images_dir)}/{sha256[:2]}/{sha256}.jpg"


class FsSync:
    """``syncfs(2)`` of the file system holding a folder: everything written there is durable on return.

    ``available`` is False where it cannot be trusted: no syncfs in the C library (not Linux), or a
    kernel older than 5.8, whose syncfs does not report writeback errors; callers then fsync file by
    file. Raises OSError (EIO after a failed writeback anywhere on that file system, ...) like fsync.
    """

    _syncfs = getattr(ctypes.CDLL(None, use_errno=True), "syncfs", None) if sys.platform == "linux" else None

    def __init__(self, folder: Path):
        """Open ``folder`` (which must exist) for syncing its file system."""
        self.fd = os.open(folder, os.O_RDONLY) if GROUP_COMMIT else -1
        self.available = self.fd >= 0

    def __call__(self) -> None:
        """Flush every dirty file, the journal and the device cache of that file system."""
        if self._syncfs(self.fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"syncfs: {os.strerror(err)}")

    def close(self) -> None:
        """Close the folder descriptor."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _syncfs_reports_errors() -> bool:
    """Linux >= 5.8: syncfs returns writeback errors (earlier kernels always return 0)."""
    try:
        major, minor = (int(x) for x in os.uname().release.split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= (5, 8)


#: Whether image writes are group-committed with syncfs here (else fsynced file by file).
GROUP_COMMIT = FsSync._syncfs is not None and _syncfs_reports_errors()


def _missing(images_dir: Path, files: dict[str, bytes]) -> dict[str, tuple[str, bytes]]:
    """The images not yet under their final name (SHA-256 -> (final path, bytes))."""
    todo = {}
    for sha, data in files.items():
        path = _image_file(images_dir, sha)
        try:
            if os.stat(path).st_size == len(data):
                continue  # a file under its final name is complete: it was durable before its rename
        except (FileNotFoundError, NotADirectoryError):
            pass
        todo[sha] = (path, data)
    return todo


def stage_image_files(images_dir: Path, files: dict[str, bytes]) -> dict[str, str]:
    """Write each image not yet stored to a fresh temp file beside its final name, *without* fsync.

    Returns SHA-256 -> temp path, for :func:`commit_image_files` (the ingest's
    decoder threads do this while the worker commits earlier cases). On error
    the temp files written so far are removed and the OSError raised.
    """
    staged: dict[str, str] = {}
    try:
        for sha, (path, data) in _missing(images_dir, files).items():
            staged[sha] = _write_temp(path, data)
    except BaseException:
        discard_staged(staged)
        raise
    return staged


def commit_image_files(images_dir: Path, files: dict[str, bytes], staged: dict[str, str], sync: FsSync) -> None:
    """Make images (SHA-256 -> bytes) durable under their final names, as one group commit.

    Durability argument: every new image is in a temp file (``staged`` ones
    reused, the others written now); ``sync()`` #1 makes all their bytes and
    inodes durable; only then is each renamed to its final name, so a final
    name never points at bytes that are not on disk, after any crash; ``sync()``
    #2 makes the renames durable, and also the names of files found already in
    place (left by an attempt or a process that died before its sync #2). The
    caller commits the rows naming them after this returns, and the ingest acks
    only after that commit. Two journal commits per batch instead of two
    fsyncs per file and one per folder. ``staged`` is always consumed: its temp
    files are renamed or removed (on error too), so a retry starts again from
    the bytes.
    """
    try:
        for sha in [s for s in staged if s not in files]:  # not needed (a duplicate case)
            _unlink(staged.pop(sha))
        # Staged files were missing when staged; should one have appeared since (another ingest
        # process), the rename replaces it with the same bytes.
        todo = _missing(images_dir, {sha: data for sha, data in files.items() if sha not in staged})
        for sha, (path, data) in todo.items():
            if sha not in staged:
                staged[sha] = _write_temp(path, data)
        if staged:
            sync()
            for sha in list(staged):
                os.replace(staged[sha], _image_file(images_dir, sha))
                del staged[sha]
        if files:
            sync()
    finally:
        discard_staged(staged)


def discard_staged(staged: dict[str, str]) -> None:
    """Remove staged temp files (never renamed) and empty ``staged``."""
    while staged:
        _unlink(staged.popitem()[1])


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass  # the temp-file sweep removes what is left


def write_image_files(images_dir: Path, files: dict[str, bytes], pool: Executor | None = None) -> None:
    """Write images (SHA-256 -> bytes) into the content-addressed folder durably; skip those present.

    Without syncfs (or for a single caller without a :class:`Store`): file by file.

    With a ``pool`` the files are written and fsynced in parallel, then each
    folder is fsynced once; raises the first OSError.
    """
    missing = _missing(images_dir, files)
    todo = [(Path(p), d) for p, d in missing.values()]
    # Folders of files already in place are fsynced too: a process that died between its rename and
    # its folder fsync left a name that is visible but not yet durable.
    present = [image_path(images_dir, sha).parent for sha in files if sha not in missing]
    # Every file is fsynced and renamed first, then each folder is fsynced once: the first folder
    # fsync commits the journal with all the renames, the others then cost little. Same guarantee
    # as temp/fsync/rename/folder fsync per file, with 4 journal commits for 3 images instead of 6.
    folders = list(dict.fromkeys([*(p.parent for p, _ in todo), *present]))
    if pool is None or len(todo) < 2:
        for p, d in todo:
            _write_file(p, d)
        for folder in folders:
            fsync_dir(folder)
        return
    list(pool.map(lambda pd: _write_file(*pd), todo))
    list(pool.map(fsync_dir, folders))


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` durably: temp file, fsync, rename, fsync of the folder."""
    _write_file(path, data)
    fsync_dir(path.parent)


_TEMP_TOKEN = os.urandom(4).hex()  # with the pid: no other process's temp names, even across restarts
_temp_count = itertools.count()


def _temp_name(name: str) -> str:
    """A fresh temp file name beside ``name`` (a counter, not a UUID: no random bytes from the kernel per file)."""
    return f"{TMP_PREFIX}{name}-{os.getpid()}-{_TEMP_TOKEN}-{next(_temp_count)}"


def _write_temp(path: Path | str, data: bytes) -> str:
    """Write ``data`` to a fresh temp file beside ``path`` without fsync (see :func:`commit_image_files`);
    return the temp file's path."""
    folder, name = os.path.split(os.fspath(path))
    tmp = f"{folder}/{_temp_name(name)}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileNotFoundError:  # first file in this folder
        os.makedirs(folder, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        directio.write_all(fd, data)  # whole blocks straight to the disk, not through the page cache
    except BaseException:
        os.close(fd)
        _unlink(tmp)
        raise
    os.close(fd)
    return tmp


def _write_file(path: Path, data: bytes) -> Path:
    """Write ``data`` to a temp file beside ``path``, fsync it and rename it into place (folder not synced)."""
    tmp = path.parent / _temp_name(path.name)
    try:
        write_new(tmp, data)
    except FileNotFoundError:  # first file in this folder (two syscalls fewer per file otherwise)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_new(tmp, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
