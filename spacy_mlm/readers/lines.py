"""What every data-file reader needs: numbered UTF-8 lines with clear errors, a blank nlp."""

from pathlib import Path
from typing import Any, BinaryIO, Iterator, Tuple, Union

from ..errors import SpacyMlmError

PathLike = Union[str, Path]


def read_lines(path: PathLike) -> Iterator[Tuple[int, str]]:
    """(line number from 1, line without its line break) for each line of a UTF-8 file."""
    path = Path(path)
    if not path.exists():
        raise SpacyMlmError(f"{path}: no such file: check the path.")
    if path.is_dir():
        raise SpacyMlmError(f"{path} is a directory: give the path of one data file.")
    with open_input(path) as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as e:
                raise SpacyMlmError(
                    f"{path}:{lineno}: not valid UTF-8 ({e.reason} at byte {e.start} of the line): "
                    "re-encode the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)."
                ) from None
            yield lineno, line.rstrip("\r\n")


def open_input(path: Path) -> BinaryIO:
    """An input file opened for reading (binary); one that cannot be read (no permission, an I/O
    error) is a SpacyMlmError naming it."""
    try:
        return path.open("rb")
    except OSError as e:
        raise SpacyMlmError(f"Cannot read {path}: {e.strerror or e}. Check the file's permissions (`ls -l {path}`), "
                            "or run as a user who may read it.") from None


def quoted(value: str, limit: int = 200) -> str:
    """A value read from a data file, quoted for a message: at most `limit` characters of it (a
    message must not repeat a 1 MB line)."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}... ({len(value):,} characters)"


def empty_error(path: PathLike, what: str) -> SpacyMlmError:
    return SpacyMlmError(f"{path}: the file holds no {what}: it is empty or blank. Check that this is the right file.")


def get_nlp(lang: str, nlp: Any = None) -> Any:
    if nlp is not None:
        return nlp
    import spacy

    try:
        return spacy.blank(lang)
    except (ImportError, KeyError, ValueError) as e:
        raise SpacyMlmError(
            f"Unknown language code {lang!r} ({e}): pass a spaCy language code such as en or de."
        ) from None
