"""CoNLL/IOB NER files: one token per line, the tag in the LAST column.

2 columns (``token<TAB>tag``, WNUT-17) or 4 columns (CoNLL-2003 ``token POS chunk tag``), split on
TABs when the line has one, else on spaces. IOB1 and IOB2 are both read (IOB1 is rewritten to
IOB2). Empty and whitespace-only lines end a sentence (WNUT-17's train file uses lines holding a
single TAB, which ``spacy convert`` silently ignores). ``-DOCSTART-`` lines (``-DOCSTART- -X- -X- O``
or ``-DOCSTART-<TAB>O``) start a new document and are no tokens.
"""

import re
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from ..errors import SpacyMlmError
from .lines import PathLike, empty_error, get_nlp, quoted, read_lines

DOCSTART = "-DOCSTART-"
TAG_RE = re.compile(r"^(O|[BI]-\S+)$")


def iob_to_iob2(tags: Sequence[str]) -> List[str]:
    """IOB1 or IOB2 tags of one sentence as IOB2: an ``I-X`` that does not continue an entity of
    type X (at the start, after ``O`` or after another type) becomes ``B-X``. IOB2 input is
    returned unchanged."""
    out: List[str] = []
    prev = "O"
    for tag in tags:
        if tag.startswith("I-") and (prev == "O" or prev[2:] != tag[2:]):
            tag = "B-" + tag[2:]
        out.append(tag)
        prev = tag
    return out


def _split_conll(line: str) -> List[str]:
    line = line.strip(" \t")
    if "\t" in line:
        return [part.strip(" ") for part in line.split("\t")]
    return [part for part in line.split(" ") if part]


def read_conll_sentences(
    path: PathLike, stats: Optional[Dict[str, Any]] = None
) -> Iterator[Tuple[bool, List[str], List[str]]]:
    """(starts_document, words, IOB2 tags) for each sentence of a CoNLL/IOB file.

    ``starts_document`` is True for the first sentence after a ``-DOCSTART-`` line (and for the
    first sentence of the file). Raises SpacyMlmError with ``file:line`` for a line with a
    different column count from the first token line, fewer than 2 columns, or a tag that is
    not ``O``, ``B-X`` or ``I-X``. ``stats`` (if given) gets ``docstart_lines`` and
    ``iob1_fixes`` (``I-`` tags rewritten as ``B-``).
    """
    stats = stats if stats is not None else {}
    stats.setdefault("docstart_lines", 0)
    stats.setdefault("iob1_fixes", 0)
    n_columns: Optional[int] = None
    first_token_line = 0
    words: List[str] = []
    tags: List[str] = []
    new_doc = True

    def flush() -> Iterator[Tuple[bool, List[str], List[str]]]:
        nonlocal words, tags, new_doc
        if words:
            fixed = iob_to_iob2(tags)
            stats["iob1_fixes"] += sum(a != b for a, b in zip(tags, fixed))
            yield new_doc, words, fixed
            new_doc = False
        words, tags = [], []

    for lineno, line in read_lines(path):
        if not line.strip():
            yield from flush()
            continue
        parts = _split_conll(line)
        if parts[0] == DOCSTART:
            yield from flush()
            new_doc = True
            stats["docstart_lines"] += 1
            continue
        if len(parts) < 2:
            raise SpacyMlmError(
                f"{path}:{lineno}: expected a token and a tag (2 or more columns) but found {len(parts)} column: "
                f"{quoted(line)}. Write `token<TAB>tag` (or `token POS chunk tag`) and end sentences with an empty line."
            )
        if n_columns is None:
            n_columns, first_token_line = len(parts), lineno
        elif len(parts) != n_columns:
            raise SpacyMlmError(
                f"{path}:{lineno}: expected {n_columns} columns (as on line {first_token_line}) but found "
                f"{len(parts)}: {quoted(line)}. Give every token line the same columns, with the tag last; a token "
                "must not contain the column separator."
            )
        tag = parts[-1]
        if not TAG_RE.match(tag):
            raise SpacyMlmError(
                f"{path}:{lineno}: the tag {quoted(tag)} is not IOB: write O, B-TYPE or I-TYPE in the last column "
                "(BILUO and bare types are not read)."
            )
        if not parts[0]:
            raise SpacyMlmError(f"{path}:{lineno}: the token is empty: {quoted(line)}. Remove the line or fix the token.")
        words.append(parts[0])
        tags.append(tag)
    yield from flush()


def read_conll_ner(
    path: PathLike,
    n_sents: int = 1,
    lang: str = "en",
    vocab: Any = None,
    stats: Optional[Dict[str, Any]] = None,
) -> Iterator[Any]:
    """Docs with entities and sentence starts from a CoNLL/IOB file (see the module docstring).

    Each Doc holds ``n_sents`` sentences (fewer at the end of a document); a ``-DOCSTART-``
    line always starts a new Doc. Words are joined by single spaces. The entities come from
    the IOB tags (IOB1 is read as IOB2), every token gets a sentence start of True or False.
    """
    from spacy.tokens import Doc

    if n_sents < 1:
        raise SpacyMlmError(f"n_sents must be 1 or more, not {n_sents}.")
    if vocab is None:
        vocab = get_nlp(lang).vocab
    group: List[Tuple[List[str], List[str]]] = []

    def make_doc() -> Any:
        words = [w for ws, _ in group for w in ws]
        ents = [t for _, ts in group for t in ts]
        sent_starts = [i == 0 for ws, _ in group for i in range(len(ws))]
        spaces = [True] * (len(words) - 1) + [False]
        return Doc(vocab, words=words, spaces=spaces, ents=ents, sent_starts=sent_starts)

    n_read = 0
    for new_doc, words, tags in read_conll_sentences(path, stats):
        n_read += 1
        if group and (new_doc or len(group) >= n_sents):
            yield make_doc()
            group = []
        group.append((words, tags))
    if group:
        yield make_doc()
    if n_read == 0:
        raise empty_error(path, "token lines")
