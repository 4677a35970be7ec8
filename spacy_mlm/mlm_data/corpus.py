"""Streaming corpus readers: docs are read lazily, so memory stays flat in corpus size.

A reader is a callable returning a fresh iterator of texts (one call per epoch).
Formats: plain text (one doc per line, or blank-line separated paragraphs), JSONL with a
`text` field (as `spacy pretrain` reads), and `.spacy` DocBin files. The `pretrain`, `score`
and `tokenizer` commands and fill_mask's `replay_text` all read their text through these readers.
"""

from pathlib import Path
from typing import Callable, Iterator, List, Optional, Union

import srsly
from spacy.util import registry

from ..errors import SpacyMlmError
from ..readers.lines import open_input

ENCODING_ERRORS = ("strict", "replace")


class Corpus:
    """Restartable stream of document texts from one or more files."""

    def __init__(self, files: List[Path], read: Callable[[Path], Iterator[str]], max_docs: Optional[int] = None):
        self.files = files
        self.read = read
        self.max_docs = max_docs

    def __call__(self) -> Iterator[str]:
        n = 0
        for path in self.files:
            for text in self.read(path):
                if self.max_docs is not None and n >= self.max_docs:
                    return
                n += 1
                yield text

    def __repr__(self) -> str:
        return f"Corpus({', '.join(map(str, self.files))})"


def _files(path: Union[str, Path]) -> List[Path]:
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        if not files:
            raise SpacyMlmError(f"Corpus directory {path} holds no files.")
        return files
    if not path.exists():
        raise SpacyMlmError(f"Corpus file not found: {path}. Check the path in [paths] or --paths.*.")
    return [path]


def _decoded_lines(path: Path, errors: str) -> Iterator[str]:
    """Lines decoded one by one, so a bad byte is reported with its file and line."""
    with open_input(path) as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                yield raw.decode("utf8", errors=errors)
            except UnicodeDecodeError as e:
                raise SpacyMlmError(
                    f"{path}:{lineno}: not valid UTF-8 (byte {raw[e.start]:#04x} at column {e.start + 1}). "
                    'Fix the file, or set encoding_errors = "replace" in the [corpus.*] reader.'
                ) from None


def read_text(path: Path, blank_line_separated: bool = False, encoding_errors: str = "strict",
              strip: bool = True) -> Iterator[str]:
    """Non-blank lines (stripped, or as they are with strip=False), or blank-line separated paragraphs."""
    if not blank_line_separated:
        for line in _decoded_lines(path, encoding_errors):
            if line.strip():
                yield line.strip() if strip else line.rstrip("\r\n")
        return
    paragraph: List[str] = []
    for line in _decoded_lines(path, encoding_errors):
        if line.strip():
            paragraph.append(line.strip())
        elif paragraph:
            yield "\n".join(paragraph)
            paragraph = []
    if paragraph:
        yield "\n".join(paragraph)


def read_jsonl(path: Path, encoding_errors: str = "strict") -> Iterator[str]:
    for lineno, line in enumerate(_decoded_lines(path, encoding_errors), start=1):
        if not line.strip():
            continue
        try:
            record = srsly.json_loads(line)
        except ValueError as e:
            raise SpacyMlmError(f"{path}:{lineno}: invalid JSON ({e}).") from None
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise SpacyMlmError(f"{path}:{lineno}: JSONL records need a string 'text' field.")
        if record["text"].strip():
            yield record["text"]


def read_docbin(path: Path) -> Iterator[str]:
    import spacy
    from spacy.tokens import DocBin

    try:
        doc_bin = DocBin().from_disk(path)
    except Exception as e:  # msgpack/zlib raise many types
        raise SpacyMlmError(f"{path}: not a .spacy DocBin file ({e}).") from None
    vocab = spacy.blank("xx").vocab
    for doc in doc_bin.get_docs(vocab):
        if doc.text.strip():
            yield doc.text


def corpus_of(path: Optional[str], read: Callable[[Path], Iterator[str]], max_docs: Optional[int],
            encoding_errors: str = "strict") -> Optional[Corpus]:
    """The corpus of the file or directory at path (None: no corpus, e.g. no dev file)."""
    if path is None:
        return None
    if encoding_errors not in ENCODING_ERRORS:
        raise SpacyMlmError(f"encoding_errors = {encoding_errors!r}: use one of {', '.join(ENCODING_ERRORS)}.")
    return Corpus(_files(path), read, max_docs)


@registry.misc.register("spacy_mlm.PlainTextCorpus.v1")
def plain_text_corpus(
    path: Optional[str], blank_line_separated: bool = False, encoding_errors: str = "strict",
    max_docs: Optional[int] = None,
) -> Optional[Corpus]:
    """Plain text: one doc per line, or paragraphs separated by blank lines."""
    return corpus_of(path, lambda p: read_text(p, blank_line_separated, encoding_errors), max_docs, encoding_errors)


@registry.misc.register("spacy_mlm.JsonlCorpus.v1")
def jsonl_corpus(path: Optional[str], encoding_errors: str = "strict", max_docs: Optional[int] = None) -> Optional[Corpus]:
    """JSONL: one object per line with a `text` field."""
    return corpus_of(path, lambda p: read_jsonl(p, encoding_errors), max_docs, encoding_errors)


@registry.misc.register("spacy_mlm.DocBinCorpus.v1")
def docbin_corpus(path: Optional[str], max_docs: Optional[int] = None) -> Optional[Corpus]:
    """spaCy `.spacy` DocBin files; the docs' texts are used."""
    return corpus_of(path, read_docbin, max_docs)


@registry.misc.register("spacy_mlm.Corpus.v1")
def any_corpus(
    path: Optional[str], blank_line_separated: bool = False, encoding_errors: str = "strict",
    max_docs: Optional[int] = None,
) -> Optional[Corpus]:
    """Pick the reader from each file's suffix: .jsonl, .spacy, anything else is plain text."""
    return corpus_of(path, lambda p: read_file(p, blank_line_separated, encoding_errors), max_docs, encoding_errors)


def read_file(path: Path, blank_line_separated: bool = False, encoding_errors: str = "strict",
              strip: bool = True) -> Iterator[str]:
    """The texts of one file, read by its suffix: .jsonl, .spacy, anything else is plain text."""
    if path.suffix == ".jsonl":
        return read_jsonl(path, encoding_errors)
    if path.suffix == ".spacy":
        return read_docbin(path)
    return read_text(path, blank_line_separated, encoding_errors, strip)


def holdout(corpus: Corpus, every: int, keep_heldout: bool) -> Corpus:
    """Split a corpus without a dev file: every `every`-th doc is held out."""

    def read_split() -> Iterator[str]:
        for i, text in enumerate(corpus()):
            if (i % every == 0) == keep_heldout:
                yield text

    return _Split(read_split, corpus.files)


class _Split(Corpus):
    def __init__(self, stream: Callable[[], Iterator[str]], files: List[Path]):
        super().__init__(files, lambda p: iter(()))
        self.stream = stream

    def __call__(self) -> Iterator[str]:
        return self.stream()
