"""STS Benchmark files: TAB-separated rows without header or quoting, ``genre, filename, year, id,
score, sentence1, sentence2`` and optional extra columns, which are ignored. The one STS reader:
`spacy-mlm convert`, `python -m bench sts` and project/scripts/eval_sts.py read through it.
"""

import math
from typing import Any, Dict, Iterator, Optional, Tuple

from ..errors import SpacyMlmError
from .lines import PathLike, empty_error, get_nlp, quoted, read_lines

STS_COLUMNS = ("genre", "filename", "year", "id", "score", "sentence1", "sentence2")
# The STS Benchmark's scale, 0 (unrelated) to 5 (same meaning): the readers refuse scores outside it
# (spacy_mlm.PairCorpus.v1 takes another `score_range`).
STS_SCORE_RANGE = (0.0, 5.0)
# doc.user_data keys of the two docs read_sts writes per pair (the pair readers and scorer read them).
PAIR_ID_KEY, SIDE_KEY, STS_SCORE_KEY = "pair_id", "side", "score"


def read_sts_rows(path: PathLike, stats: Optional[Dict[str, Any]] = None) -> Iterator[Dict[str, Any]]:
    """Dicts with the 7 STS Benchmark columns (``score`` as float) and ``line``, one per row.

    Columns after the 7th are ignored (``stats["extra_column_rows"]`` counts those rows).
    Raises SpacyMlmError with ``file:line`` for fewer than 7 columns, a score that is not a
    number or outside 0..5 (STS_SCORE_RANGE), or an empty sentence.
    """
    stats = stats if stats is not None else {}
    stats["extra_column_rows"] = 0
    n = 0
    for lineno, line in read_lines(path):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < len(STS_COLUMNS):
            raise SpacyMlmError(
                f"{path}:{lineno}: expected 7 TAB-separated columns ({', '.join(STS_COLUMNS)}) but found "
                f"{len(fields)}: {quoted(line)}. STS Benchmark files are TAB-separated without a header."
            )
        if len(fields) > len(STS_COLUMNS):
            stats["extra_column_rows"] += 1
        row: Dict[str, Any] = dict(zip(STS_COLUMNS, fields))
        try:
            row["score"] = float(row["score"])
        except ValueError:
            row["score"] = float("nan")
        if row["score"] != row["score"]:
            raise SpacyMlmError(
                f"{path}:{lineno}: the score (column 5) {quoted(fields[4])} is not a number: "
                "columns are genre, filename, year, id, score, sentence1, sentence2 (is there a header line? remove it)."
            )
        check_score(row["score"], f"{path}:{lineno}: the score (column 5)")
        for side in ("sentence1", "sentence2"):
            row[side] = row[side].strip()
            if not row[side]:
                raise SpacyMlmError(f"{path}:{lineno}: {side} is empty: remove the row or fill in the sentence.")
        row["line"] = lineno
        n += 1
        yield row
    if n == 0:
        raise empty_error(path, "sentence pairs")


def check_score(score: float, where: str, score_range: Tuple[float, float] = STS_SCORE_RANGE, fix: str = "") -> float:
    """`score` if it is a finite number inside score_range (bounds included), else a SpacyMlmError
    that starts with `where` (e.g. "FILE:LINE: the score") and ends with the fix."""
    low, high = score_range
    if not math.isfinite(score):
        raise SpacyMlmError(f"{where} {score} is not a finite number: fix the value{fix}.")
    if not low <= score <= high:
        scale = " (the STS Benchmark scale)" if (low, high) == STS_SCORE_RANGE else ""
        raise SpacyMlmError(f"{where} {score:g} is outside {low:g}..{high:g}{scale}: fix the value{fix}.")
    return score


def read_sts(
    path: PathLike, lang: str = "en", nlp: Any = None, stats: Optional[Dict[str, Any]] = None
) -> Iterator[Any]:
    """Two docs per STS pair, in file order: sentence1 then sentence2.

    Each doc has ``doc.user_data`` = ``{"pair_id": i, "side": "a" | "b", "score": float,
    "genre": str}`` where ``i`` counts the pairs of the file from 0. Regroup with
    ``zip(docs[0::2], docs[1::2])``. Save with ``DocBin(store_user_data=True)``.
    """
    nlp = get_nlp(lang, nlp)
    pair_id = 0
    for row in read_sts_rows(path, stats):
        for side, key in (("a", "sentence1"), ("b", "sentence2")):
            doc = nlp.make_doc(row[key])
            doc.user_data.update({PAIR_ID_KEY: pair_id, SIDE_KEY: side, STS_SCORE_KEY: row["score"], "genre": row["genre"]})
            yield doc
        pair_id += 1
