"""Nothing lost: the one rule every command that writes follows (convert, tokenizer, init-model,
init-config, pretrain, quantize, and the copy steps of the project's workflows).

A command never deletes or replaces anything it did not create:

- An output that is an input, lies inside one or holds one (a parent directory of an input) is
  an error, with or without --force: writing it would replace, change or delete that input.
  Inputs are compared as resolved paths (symbolic links followed); a hub name or a path that does
  not exist cannot be harmed and is not compared.
- An output file that exists is replaced only with --force, atomically (util.atomic_write_*).
- An output directory may be new, empty, or a previous output of the same command. Any other
  non-empty directory is an error unless --force. A directory that holds nothing but what a
  killed write left (.tmp-*, .old-*) counts as empty.
- A previous output is recognised by a marker file inside it, OUTPUT_MARKER
  (`.spacy-mlm-output.json`), which write_output adds to every directory it writes: the
  command's name and the entries (top-level names) it wrote. pretrain's marker is its run file,
  run.json. The marker decides, not the look of the files: a pipeline, checkpoint or tokenizer
  directory from anywhere else (another tool, a download, a spacy-mlm without markers) is not
  this command's, so replacing it needs --force once; a copy of an output keeps its marker.
- write_output writes the whole new directory beside the old one (`.tmp-<name>`) and swaps it in
  with one rename (util.replace_dir): a kill, a full disk or an error leaves the old directory or
  the new one, never a mix (a shell whose working directory was the old one must `cd` again). What it replaces is its own: the entries the previous output's marker
  lists and, under --force in a directory it did not write, the entries with the names of those
  it writes. Every other entry (a user's notes or data, another tool's files) is carried into the
  new directory (hard links, or copies where the file system has none) and survives unchanged.
"""

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, FrozenSet, Iterable, List, Optional, Union

from .errors import SpacyMlmError
from .util import OLD_PREFIX, TMP_PREFIX, atomic_write_text, safe_write_dir

OUTPUT_MARKER = ".spacy-mlm-output.json"
PathLike = Union[str, Path]
NEW, OWN, FORCED = "new", "own", "forced"


@dataclass(frozen=True)
class Output:
    """A checked output: its path, the command writing it, and what is there now: NEW (nothing, or
    an empty directory), OWN (a previous output of this command) or FORCED (something else, which
    --force allows this command to write over)."""

    path: Path
    command: str
    state: str
    previous: FrozenSet[str] = frozenset()  # the entries the previous output's marker lists


def check_output(
    output: PathLike,
    inputs: Iterable[Optional[PathLike]] = (),
    *,
    command: str,
    force: bool = False,
    kind: str = "dir",
    marker: str = OUTPUT_MARKER,
    conflict: Optional[Callable[[Path], Optional[str]]] = None,
) -> Output:
    """Check that `command` may write `output` (kind "dir" or "file") before it does any work.

    inputs: the paths the command reads (None and names that are not paths are skipped).
    marker: the file that makes a directory a previous output of `command`: OUTPUT_MARKER (its
        "command" must be `command`) or a file of the command's own, such as pretrain's run.json.
    conflict: returns why a non-empty directory must not be written to even with --force, or None.
    Raises a SpacyMlmError naming the path and the fix; RETURNS the Output to pass to write_output.
    """
    path = Path(output)
    for source in inputs:
        problem = _overlap(path, source)
        if problem is not None:
            raise SpacyMlmError(problem)
    if kind == "file":
        if path.is_dir():
            raise SpacyMlmError(f"The output {path} is a directory: give the path of a file to write.")
        if not (path.exists() or path.is_symlink()):
            return Output(path, command, NEW)
        if not force:
            raise SpacyMlmError(f"The output file {path} already exists: pass --force to replace it, or write to "
                                "another path.")
        return Output(path, command, FORCED)
    if path.exists() and not path.is_dir():
        raise SpacyMlmError(f"The output directory {path} is a file: write to a new or empty directory "
                            "(--force does not replace a file with a directory).")
    entries = _entries(path)
    if not entries:
        return Output(path, command, NEW)
    reason = conflict(path) if conflict is not None else None
    if reason:
        raise SpacyMlmError(reason)
    previous = _own_entries(path, command, marker)
    if previous is not None:
        return Output(path, command, OWN, frozenset(previous))
    if not force:
        other = _writer(path)
        whose = f"is an output of `{other}`" if other and other != command else f"is not an output of `{command}`"
        raise SpacyMlmError(
            f"The output directory {path} is not empty ({_names(entries)}) and {whose}. Write to a new or "
            f"empty directory, or pass --force to write there: --force replaces only the files `{command}` "
            "writes and keeps every other file."
        )
    return Output(path, command, FORCED)


def write_output(output: Output, write: Callable[[Path], Any], what: str) -> Path:
    """Write the directory output.path: write(tmp) fills a temporary sibling directory, the marker
    and the entries that are not this command's are added, then it is swapped in with one rename.
    A failed write raises a DiskWriteError naming `what` and leaves output.path as it was.

    RETURNS (Path): output.path.
    """
    path = Path(os.path.abspath(output.path))  # "." has no name to put a sibling beside

    def write_all(tmp: Path) -> None:
        write(tmp)
        written = sorted(p.name for p in tmp.iterdir())
        replaced = {*written, *output.previous, OUTPUT_MARKER}
        for entry in sorted(p.name for p in path.iterdir()) if path.is_dir() else []:
            if entry not in replaced:
                _carry(path / entry, tmp / entry)
        atomic_write_text(tmp / OUTPUT_MARKER, json.dumps({"command": output.command, "entries": written}, indent=2))

    safe_write_dir(path, write_all, what, f"Nothing was replaced: {output.path} is as it was.")
    return output.path


def _entries(path: Path) -> List[str]:
    """The names in a directory, without what a killed atomic write left behind."""
    if not path.is_dir():
        return []
    return sorted(p.name for p in path.iterdir() if not p.name.startswith((TMP_PREFIX, OLD_PREFIX)))


def _names(entries: List[str], n: int = 4) -> str:
    shown = ", ".join(entries[:n])
    return f"it holds {shown}" + (f" and {len(entries) - n} more" if len(entries) > n else "")


def _read_marker(path: Path) -> Optional[dict]:
    try:
        data = json.loads((path / OUTPUT_MARKER).read_text(encoding="utf8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _writer(path: Path) -> Optional[str]:
    data = _read_marker(path)
    return data.get("command") if data else None


def _own_entries(path: Path, command: str, marker: str) -> Optional[List[str]]:
    """The entries a previous output of `command` in path wrote; None if path is not one."""
    if marker != OUTPUT_MARKER:
        return [] if (path / marker).exists() else None
    data = _read_marker(path)
    if data is None or data.get("command") != command:
        return None
    entries = data.get("entries")
    return [e for e in entries if isinstance(e, str)] if isinstance(entries, list) else []


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _overlap(output: Path, source: Optional[PathLike]) -> Optional[str]:
    """Why writing output would harm the input source, or None."""
    if source is None or str(source) in ("", "-"):
        return None
    source = Path(source)
    if not (source.exists() or source.is_symlink()):
        return None
    out, src = _real(output), _real(source)
    same = out == src or (output.exists() and os.path.samefile(output, source))
    if same:
        return (f"The output {output} is the input {source}: writing it would replace the input. Write to another "
                "path (--force does not allow this).")
    if src in out.parents:
        return (f"The output {output} is inside the input {source}: writing it would change the input. Write "
                f"outside {source} (--force does not allow this).")
    if out in src.parents:
        return (f"The output {output} holds the input {source} (it is one of its parent directories): writing it "
                f"could replace or delete the input. Write to a directory that does not contain {source} "
                "(--force does not allow this).")
    return None


def _carry(src: Path, dst: Path) -> None:
    """Put an entry that is not this command's into the new directory: hard links where possible."""
    if src.is_symlink():
        os.symlink(os.readlink(src), dst)
    elif src.is_dir():
        shutil.copytree(src, dst, symlinks=True, copy_function=_link_or_copy)
    else:
        _link_or_copy(src, dst)


def _link_or_copy(src: PathLike, dst: PathLike) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
