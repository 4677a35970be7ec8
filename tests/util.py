"""Helpers the command-line tests share: run a command in this process, fingerprint a directory,
damage a copy of a file."""

import hashlib
import shutil
from pathlib import Path

from spacy_mlm.cli import main as cli_main


def digest(root: Path) -> dict:
    """relative path -> sha256 of every file under root (a file this process may not read: its size
    and modification time)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            try:
                out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
            except PermissionError:
                stat = p.stat()
                out[str(p.relative_to(root))] = f"unreadable, {stat.st_size} bytes, mtime {stat.st_mtime_ns}"
    return out


def run_cli(args, capsys):
    """(exit status, stdout, stderr) of `spacy-mlm ARGS` run in this process. An exception that
    escapes main() (a traceback for the user) fails the test with that exception."""
    try:
        cli_main([str(a) for a in args], prog_name="spacy-mlm")
        code = 0
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def copy_with(src: Path, dst: Path, edit) -> Path:
    shutil.copytree(src, dst)
    edit(dst)
    return dst


def truncate(path: Path) -> None:
    """Cut a file to half its size, as an interrupted copy or download leaves it."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
