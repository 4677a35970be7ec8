"""trf_similarity's span getter `spacy_mlm.pair_spans.v1`: each sentence of a pair doc is a sequence of its own.

spacy_mlm.pipes.similarity imports it (so `import spacy_mlm.pipes.similarity` registers it) and the
`spacy_span_getters` entry point names it there."""

from typing import Callable, List

import spacy_transformers.util  # noqa: F401  (creates spaCy's registry.span_getters)
from spacy import util
from spacy.tokens import Doc, Span

from ..readers.pairs import PAIR_KEY, is_pair_doc

PAIR_SPANS_FIX = (
    "set the transformer's span getter to spacy_mlm.pair_spans.v1 so that each sentence of a pair is encoded on "
    "its own: [components.transformer.model.get_spans] @span_getters = \"spacy_mlm.pair_spans.v1\" (window and "
    "stride as strided_spans.v1 for other docs; configs/similarity.cfg)"
)


@util.registry.span_getters("spacy_mlm.pair_spans.v1")
def create_pair_spans(window: int = 128, stride: int = 96) -> Callable[[List[Doc]], List[List[Span]]]:
    """The transformer's span getter for pair docs: the two sentences of `doc.spans["sim_pair"]`
    as two sequences; every other doc in strided windows, as spacy-transformers.strided_spans.v1."""
    strided = util.registry.span_getters.get("spacy-transformers.strided_spans.v1")(window=window, stride=stride)

    def get_pair_spans(docs: List[Doc]) -> List[List[Span]]:
        others = iter(strided([doc for doc in docs if not is_pair_doc(doc)]))
        return [list(doc.spans[PAIR_KEY]) if is_pair_doc(doc) else next(others) for doc in docs]

    return get_pair_spans
