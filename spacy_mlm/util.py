"""Crash-safe writes: files and directories replaced atomically, disk errors that say what to do.

A SIGKILL, a full disk or a read-only directory must never leave a half-written checkpoint or
pipeline where a complete one is expected. Everything is written under a temporary sibling
name, flushed to disk, then renamed into place, so a reader sees the old version or the new
one, never a mix.
"""

import errno
import os
import re
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Union

from .errors import DiskWriteError, SpacyMlmError

# errno values that mean "no room" and "not allowed to write here".
NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
NOT_WRITABLE = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})
TMP_PREFIX, OLD_PREFIX = ".tmp-", ".old-"
IN_PLACE_HINT = ("nlp.to_disk() writes in place, so the directory may now mix old and new files: save with "
                 "spacy_mlm.util.safe_to_disk(nlp, path), which keeps the previous pipeline until the new one "
                 "is complete.")
# Rust writers (safetensors, tokenizers) report OS errors only as text: "... (os error 28)".
_RUST_OS_ERROR = re.compile(r"\(os error (\d+)\)")


def as_os_error(error: BaseException, filename: Optional[Union[str, Path]] = None) -> Optional[OSError]:
    """The OSError behind error: itself, or one that a Rust writer reported only as text."""
    if isinstance(error, OSError):
        return error
    match = _RUST_OS_ERROR.search(str(error)) if not isinstance(error, SpacyMlmError) else None
    if match is None:
        return None
    code = int(match.group(1))
    return OSError(code, os.strerror(code), str(filename) if filename is not None else None)


def disk_write_error(error: OSError, path: Union[str, Path], what: str, hint: str = "") -> DiskWriteError:
    """A DiskWriteError for a failed write of `what` at `path`, naming the cause and the fix."""
    path = Path(path)
    strerror = error.strerror or (os.strerror(error.errno) if error.errno is not None else "unknown error")
    reason = f"[Errno {error.errno}] {strerror}" + (f": '{error.filename}'" if error.filename else "")
    if error.errno in NO_SPACE:
        cause = "the disk is full (or a quota or file-size limit was reached)"
        fix = f"free space on the file system that holds {path} (`df -h {path.parent}`), or write somewhere else"
    elif error.errno in NOT_WRITABLE:
        cause = "the directory is read-only or not writable by this user"
        where = _existing_parent(Path(error.filename) if error.filename else path)
        fix = f"make {where} writable (chmod u+w, chown, or remount it read-write), or write somewhere else"
    else:
        cause, fix = "the write failed", f"check that {path.parent} exists and is a writable directory"
    message = f"Could not write {what} to {path}: {cause} ({reason}). Fix: {fix}."
    return DiskWriteError(message + (f" {hint}" if hint else ""), error.errno, error.filename or str(path))


@contextmanager
def disk_writes(what: str, path: Union[str, Path], hint: Union[str, Callable[[], str]] = "") -> Iterator[None]:
    """Turn an OS error raised inside the block (also one from a Rust writer) into a DiskWriteError."""
    try:
        yield
    except DiskWriteError:
        raise
    except Exception as e:
        os_error = as_os_error(e, path)
        if os_error is None:
            raise
        raise disk_write_error(os_error, path, what, hint() if callable(hint) else hint) from e


def fsync_path(path: Path) -> None:
    """Flush a file, or a directory's entries, to disk (a no-op where directories can't be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on directories: nothing more we can do
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            fsync_path(Path(dirpath) / name)
        fsync_path(Path(dirpath))


def atomic_write_bytes(path: Union[str, Path], data: bytes) -> None:
    """Replace the file at path with data: a crash leaves the old file or the new one."""
    path = Path(path)
    tmp = path.parent / f"{TMP_PREFIX}{path.name}.{uuid.uuid4().hex[:8]}"
    try:
        with tmp.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise
    fsync_path(path.parent)


def atomic_write_text(path: Union[str, Path], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf8"))


def write_dir_atomically(target: Path, write: Callable[[Path], Any]) -> None:
    """Write a directory under a temporary sibling name, then swap it in: a kill, a full disk or
    an error in `write` leaves the previous directory (or none) at `target`, never a partial one."""
    target = Path(target)
    tmp = target.parent / f"{TMP_PREFIX}{target.name}"
    _remove(tmp)  # left by a killed run
    tmp.mkdir(parents=True)
    try:
        write(tmp)
        fsync_tree(tmp)
        replace_dir(tmp, target)
    except BaseException:
        _remove(tmp)  # also frees the space a failed write took
        raise


def replace_dir(src: Path, target: Path) -> None:
    """Move the directory src to target, replacing what is there. Uses an atomic exchange
    (Linux renameat2) when it can; otherwise target is renamed aside first, so a kill between
    the two renames leaves it at .old-<name>, which restore_replaced() puts back."""
    old = target.parent / f"{OLD_PREFIX}{target.name}"
    _remove(old)
    if not target.exists():
        os.replace(src, target)
    elif _exchange(src, target):
        _remove(src)  # now holds the previous version
    else:
        os.replace(target, old)
        os.replace(src, target)
        _remove(old)
    fsync_path(target.parent)


def restore_replaced(target: Path) -> None:
    """Undo a replace_dir that was killed between its two renames; drop stale temporary copies."""
    target = Path(target)
    old = target.parent / f"{OLD_PREFIX}{target.name}"
    if old.is_dir() and not target.exists():
        os.replace(old, target)
    _remove(old)
    _remove(target.parent / f"{TMP_PREFIX}{target.name}")


def safe_to_disk(nlp, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> Path:
    """nlp.to_disk(path), crash-safe: spaCy writes a pipeline in place, so a full disk or a kill
    midway leaves a mix of old and new files. This writes a sibling temporary directory and
    swaps it in, so `path` holds the previous pipeline or the new one. A read-only or full disk
    raises a DiskWriteError (an OSError and a SpacyMlmError) naming the path and the fix.

    RETURNS (Path): the path the pipeline was saved to.
    """
    return safe_write_dir(path, lambda tmp: nlp.to_disk(tmp, exclude=exclude), "the pipeline",
                          "The previous pipeline at that path, if any, is unchanged.")


def safe_write_dir(path: Union[str, Path], write: Callable[[Path], Any], what: str, hint: str = "") -> Path:
    """Write the directory `path` with write(tmp) into a temporary sibling and swap it in
    (write_dir_atomically). A failed write raises a DiskWriteError naming `what`, the path, the
    cause and the fix, followed by `hint`; `path` keeps its previous contents.

    RETURNS (Path): path.
    """
    path = Path(path)
    try:
        with disk_writes(what, path, hint):
            # The temporary copy is a sibling, so the parent must be writable; a target directory
            # made read-only is respected, although a rename could replace it.
            for folder in (_existing_parent(path.parent), path):
                if folder.exists() and not os.access(folder, os.W_OK):
                    raise OSError(errno.EACCES, os.strerror(errno.EACCES), str(folder))
            restore_replaced(path)
            write_dir_atomically(path, write)
    except DiskWriteError as e:
        if str(e).startswith(f"Could not write {what} "):
            raise
        # Raised by a writer inside the temporary copy (a pipe's in-place hint does not apply here).
        code = e.errno if e.errno is not None else errno.EIO
        raise disk_write_error(OSError(code, os.strerror(code), e.filename), path, what, hint) from e
    return path


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths with renameat2(RENAME_EXCHANGE); False where unsupported."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except Exception:  # no libc with renameat2 (macOS, Windows, musl without it)
        return False
    at_fdcwd, rename_exchange = -100, 2
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EXDEV, errno.ENOTSUP):
        return False  # not supported by this kernel or file system: fall back to two renames
    raise OSError(code, os.strerror(code), str(b))


def _existing_parent(path: Path) -> Path:
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        try:
            path.unlink()
        except OSError:
            pass
