"""Atomic file and directory writes: nothing half-written is ever left under the final name.

Directories are written as a hidden sibling (`.NAME.xlm-XXXX.tmp`) that replaces `NAME` in one
step once complete: on Linux with renameat2(RENAME_EXCHANGE), so a reader (or a process killed at
any point) sees the old directory or the new one, never a mix; elsewhere with two renames, between
which `NAME` is briefly absent and the old directory waits as `.NAME.xlm-XXXX.old` (the next save
puts it back if the new one never arrived). Writers of one parent directory take turns for the
swap (an flock on the parent), and each holds an flock on its own temporary directory while it
fills it, so that the next save can tell an abandoned one (its writer was killed) from one in use
and remove it.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import os
import re
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator

try:
    import fcntl
except ImportError:  # Windows: no locks; temporary directories are then left for the user to delete
    fcntl = None  # type: ignore[assignment]


@functools.lru_cache(maxsize=None)
def _umask() -> int:
    mask = os.umask(0o022)  # the only way to read it; read once
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path beside `path`; rename it to `path` only if the block succeeds."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual mode
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


# --- directories --------------------------------------------------------------------------------

_TMP_TAG = ".xlm-"
#: temporary directories this process is filling: a save into one of them writes straight in
_ACTIVE: set[str] = set()
_ACTIVE_LOCK = threading.Lock()


def is_atomic_tmp_dir(path: str | os.PathLike) -> bool:
    """Whether `path` is a temporary directory that an `atomic_directory` block of this process fills."""
    with _ACTIVE_LOCK:
        return os.path.realpath(os.fspath(path)) in _ACTIVE


def _leftover_pattern(name: str) -> re.Pattern[str]:
    return re.compile(r"\." + re.escape(name) + re.escape(_TMP_TAG) + r"[A-Za-z0-9_]+\.(tmp|old)\Z")


def _flock(fd: int, blocking: bool = True) -> bool:
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    except OSError as err:  # a filesystem without flock: go on without the lock
        return err.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)
    return True


@contextlib.contextmanager
def _parent_lock(parent: str) -> Iterator[None]:
    """Exclusive among the savers of `parent` (an flock on the directory itself: nothing left behind)."""
    if fcntl is None:
        yield
        return
    fd = os.open(parent, os.O_RDONLY)
    try:
        _flock(fd)
        yield
    finally:
        os.close(fd)  # releases the lock


def remove_leftovers(path: str | os.PathLike) -> list[str]:
    """Remove what killed saves into `path` left beside it; returns what was removed or restored.

    A `.NAME.xlm-*.tmp` directory whose writer is gone (no flock held on it) is deleted; a
    `.NAME.xlm-*.old` one (the old directory of a two-rename swap cut short) is renamed back to
    `NAME` when `NAME` is absent, else deleted. Directories still being written are left alone.
    """
    path = os.path.abspath(os.fspath(path))
    parent, name = os.path.split(path)
    pattern = _leftover_pattern(name)
    done = []
    try:
        entries = sorted(os.listdir(parent))
    except FileNotFoundError:
        return done
    for entry in entries:
        match = pattern.match(entry)
        if not match:
            continue
        full = os.path.join(parent, entry)
        try:
            fd = os.open(full, os.O_RDONLY)
        except OSError:
            continue
        try:
            if fcntl is None or not _flock(fd, blocking=False):
                continue  # in use (or no way to tell): leave it
            if match.group(1) == "old" and not os.path.exists(path):
                os.rename(full, path)
            else:
                shutil.rmtree(full, ignore_errors=True)
            done.append(full)
        finally:
            os.close(fd)
    return done


def _renameat2_exchange() -> Callable[[str, str], bool] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return None
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    at_fdcwd, rename_exchange = -100, 2

    def exchange(a: str, b: str) -> bool:
        """Swap the two paths in one step; False where the kernel or filesystem cannot."""
        if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
            return True
        err = ctypes.get_errno()
        if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
            return False
        raise OSError(err, f"cannot swap {a} and {b}: {os.strerror(err)}")

    return exchange


_exchange = _renameat2_exchange()


def _carry_over(old: str, new: str, keep: Callable[[str], bool]) -> None:
    """Hard-link (else copy) into `new` the entries of `old` that `keep` accepts and `new` lacks; in a
    directory both have (saved_model/ holding a new version beside the old ones), the same one level down."""
    present = set(os.listdir(new))
    for entry in os.listdir(old):
        if not keep(entry):
            continue
        source, target = os.path.join(old, entry), os.path.join(new, entry)
        if entry in present:
            if all(os.path.isdir(p) and not os.path.islink(p) for p in (source, target)):
                _carry_over(source, target, keep)
            continue
        if os.path.islink(source):
            os.symlink(os.readlink(source), target)
        elif os.path.isdir(source):
            shutil.copytree(source, target, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(source, target)


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _commit(tmp: str, path: str, keep: Callable[[str], bool] | None) -> None:
    """Make the complete directory `tmp` be `path` (carrying over what `keep` accepts)."""
    if not os.path.isdir(path):
        if os.path.lexists(path):
            raise FileExistsError(f"cannot write the directory {path}: a file of that name exists")
        os.rename(tmp, path)
        return
    if keep is not None:
        _carry_over(path, tmp, keep)
    cwd = None
    with contextlib.suppress(OSError):
        cwd = os.getcwd()
    if _exchange is not None and _exchange(tmp, path):
        shutil.rmtree(tmp, ignore_errors=True)  # now the old directory
    else:
        old = tmp[: -len(".tmp")] + ".old"
        os.rename(path, old)
        try:
            os.rename(tmp, path)
        except BaseException:
            os.rename(old, path)
            raise
        shutil.rmtree(old, ignore_errors=True)
    if cwd is not None and (cwd == path or cwd.startswith(path + os.sep)):
        # this process stood in the directory just replaced: follow the name into the new one
        inside = os.path.join(path, os.path.relpath(cwd, path))
        with contextlib.suppress(OSError):
            os.chdir(inside if os.path.isdir(inside) else path)


@contextlib.contextmanager
def atomic_save_directory(path: str | os.PathLike, keep: Callable[[str], bool] | None = None) -> Iterator[str]:
    """Yield an empty temporary directory that becomes `path` in one step if the block succeeds.

    If `path` is already a directory, the entries of it that `keep(name)` accepts and the new
    content lacks are carried over (hard links; copies where links fail); with `keep=None` the new
    directory replaces the old one whole. `path` given as a symbolic link: the directory it points
    to is the one replaced. Concurrent saves into one `path` each produce a complete directory and
    the last to finish is the one that stays. Inside the block, `is_atomic_tmp_dir(tmp)` is true,
    so that nested savers write straight into it. Where the parent directory is not writable, the
    block writes into `path` itself (per-file atomicity only).
    """
    path = os.path.realpath(os.fspath(path))
    parent, name = os.path.split(path)
    if os.path.lexists(path) and not os.path.isdir(path):
        raise NotADirectoryError(f"cannot write the directory {path}: it is a file")
    os.makedirs(parent, exist_ok=True)
    if not os.access(parent, os.W_OK | os.X_OK):
        if not os.path.isdir(path):
            raise PermissionError(errno.EACCES, f"cannot create {path}: its parent directory is not writable")
        yield path
        return
    with _parent_lock(parent):
        remove_leftovers(path)
        tmp = tempfile.mkdtemp(prefix=f".{name}{_TMP_TAG}", suffix=".tmp", dir=parent)
        fd = os.open(tmp, os.O_RDONLY)
        _flock(fd)
    try:
        mode = os.stat(path).st_mode & 0o7777 if os.path.isdir(path) else 0o777 & ~_umask()
        os.chmod(tmp, mode)  # mkdtemp makes 0700 directories
        with _ACTIVE_LOCK:
            _ACTIVE.add(tmp)
        try:
            yield tmp
        finally:
            with _ACTIVE_LOCK:
                _ACTIVE.discard(tmp)
        with _parent_lock(parent):
            _commit(tmp, path, keep)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, force: bool = False) -> Iterator[str]:
    """Yield a temporary directory beside `path` and move it to `path` only if the block succeeds.

    An existing `path` is an error unless `force`; with `force` it is replaced whole, only after
    the new content is complete, so a failure (or a kill) leaves the old directory untouched.
    """
    path = os.path.abspath(os.fspath(path))
    if os.path.exists(path) and not force:
        raise FileExistsError(f"output directory {path} already exists (use --force / force=True to replace it)")
    with atomic_save_directory(path) as tmp:
        yield tmp
