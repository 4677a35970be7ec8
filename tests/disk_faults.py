"""Simulated read-only and full file systems under one directory, for tests that run as root
(where chmod does not stop writes) and without a tiny tmpfs.

Python-level writes are intercepted: open() / io.open() / os.open() for writing, os.mkdir,
os.replace / os.rename, os.unlink / os.remove / os.rmdir. Writers in Rust (safetensors'
save_file, tokenizers' save) bypass them; tests that need those use RLIMIT_FSIZE instead.
"""

import builtins
import errno
import io
import os
from pathlib import Path
from typing import Any, Callable, Optional

WRITE_MODES = set("wax+")
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def _under(root: Path, path: Any) -> bool:
    if isinstance(path, int):
        return False
    try:
        return Path(os.path.abspath(os.fspath(path))).is_relative_to(root)
    except TypeError:
        return False


def _error(code: int, path: Any) -> OSError:
    return OSError(code, os.strerror(code), os.fspath(path))


def read_only(monkeypatch, root: Path, code: int = errno.EACCES) -> None:
    """Make every change under root fail with `code` (EACCES: chmod a-w; EROFS: read-only mount)."""
    root = Path(os.path.abspath(root))
    real_open, real_os_open, real_mkdir = builtins.open, os.open, os.mkdir

    def fake_open(file, mode="r", *args, **kwargs):
        if _under(root, file) and WRITE_MODES & set(mode):
            raise PermissionError(code, os.strerror(code), os.fspath(file)) if code == errno.EACCES else _error(code, file)
        return real_open(file, mode, *args, **kwargs)

    def fake_os_open(path, flags, *args, **kwargs):
        if _under(root, path) and flags & WRITE_FLAGS:
            raise _error(code, path)
        return real_os_open(path, flags, *args, **kwargs)

    def fake_mkdir(path, *args, **kwargs):
        if _under(root, path) and not os.path.exists(path):  # an existing dir still gives EEXIST
            raise _error(code, path)
        return real_mkdir(path, *args, **kwargs)

    def refuse(real: Callable) -> Callable:
        def fake(*paths, **kwargs):
            for path in paths[:2]:
                if _under(root, path):
                    raise _error(code, path)
            return real(*paths, **kwargs)

        return fake

    for module in (builtins, io):
        monkeypatch.setattr(module, "open", fake_open)
    monkeypatch.setattr(os, "open", fake_os_open)
    monkeypatch.setattr(os, "mkdir", fake_mkdir)
    for name in ("replace", "rename", "unlink", "remove", "rmdir"):
        monkeypatch.setattr(os, name, refuse(getattr(os, name)))


class _Budget:
    def __init__(self, free: int) -> None:
        self.free = free


class _LimitedFile:
    """A file whose writes draw on a shared byte budget; past it, a partial write and ENOSPC."""

    def __init__(self, f, budget: _Budget, path: str) -> None:
        self._f, self._budget, self._path = f, budget, path

    def write(self, data):
        size = len(data.encode("utf8") if isinstance(data, str) else data)
        if size > self._budget.free:
            self._f.write(data[: self._budget.free])  # what fitted stays: a truncated file
            self._budget.free = 0
            self._f.flush()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self._path)
        self._budget.free -= size
        return self._f.write(data)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str):
        return getattr(self._f, name)

    def __iter__(self):
        return iter(self._f)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> Optional[bool]:
        return self._f.__exit__(*exc)


def disk_full(monkeypatch, root: Path, free: int) -> _Budget:
    """Writes under root may add `free` bytes in all; the write that goes past fails with ENOSPC."""
    root = Path(os.path.abspath(root))
    budget = _Budget(free)
    real_open = builtins.open

    def fake_open(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        if _under(root, file) and WRITE_MODES & set(mode):
            return _LimitedFile(f, budget, os.fspath(file))
        return f

    for module in (builtins, io):
        monkeypatch.setattr(module, "open", fake_open)
    return budget


def tree_digest(root: Path) -> dict:
    """relative path -> file bytes, for "nothing changed" checks."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(Path(root).rglob("*")) if p.is_file()}
