"""trf_similarity's scorer `spacy_mlm.similarity_scorer.v1`: Spearman and Pearson correlation of
the pairs' predicted cosines with their gold scores (the statistics without scipy)."""

import warnings
from typing import Any, Callable, Dict, Iterable, Optional, Sequence, Union

import numpy
import torch
from spacy import util
from spacy.tokens import Doc
from spacy.training import Example

from ..errors import SpacyMlmError
from ..readers.pairs import SCORE_KEY
from ..readers.sts import PAIR_ID_KEY, SIDE_KEY, STS_SCORE_KEY
from ._windows import _to_numpy


@util.registry.scorers("spacy_mlm.similarity_scorer.v1")
def make_similarity_scorer() -> Callable[..., Dict[str, Optional[float]]]:
    return score_similarity


def score_similarity(examples: Iterable[Example], **kwargs: Any) -> Dict[str, Optional[float]]:
    """Spearman and Pearson correlation of the predicted cosines of the pairs with their gold
    scores; None (no column in spacy train, no weight) with fewer than two scored pairs.
    A pair is a pair doc (spacy_mlm.PairCorpus.v1, as spacy train reads pairs) or two docs whose
    user_data has the same pair_id, side "a" and "b", as `spacy evaluate` reads a `spacy-mlm
    convert --kind sts` file with spaCy's own corpus reader: then the cosine of their doc vectors,
    which is the pair doc's cosine for sentences that fit in one window."""
    gold, predicted = [], []
    halves: Dict[Any, Dict[str, Doc]] = {}  # pair_id -> the side(s) seen so far
    for eg in examples:
        data = eg.reference.user_data
        score = data.get(SCORE_KEY)
        cosine = eg.predicted._.get("trf_pair_similarity") if eg.predicted.has_extension("trf_pair_similarity") else None
        if cosine is None and PAIR_ID_KEY in data and data.get(SIDE_KEY) in ("a", "b"):
            sides = halves.setdefault(data[PAIR_ID_KEY], {})
            if data[SIDE_KEY] in sides:
                raise SpacyMlmError(
                    f"Scoring similarity: two docs are side {data[SIDE_KEY]!r} of pair_id {data[PAIR_ID_KEY]!r} "
                    f"({eg.reference.text[:60]!r}): score one `spacy-mlm convert --kind sts` file at a time."
                )
            sides[data[SIDE_KEY]] = eg.predicted
            if len(sides) < 2:
                continue
            del halves[data[PAIR_ID_KEY]]
            vectors = [doc._.get("trf_vector") if doc.has_extension("trf_vector") else None for doc in sides.values()]
            if any(v is None for v in vectors):
                continue
            score, cosine = data.get(STS_SCORE_KEY), vector_cosine(*(numpy.asarray(_to_numpy(v), dtype="f") for v in vectors))
        if score is not None and cosine is not None:
            gold.append(float(score))
            predicted.append(float(cosine))
    if halves:
        warnings.warn(f"Scoring similarity: {len(halves)} pair(s) had only one of their two docs (e.g. pair_id "
                      f"{next(iter(halves))!r}) and were left out; was the file cut (a corpus limit or max_length)?",
                      stacklevel=2)
    return {"similarity_spearman": spearman(predicted, gold), "similarity_pearson": pearson(predicted, gold)}


def vector_cosine(a: Union[numpy.ndarray, torch.Tensor], b: Union[numpy.ndarray, torch.Tensor]) -> float:
    """Cosine of two vectors as torch computes it (its eps keeps zero vectors at 0)."""
    a, b = (torch.as_tensor(v) for v in (a, b))
    return float(torch.nn.functional.cosine_similarity(a, b, dim=0))


def pearson(x: Sequence[float], y: Sequence[float]) -> Optional[float]:
    x, y = numpy.asarray(x, "f8"), numpy.asarray(y, "f8")
    if len(x) < 2 or x.std() == 0 or y.std() == 0:
        return None
    return float(numpy.corrcoef(x, y)[0, 1])


def spearman(x: Sequence[float], y: Sequence[float]) -> Optional[float]:
    """Pearson of the ranks, ties sharing their mean rank (as scipy.stats.spearmanr)."""
    return pearson(_ranks(x), _ranks(y)) if len(x) >= 2 else None


def _ranks(values: Sequence[float]) -> numpy.ndarray:
    values = numpy.asarray(values, "f8")
    ranks = numpy.empty(len(values))
    ranks[numpy.argsort(values, kind="stable")] = numpy.arange(len(values))
    _, tie_group, tie_count = numpy.unique(values, return_inverse=True, return_counts=True)
    return (numpy.bincount(tie_group, weights=ranks) / tie_count)[tie_group]
