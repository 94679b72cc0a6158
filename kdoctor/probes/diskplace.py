"""Where a DiskIO probe may write, and the files it writes there.

A :class:`Place` is the test directory, opened safely under the worker's data directory:

* ``..`` components and absolute paths outside the data directory are refused;
* every component below the data directory is opened with ``O_NOFOLLOW`` relative to its parent's
  file descriptor, so a symlink (or a symlink swapped in later) can never lead out of it;
* files are created with ``O_EXCL | O_NOFOLLOW`` under unique names, relative to the directory's
  descriptor, and removed by :meth:`Place.close` whatever happened (timeout and cancellation
  included);
* the free space is checked before the first byte is written;
* files a killed run left behind (SIGKILL, power loss: nothing could remove them then) are swept
  when the directory is next opened, but only files whose name says they were made on this host
  by a process that no longer exists, so a run of another node sharing the storage, or a live
  one, is never touched.

Nothing here writes before :func:`open_place` has accepted the directory.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import socket
import uuid
from dataclasses import dataclass, field

from kdoctor.errors import ProbeError

MIB = 1024 * 1024
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_PREFIX = ".kdoctor-diskio-"


def _owner() -> str:
    """``<host>-<pid>``: who made a file, so a later run can tell an orphan from a live file."""
    return f"{socket.gethostname()}-{os.getpid()}"


def _file_name(tag: str) -> str:
    return f"{FILE_PREFIX}{tag}-{_owner()}-{uuid.uuid4().hex[:12]}"


def is_orphan(name: str, host: str) -> bool:
    """Whether ``name`` is a test file made on ``host`` by a process that is gone.

    Names are ``<prefix><tag>-<host>-<pid>-<12 hex>``. A pid that exists (perhaps reused) keeps
    the file: leaving one stale file is harmless, removing a running probe's file is not.
    """
    if not name.startswith(FILE_PREFIX):
        return False
    parts = name[len(FILE_PREFIX):].rsplit("-", 2)
    if len(parts) != 3:
        return False
    head, pid, token = parts
    if not (pid.isdigit() and len(token) == 12 and head.endswith(f"-{host}")):
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # exists, owned by someone else
        return False
    return False


def resolve(data_dir: str, directory: str) -> tuple[str, list[str]]:
    """The data directory (real path) and the components of ``directory`` below it.

    Raises:
        ProbeError: ``directory`` would lead out of the data directory.
    """
    if not data_dir:
        raise ProbeError("this worker has no data directory: start it with --data-dir or KDOCTOR_DATA_DIR")
    root = os.path.realpath(data_dir)
    if ".." in directory.split("/"):
        raise ProbeError(f"target.directory {directory!r} contains '..': it must stay under the data "
                         f"directory {root}")
    if os.path.isabs(directory):
        path = os.path.normpath(directory)
        for base in dict.fromkeys((os.path.normpath(data_dir), root)):
            if path == base or path.startswith(base.rstrip("/") + "/"):
                directory = os.path.relpath(path, base)
                break
        else:
            raise ProbeError(f"target.directory {directory!r} is outside this worker's data directory "
                             f"{root} (--data-dir / KDOCTOR_DATA_DIR); give a path inside it")
    parts = [p for p in os.path.normpath(directory).split("/") if p not in ("", ".")]
    return root, parts


@dataclass
class Place:
    """An opened test directory and the files created in it."""

    path: str
    fd: int
    filesystem: str
    created_dirs: list[tuple[int, str]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    _direct: bool | None = None

    def free_bytes(self) -> int:
        """Free space available to this process in the directory's filesystem."""
        stat = os.fstatvfs(self.fd)
        return stat.f_bavail * stat.f_frsize

    def check_free_space(self, needed: int, margin: int) -> None:
        """Refuse (before writing) when writing ``needed`` bytes would leave less than ``margin``."""
        free = self.free_bytes()
        if free - needed < margin:
            raise ProbeError(
                f"not enough free space in {self.path}: {free / MIB:.0f} MiB free, this run writes up "
                f"to {needed / MIB:.0f} MiB and request.freeSpaceMarginInMiB keeps {margin / MIB:.0f} "
                f"MiB free; lower request.sizeInMiB or the margin, or free some space"
            )

    def new_file(self, tag: str, direct: bool) -> tuple[int, str, bool]:
        """Create a uniquely named file; returns its descriptor, name and whether it is O_DIRECT.

        ``direct`` asks for O_DIRECT; the file is buffered when the filesystem refuses it.
        """
        name = _file_name(tag)
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        use_direct = direct and self.supports_direct()
        fd = os.open(name, flags | (os.O_DIRECT if use_direct else 0), 0o600, dir_fd=self.fd)
        self.files.append(name)
        return fd, name, use_direct

    def supports_direct(self) -> bool:
        """Whether the filesystem accepts O_DIRECT (probed once with one aligned 4 KiB write)."""
        if self._direct is None:
            name = _file_name("probe")
            flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            try:
                fd = os.open(name, flags | os.O_DIRECT, 0o600, dir_fd=self.fd)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                self._direct = False
            else:
                self.files.append(name)
                try:
                    with mmap.mmap(-1, 4096) as buf:  # mmap memory is page aligned
                        os.pwrite(fd, buf, 0)
                    self._direct = True
                except OSError as exc:
                    if exc.errno != errno.EINVAL:
                        raise
                    self._direct = False
                finally:
                    os.close(fd)
                    self.remove(name)
        return self._direct

    def remove(self, name: str) -> None:
        """Unlink one of our files (an open descriptor keeps working until closed)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=self.fd)
        if name in self.files:
            self.files.remove(name)

    def close(self) -> None:
        """Remove every file created here, then the directories this place created."""
        for name in list(self.files):
            self.remove(name)
        os.close(self.fd)
        for parent_fd, name in reversed(self.created_dirs):
            with contextlib.suppress(OSError):
                os.rmdir(name, dir_fd=parent_fd)
        for parent_fd, _ in self.created_dirs:
            with contextlib.suppress(OSError):
                os.close(parent_fd)
        self.created_dirs.clear()

    def sweep_orphans(self) -> list[str]:
        """Remove test files that killed runs on this host left here; returns their names."""
        host = socket.gethostname()
        swept = [n for n in os.listdir(self.fd) if is_orphan(n, host)]
        for name in swept:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=self.fd)
        return swept

    def leftovers(self) -> list[str]:
        """kdoctor test files present in the directory (for tests: none after close)."""
        return [n for n in os.listdir(self.fd) if n.startswith(FILE_PREFIX)]


def open_place(data_dir: str, directory: str) -> Place:
    """Open ``directory`` under ``data_dir`` without following symlinks; create missing parts.

    Raises:
        ProbeError: the directory leaves the data directory, is a symlink, is not a directory,
            or the data directory does not exist.
    """
    root, parts = resolve(data_dir, directory)
    try:
        fd = os.open(root, _DIR_FLAGS)
    except OSError as exc:
        raise ProbeError(f"data directory {root} cannot be opened ({exc.strerror}): create it or start "
                         "the worker with --data-dir / KDOCTOR_DATA_DIR pointing to a writable directory") from exc
    created: list[tuple[int, str]] = []
    path = root
    try:
        for part in parts:
            path = os.path.join(path, part)
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                os.mkdir(part, 0o700, dir_fd=fd)
                created.append((os.dup(fd), part))
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise ProbeError(f"target.directory: {path} is a symlink or not a directory; symlinks "
                                     "are not followed (they could lead out of the data directory)") from exc
                raise ProbeError(f"target.directory: cannot open {path}: {exc.strerror}") from exc
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        for parent_fd, name in reversed(created):
            with contextlib.suppress(OSError):
                os.rmdir(name, dir_fd=parent_fd)
            os.close(parent_fd)
        raise
    return Place(path=path, fd=fd, filesystem=filesystem_of(fd), created_dirs=created)


def filesystem_of(fd: int) -> str:
    """The filesystem type of an open file (from /proc/self/mountinfo by device number)."""
    st = os.fstat(fd)
    wanted = f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
    try:
        with open("/proc/self/mountinfo") as mounts:
            for line in mounts:
                fields = line.split()
                if len(fields) > 2 and fields[2] == wanted and " - " in line:
                    return line.split(" - ", 1)[1].split()[0]
    except OSError:
        pass
    return "unknown"
