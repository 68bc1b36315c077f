"""File operations confined to one directory, safe against symlink and ``..`` tricks.

Every path is resolved component by component with ``openat(..., O_NOFOLLOW)`` from a
file descriptor of the sandbox directory, so a symlink (anywhere in the path, pointing
anywhere) is refused, and sandboxed code swapping a directory for a symlink between a
check and a use cannot redirect an operation outside the sandbox.

The tools act on regular files and directories only. A named pipe, a socket or a device
node that sandboxed code made is refused with :class:`SandboxPathError` before it is
opened, and every open is non-blocking and checked again on the open descriptor, so no
file swapped in meanwhile can make a tool wait for a writer that never comes.
"""

from __future__ import annotations

import contextlib
import difflib
import errno
import fnmatch
import os
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import Literal, NoReturn

from agentmem.errors import NotFoundError, SandboxError, SandboxPathError
from agentmem.services.sandbox.calls import tool
from agentmem.services.sandbox.models import (
    DirectoryEntry,
    Edit,
    EditOperation,
    FileContent,
    FileInfo,
    TreeNode,
)

__all__ = ["ConfinedFilesystem"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
# Added to every open of a file: never follow a symlink, never wait (on a FIFO), never make
# a terminal the service's.
_FILE_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY
# Bounds on how much a tree listing or a search returns.
_MAX_ENTRIES = 10_000

EntryType = Literal["file", "directory", "symlink", "other"]


def _special(mode: int) -> str | None:
    """What a file that is neither a regular file, a directory nor a symlink is."""
    for test, name in (
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return name
    return None


def _kind(mode: int) -> EntryType:
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISREG(mode):
        return "file"
    return "other"


class ConfinedFilesystem:
    """The file operations confined to ``root``: the tools of the ``filesystem`` type.

    Paths may be relative to ``root`` or absolute paths inside it. ``owner`` (when the
    service runs as root) becomes the owner of created files, so sandboxed code can change
    them. Reads are capped at ``max_read_bytes``, writes at ``max_write_bytes``.
    """

    def __init__(
        self, root: Path, *, owner: int | None, max_read_bytes: int, max_write_bytes: int
    ) -> None:
        self.root = root
        self._owner = owner
        self._max_read = max_read_bytes
        self._max_write = max_write_bytes

    # -- path resolution -------------------------------------------------------------

    def _parts(self, path: str) -> list[str]:
        if "\x00" in path:
            raise SandboxPathError(f"path {path!r} contains a NUL byte")
        pure = PurePosixPath(os.path.normpath(path or "."))
        if pure.is_absolute():
            try:
                pure = pure.relative_to(self.root)
            except ValueError:
                raise SandboxPathError(
                    f"path {path!r} is outside the sandbox directory {self.root}"
                ) from None
        parts = [p for p in pure.parts if p != "."]
        if parts and parts[0] == "..":
            raise SandboxPathError(f"path {path!r} leaves the sandbox directory {self.root}")
        return parts

    def _open_step(self, dir_fd: int, name: str, path: str) -> int:
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
        except OSError as exc:
            self._explain(exc, dir_fd, name, path)

    def _explain(self, exc: OSError, dir_fd: int, name: str, path: str) -> NoReturn:
        """Turn an OSError on ``name`` into a readable sandbox error."""
        is_link = False
        with contextlib.suppress(OSError):
            is_link = stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
        if is_link:
            raise SandboxPathError(
                f"path {path!r} goes through the symbolic link {name!r}; the filesystem "
                "sandbox never follows symbolic links"
            ) from None
        if exc.errno == errno.ENOENT:
            raise NotFoundError(f"{path!r} does not exist in the sandbox") from None
        if exc.errno == errno.ENOTDIR:
            raise SandboxError(f"{path!r}: {name!r} is not a directory") from None
        if exc.errno == errno.EISDIR:
            raise SandboxError(f"{path!r} is a directory") from None
        if exc.errno == errno.EEXIST:
            raise SandboxError(f"{path!r} already exists") from None
        if exc.errno in (errno.ENXIO, errno.ENODEV, errno.EACCES):
            # A FIFO without a reader, a socket, or a device on the nodev session mount.
            self._refuse_special(dir_fd, name, path)
        raise SandboxError(f"{path!r}: {exc.strerror}") from None

    def _refuse_special(self, dir_fd: int, name: str, path: str) -> None:
        """Raise :class:`SandboxPathError` if ``name`` is a FIFO, a socket or a device."""
        try:
            what = _special(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
        except OSError:
            return  # missing, or not reachable: the operation itself will say so
        if what is not None:
            raise SandboxPathError(
                f"{path!r} is {what}; the filesystem sandbox acts on regular files and "
                "directories only"
            )

    def _open_file(self, dir_fd: int, name: str, path: str, flags: int) -> int:
        """A descriptor of the regular file ``name`` (created if ``flags`` say so)."""
        self._refuse_special(dir_fd, name, path)
        try:
            fd = os.open(name, flags | _FILE_FLAGS, 0o644, dir_fd=dir_fd)
        except OSError as exc:
            self._explain(exc, dir_fd, name, path)
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            os.close(fd)
            if stat.S_ISDIR(mode):
                raise SandboxError(f"{path!r} is a directory")
            raise SandboxPathError(
                f"{path!r} is {_special(mode)}; the filesystem sandbox acts on regular files "
                "and directories only"
            )
        return fd

    @contextlib.contextmanager
    def _dir(self, parts: list[str], path: str) -> Iterator[int]:
        """A descriptor of the directory ``parts`` (relative to the root)."""
        fd = os.open(self.root, _DIR_FLAGS)
        try:
            for name in parts:
                next_fd = self._open_step(fd, name, path)
                os.close(fd)
                fd = next_fd
            yield fd
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def _parent(self, path: str) -> Iterator[tuple[int, str]]:
        """The descriptor of ``path``'s directory and its last component."""
        parts = self._parts(path)
        if not parts:
            raise SandboxError(f"{path!r} is the sandbox directory itself")
        with self._dir(parts[:-1], path) as fd:
            yield fd, parts[-1]

    def _absolute(self, parts: list[str]) -> str:
        return str(self.root.joinpath(*parts))

    def _chown(self, name: str, dir_fd: int) -> None:
        if self._owner is not None:
            os.chown(name, self._owner, self._owner, dir_fd=dir_fd, follow_symlinks=False)

    # -- reading ---------------------------------------------------------------------

    @tool
    def read_file(self, path: str) -> str:
        """The text of a file (UTF-8; undecodable bytes become U+FFFD)."""
        with self._parent(path) as (dir_fd, name):
            fd = self._open_file(dir_fd, name, path, os.O_RDONLY)
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if info.st_size > self._max_read:
                raise SandboxError(
                    f"{path!r} has {info.st_size} bytes, more than the {self._max_read} a read "
                    "may return (max_output_bytes)"
                )
            return handle.read(self._max_read).decode("utf-8", "replace")

    @tool
    def read_multiple_files(self, paths: list[str]) -> list[FileContent]:
        """Each file's text, or the error that prevented reading it."""
        results = []
        for path in paths:
            try:
                results.append(FileContent(path=path, content=self.read_file(path)))
            except (SandboxError, NotFoundError) as exc:
                results.append(FileContent(path=path, error=str(exc)))
        return results

    @tool
    def list_directory(self, path: str = ".") -> list[DirectoryEntry]:
        """The entries of a directory, sorted by name; symlinks are listed, not followed."""
        with self._dir(self._parts(path), path) as fd:
            return [
                DirectoryEntry(
                    name=entry.name, type=_kind(entry.stat(follow_symlinks=False).st_mode)
                )
                for entry in sorted(os.scandir(fd), key=lambda e: e.name)
            ]

    @tool
    def directory_tree(self, path: str = ".") -> TreeNode:
        """The directory and everything below it (at most 10,000 entries)."""
        parts = self._parts(path)
        budget = [_MAX_ENTRIES]

        def walk(fd: int, name: str) -> TreeNode:
            children = []
            for entry in sorted(os.scandir(fd), key=lambda e: e.name):
                budget[0] -= 1
                if budget[0] < 0:
                    raise SandboxError(f"{path!r} holds more than {_MAX_ENTRIES} entries")
                kind = _kind(entry.stat(follow_symlinks=False).st_mode)
                if kind == "directory":
                    child_fd = self._open_step(fd, entry.name, path)
                    try:
                        children.append(walk(child_fd, entry.name))
                    finally:
                        os.close(child_fd)
                else:
                    children.append(TreeNode(name=entry.name, type=kind))
            return TreeNode(name=name, type="directory", children=children)

        with self._dir(parts, path) as fd:
            return walk(fd, parts[-1] if parts else self.root.name)

    @tool
    def search_files(
        self, path: str, pattern: str, exclude_patterns: list[str] | None = None
    ) -> list[str]:
        """Absolute paths below ``path`` whose name matches ``pattern``, case-insensitively.

        ``pattern`` is a glob (``*.py``); without wildcards it matches as a substring.
        An entry whose relative path or name matches an ``exclude_patterns`` glob is skipped,
        with its contents.
        """
        if not any(c in pattern for c in "*?["):
            pattern = f"*{pattern}*"
        pattern = pattern.lower()
        excludes = [p.lower() for p in exclude_patterns or []]
        parts = self._parts(path)
        found: list[str] = []

        def excluded(rel: str, name: str) -> bool:
            return any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(name, p) for p in excludes)

        def walk(fd: int, rel_parts: list[str]) -> None:
            for entry in sorted(os.scandir(fd), key=lambda e: e.name):
                rel = "/".join([*rel_parts, entry.name])
                if excluded(rel.lower(), entry.name.lower()):
                    continue
                if fnmatch.fnmatch(entry.name.lower(), pattern):
                    found.append(self._absolute([*parts, *rel_parts, entry.name]))
                    if len(found) >= _MAX_ENTRIES:
                        return
                if entry.is_dir(follow_symlinks=False):
                    child_fd = self._open_step(fd, entry.name, path)
                    try:
                        walk(child_fd, [*rel_parts, entry.name])
                    finally:
                        os.close(child_fd)

        with self._dir(parts, path) as fd:
            walk(fd, [])
        return found

    @tool
    def get_file_info(self, path: str) -> FileInfo:
        """Type, size, times and permissions; a symlink is described, not followed."""
        parts = self._parts(path)
        if parts:
            with self._parent(path) as (dir_fd, name):
                try:
                    info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                except OSError as exc:
                    self._explain(exc, dir_fd, name, path)
        else:
            info = os.stat(self.root)
        return FileInfo(
            path=self._absolute(parts),
            type=_kind(info.st_mode),
            size=info.st_size,
            modified=info.st_mtime,
            accessed=info.st_atime,
            changed=info.st_ctime,
            permissions=format(stat.S_IMODE(info.st_mode), "o"),
        )

    @tool
    def list_allowed_directories(self) -> list[str]:
        """The one directory (absolute) every path must stay inside."""
        return [str(self.root)]

    # -- writing ---------------------------------------------------------------------

    @tool
    def write_file(self, path: str, content: str) -> None:
        """Create or overwrite a file with ``content`` (UTF-8). Its directory must exist."""
        data = content.encode("utf-8")
        if len(data) > self._max_write:
            raise SandboxError(
                f"{len(data)} bytes is more than the {self._max_write} a file may hold "
                "(file_size_bytes)"
            )
        with self._parent(path) as (dir_fd, name):
            # Truncated only once known to be a regular file.
            fd = self._open_file(dir_fd, name, path, os.O_WRONLY | os.O_CREAT)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.truncate(0)
                    handle.write(data)
            except OSError as exc:
                # ENOSPC: the session's disk space (disk_bytes, disk_files) is used up.
                raise SandboxError(f"cannot write {path!r}: {exc.strerror}") from None
            self._chown(name, dir_fd)

    @tool
    def edit_file(self, path: str, edits: Sequence[Edit], dry_run: bool = False) -> str:
        """Apply text replacements in order and return the unified diff.

        Each ``old_text`` must occur exactly once in the text at that point; otherwise
        nothing is written. With ``dry_run`` the diff is returned and the file left alone.
        """
        before = self.read_file(path)
        after = before
        operations = [EditOperation.model_validate(edit) for edit in edits]
        for number, edit in enumerate(operations, 1):
            count = after.count(edit.old_text) if edit.old_text else 0
            if count != 1:
                where = "does not occur" if count == 0 else f"occurs {count} times"
                raise SandboxError(
                    f"edit {number} of {path!r}: old_text {where}; it must occur exactly once"
                )
            after = after.replace(edit.old_text, edit.new_text, 1)
        diff = "".join(
            difflib.unified_diff(
                before.splitlines(keepends=True),
                after.splitlines(keepends=True),
                fromfile=path,
                tofile=path,
            )
        )
        if not dry_run:
            self.write_file(path, after)
        return diff

    @tool
    def create_directory(self, path: str) -> None:
        """Create a directory and its missing parents; an existing directory is fine."""
        parts = self._parts(path)
        fd = os.open(self.root, _DIR_FLAGS)
        try:
            for name in parts:
                try:
                    os.mkdir(name, 0o755, dir_fd=fd)
                    self._chown(name, fd)
                except FileExistsError:
                    pass
                except OSError as exc:
                    self._explain(exc, fd, name, path)
                next_fd = self._open_step(fd, name, path)
                os.close(fd)
                fd = next_fd
        finally:
            os.close(fd)

    @tool
    def move_file(self, source: str, destination: str) -> None:
        """Move or rename a file or directory; the destination must not exist."""
        with (
            self._parent(source) as (src_fd, src_name),
            self._parent(destination) as (dst_fd, dst_name),
        ):
            self._refuse_special(src_fd, src_name, source)
            try:
                os.stat(dst_name, dir_fd=dst_fd, follow_symlinks=False)
            except FileNotFoundError:
                pass
            else:
                raise SandboxError(f"cannot move to {destination!r}: it already exists")
            try:
                os.rename(src_name, dst_name, src_dir_fd=src_fd, dst_dir_fd=dst_fd)
            except OSError as exc:
                self._explain(exc, src_fd, src_name, source)
