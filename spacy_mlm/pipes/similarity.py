"""trf_similarity: doc/span/token vectors and cosine similarity from the shared transformer,
trainable on sentence pairs.

The vectors are pooled from `doc._.trf_data` (no second encoder pass) and exposed through
spaCy's user hooks, so `doc.vector`, `span.vector`, `token.vector`, `has_vector` and
`.similarity()` work as users expect.

Training (`nlp.update`, `spacy train`, configs/similarity.cfg) learns from sentence pairs with a
score (STS: CoSENT loss) or positive pairs (MultipleNegativesRanking with in-batch negatives),
through the shared transformer: the pipe's model is a TransformerListener, so the encoder runs
once per batch for every listening head and gets this head's gradient with theirs. A pair comes
as ONE Doc holding both sentences as `doc.spans["sim_pair"]` with the gold score in
`doc.user_data["sim_pair_score"]` (spacy_mlm.readers.pairs: why, and the corpus reader
`spacy_mlm.PairCorpus.v1`). The transformer encodes the two spans as separate sequences with the
span getter `spacy_mlm.pair_spans.v1`, so each sentence is pooled from its own sequence exactly
as at prediction time and as sentence-transformers does: no attention across the pair, and every
first sentence can be compared with every second sentence of the batch (MNRL's negatives).
Docs without the spans (NER or textcat docs in a multi-task batch) give no loss. An untrained
pipe predicts as before training existed; the scorer reports `similarity_spearman` and
`similarity_pearson` of the pairs' cosines against their gold scores.

The pipe's parts beside it: the span getter (_similarity_spans), the losses (_similarity_losses),
the scorer and its statistics (_similarity_scorer) and the vector hooks (_similarity_hooks).
"""

from itertools import islice
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy
import srsly
import torch
from spacy import util
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.tokens import Doc
from spacy.training import Example

from ..compat import incompatible_versions_error

try:  # a clear error (versions, pip command) instead of an ImportError deep inside spacy-transformers
    import spacy_transformers.util  # noqa: F401  (creates spaCy's registry.span_getters)
    from spacy_transformers.data_classes import TransformerData
    from spacy_transformers.layers import TransformerListener
except ImportError as e:
    raise incompatible_versions_error(e) from e

from thinc.api import Optimizer, torch2xp, xp2torch
from transformers.file_utils import ModelOutput

from ..errors import SpacyMlmError
from ..readers.pairs import PAIR_KEY, SCORE_KEY, is_pair_doc
from ..util import IN_PLACE_HINT, atomic_write_text, disk_writes
from ._runtime import prepare_pipe_process
from ._similarity_hooks import l2, restore_vector_hooks
from ._similarity_losses import CoSENTLoss
from ._similarity_scorer import make_similarity_scorer, pearson, score_similarity, spearman, vector_cosine
from ._similarity_spans import PAIR_SPANS_FIX, create_pair_spans
from ._upstream import get_upstream_transformer
from ._windows import _to_numpy, doc_pieces, token_pieces

# Also the names of the modules beside it: setup.py's entry points and users import them from here.
__all__ = ["TrfSimilarity", "make_trf_similarity", "install_extensions", "create_pair_spans",
           "make_similarity_scorer", "score_similarity", "pearson", "spearman", "restore_vector_hooks"]

POOLINGS = ("mean", "cls", "max")
# (doc vector, per-token vectors, per-token "has wordpieces" flags, cosine of a pair doc's two
# sentences or None for other docs)
DocVectors = Tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray, Optional[float]]
SimilarityLoss = Callable[[torch.Tensor, torch.Tensor, Optional[torch.Tensor]], torch.Tensor]


def install_extensions() -> None:
    for name in ("trf_vector", "trf_token_has_vector", "trf_vector_config", "trf_pair_similarity"):
        if not Doc.has_extension(name):
            Doc.set_extension(name, default=None)


@Language.factory(
    "trf_similarity",
    assigns=["doc.tensor", "doc._.trf_vector", "doc._.trf_pair_similarity"],
    requires=["doc._.trf_data"],
    default_config={
        "pooling": "mean",
        "normalize": True,
        "upstream": "transformer",
        "loss": {"@misc": "spacy_mlm.CoSENTLoss.v1", "scale": 20.0},
        "loss_weight": 1.0,
        "scorer": {"@scorers": "spacy_mlm.similarity_scorer.v1"},
    },
    default_score_weights={"similarity_spearman": 1.0, "similarity_pearson": 0.0},
)
def make_trf_similarity(
    nlp: Language, name: str, pooling: str, normalize: bool, upstream: str, loss: SimilarityLoss,
    loss_weight: float, scorer: Optional[Callable],
) -> "TrfSimilarity":
    """Vectors and `.similarity()` for Doc, Span and Token from the shared transformer.

    pooling (str): "mean" (wordpieces weighted by the attention mask, as sentence-transformers
        does), "cls" (the first wordpiece; doc level only, spans and tokens use mean) or "max".
    normalize (bool): L2-normalize the vectors.
    loss: the training loss on sentence pairs: spacy_mlm.CoSENTLoss.v1 (scored pairs) or
        spacy_mlm.MNRLoss.v1 (positive pairs, in-batch negatives).
    loss_weight (float): multiplies the loss, and so this head's gradient into the shared encoder.
    """
    prepare_pipe_process()
    return TrfSimilarity(nlp, name, pooling=pooling, normalize=normalize, upstream=upstream, loss=loss,
                         loss_weight=loss_weight, scorer=scorer)


class TrfSimilarity(TrainablePipe):
    def __init__(
        self, nlp: Language, name: str = "trf_similarity", *, pooling: str = "mean",
        normalize: bool = True, upstream: str = "transformer", loss: Optional[SimilarityLoss] = None,
        loss_weight: float = 1.0, scorer: Optional[Callable] = score_similarity,
    ) -> None:
        if pooling not in POOLINGS:
            raise SpacyMlmError(f"trf_similarity pooling={pooling!r} is not supported: use one of {POOLINGS}.")
        if loss_weight < 0:
            raise SpacyMlmError(f"trf_similarity loss_weight must be >= 0, got {loss_weight}: set [components.{name}] loss_weight.")
        self.name = name
        self.nlp = nlp
        self.vocab = nlp.vocab
        self.pooling = pooling
        self.normalize = normalize
        self.upstream = upstream
        self.loss = loss if loss is not None else CoSENTLoss()
        self.loss_weight = loss_weight
        self.scorer = scorer
        # No weights of its own: the listener hands over the shared transformer's output and
        # takes this head's gradient back to it (spacy-transformers' Transformer.update).
        self.model = TransformerListener(upstream_name=upstream)
        self.cfg = {"width": 0}
        install_extensions()

    def initialize(self, get_examples=None, *, nlp: Optional[Language] = None) -> None:
        if nlp is not None:
            self.nlp = nlp
        transformer = get_upstream_transformer(self.nlp, self.upstream, self.name)
        if transformer.model.has_dim("nO") and transformer.model.get_dim("nO"):
            self.cfg["width"] = int(transformer.model.get_dim("nO"))
        pairs = [eg.predicted for eg in islice(get_examples(), 100) if is_pair_doc(eg.predicted)] if get_examples else []
        if pairs:
            spans = transformer.model.attrs["get_spans"](pairs[:1])[0]
            if [(s.start, s.end) for s in spans] != [(s.start, s.end) for s in pairs[0].spans[PAIR_KEY]]:
                raise SpacyMlmError(
                    f"'{self.name}' trains on sentence pairs, but the '{self.upstream}' component would encode both "
                    f"sentences of a pair as one sequence (the pair {pairs[0].text[:80]!r}): {PAIR_SPANS_FIX}."
                )

    def __call__(self, doc: Doc) -> Doc:
        self.set_annotations([doc], self.predict([doc]))
        return doc

    def pipe(self, stream: Iterable[Doc], *, batch_size: int = 128):
        for docs in util.minibatch(stream, size=batch_size):
            self.set_annotations(docs, self.predict(docs))
            yield from docs

    def predict(self, docs: Iterable[Doc]) -> List[DocVectors]:
        """Pooled doc vector, token vectors and, for pair docs, the cosine of the two sentences'
        vectors for each doc. Does not modify the docs."""
        return [self._pool(doc) + (self._pair_similarity(doc),) for doc in docs]

    def _pair_similarity(self, doc: Doc) -> Optional[float]:
        trf_data = doc._.get("trf_data") if is_pair_doc(doc) and doc.has_extension("trf_data") else None
        if trf_data is None or "last_hidden_state" not in trf_data.model_output:
            return None
        hidden = torch.from_numpy(_to_numpy(trf_data.model_output.last_hidden_state).astype("f", copy=False))
        return vector_cosine(*self.pool_pair(doc, trf_data, hidden))

    def pool_pair(self, doc: Doc, trf_data: TransformerData, hidden: torch.Tensor) -> torch.Tensor:
        """(2, width): each sentence of a pair doc pooled from its own sequence, as `_pool` pools
        a one-sequence doc (mean over the attention mask, first wordpiece, or max)."""
        mask = _to_numpy(trf_data.wordpieces.attention_mask).astype(bool)
        lengths = numpy.asarray(_to_numpy(trf_data.align.lengths), dtype="i")
        window = numpy.asarray(_to_numpy(trf_data.align.dataXd), dtype="i").ravel() // mask.shape[1]
        in_second = numpy.repeat(numpy.arange(len(lengths)) >= doc.spans[PAIR_KEY][1].start, lengths)
        if mask.shape[0] != 2 or not numpy.array_equal(window, in_second.astype("i")):
            raise SpacyMlmError(
                f"'{self.name}' got the pair doc {doc.text[:80]!r} encoded as {mask.shape[0]} sequence(s) that do not "
                f"follow its two sentences: {PAIR_SPANS_FIX}."
            )
        rows = []
        for w in (0, 1):
            pieces = hidden[w][torch.from_numpy(mask[w])]
            if self.pooling == "cls":
                rows.append(hidden[w, 0])
            else:
                rows.append(pieces.max(dim=0).values if self.pooling == "max" else pieces.mean(dim=0))
        return torch.stack(rows)

    def _pool(self, doc: Doc) -> DocVectors:
        trf_data = doc._.get("trf_data") if doc.has_extension("trf_data") else None
        hidden = None if trf_data is None else trf_data.model_output.get("last_hidden_state")
        if hidden is None or hidden.size == 0 or len(doc) == 0:
            if trf_data is None and len(doc):
                raise SpacyMlmError(
                    f"'{self.name}' got a doc without doc._.trf_data: add the '{self.upstream}' "
                    f"component before it (nlp.add_pipe('transformer', before='{self.name}'))."
                )
            width = self.cfg["width"]
            return (numpy.zeros((width,), "f"), numpy.zeros((len(doc), width), "f"), numpy.zeros((len(doc),), bool))
        hidden = _to_numpy(hidden).astype("f", copy=False)
        width = hidden.shape[-1]
        self.cfg["width"] = int(width)
        flat_hidden = hidden.reshape(-1, width)
        # Long docs come in overlapping windows: pool each wordpiece once (see _windows).
        owner, flat = token_pieces(trf_data)
        pooled = flat_hidden[doc_pieces(trf_data, flat)]
        if self.pooling == "cls":
            doc_vector = hidden[0, 0]
        elif self.pooling == "max":
            doc_vector = pooled.max(axis=0) if len(pooled) else numpy.zeros((width,), "f")
        else:
            doc_vector = pooled.sum(axis=0) / max(len(pooled), 1)
        # Token vectors: pool each token's wordpieces (tokens with none get zeros).
        pieces = flat_hidden[flat]
        lengths = numpy.bincount(owner, minlength=len(doc))
        token_vectors = numpy.zeros((len(doc), width), "f")
        if len(pieces):
            # `owner` is sorted (tokens in order), so each token's pieces are one run: reduceat pools
            # them at a fraction of ufunc.at's cost (sums may differ from ufunc.at's in the last bit).
            has_pieces = numpy.flatnonzero(lengths)
            starts = numpy.concatenate([[0], numpy.cumsum(lengths[has_pieces])[:-1]])
            reduce = numpy.maximum if self.pooling == "max" else numpy.add
            token_vectors[has_pieces] = reduce.reduceat(pieces, starts, axis=0)
        if self.pooling != "max":
            token_vectors /= numpy.maximum(lengths, 1)[:, None]
        doc_vector = numpy.asarray(doc_vector, "f")
        if not lengths.any():  # whitespace only: nothing but special tokens, so no meaning to pool
            doc_vector = numpy.zeros_like(doc_vector)
        return doc_vector, token_vectors, lengths > 0

    def set_annotations(self, docs: Sequence[Doc], predictions: List[DocVectors]) -> None:
        for doc, (doc_vector, token_vectors, has_vector, pair_similarity) in zip(docs, predictions):
            if pair_similarity is not None:
                doc._.trf_pair_similarity = pair_similarity
            doc.tensor = token_vectors
            doc._.trf_vector = l2(doc_vector) if self.normalize else doc_vector
            doc._.trf_token_has_vector = has_vector
            doc._.trf_vector_config = {"pooling": self.pooling, "normalize": self.normalize}
            restore_vector_hooks(doc)

    # -- training ---------------------------------------------------------------
    def update(
        self,
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd: Optional[Optimizer] = None,
        losses: Optional[Dict[str, float]] = None,
    ) -> Dict[str, float]:
        """The loss on the batch's pair docs, backpropagated into the shared transformer through the
        listener (the transformer applies it in its own update). Other docs give zero gradients,
        which are still handed back: the last listener's call is what runs the encoder's backward."""
        losses = {} if losses is None else losses
        losses.setdefault(self.name, 0.0)
        examples = list(examples)
        if not examples:
            return losses
        docs = [eg.predicted for eg in examples]
        trf_datas, backprop = self.model.begin_update(docs)
        hidden = [
            xp2torch(trf.model_output.last_hidden_state, requires_grad=True)
            if "last_hidden_state" in trf.model_output else None
            for trf in trf_datas
        ]
        pairs = [i for i, eg in enumerate(examples) if self._is_training_pair(eg) and hidden[i] is not None]
        if pairs:
            pooled = torch.stack([self.pool_pair(docs[i], trf_datas[i], hidden[i]) for i in pairs])
            loss = self.get_loss([examples[i] for i in pairs], pooled)
            if self.loss_weight:
                (loss * self.loss_weight).backward()
            losses[self.name] += float(loss.item())
        d_trf_datas = [
            TransformerData(
                model_output=ModelOutput(
                    last_hidden_state=torch2xp(h.grad) if h.grad is not None else self.model.ops.alloc(h.shape, dtype="f")
                ),
                wordpieces=trf.wordpieces,
                align=trf.align,
            )
            for trf, h in zip(trf_datas, hidden)
            if h is not None  # empty docs have no output, as in spacy-transformers' trfs2arrays
        ]
        backprop(d_trf_datas)
        return losses

    def _is_training_pair(self, eg: Example) -> bool:
        if is_pair_doc(eg.reference) and not is_pair_doc(eg.predicted):
            raise SpacyMlmError(
                f"'{self.name}': the example {eg.reference.text[:80]!r} has sentence-pair spans in its reference but not "
                "in its predicted doc, so the transformer cannot encode the sentences apart. Read pairs with "
                '[corpora.train] @readers = "spacy_mlm.PairCorpus.v1" (spacy_mlm.readers.pairs).'
            )
        return is_pair_doc(eg.predicted)

    def get_loss(self, examples: Sequence[Example], pooled: torch.Tensor) -> torch.Tensor:
        """The configured loss of the pairs' pooled vectors (n, 2, width) and their gold scores."""
        scores = [eg.reference.user_data.get(SCORE_KEY) for eg in examples]
        needs_scores = getattr(self.loss, "needs_scores", True)
        if needs_scores and None in scores:
            text = examples[scores.index(None)].reference.text[:80]
            raise SpacyMlmError(
                f"'{self.name}': {type(self.loss).__name__} learns from scored pairs, but the pair {text!r} has no score. "
                'For positive pairs without scores use [components.<name>.loss] @misc = "spacy_mlm.MNRLoss.v1".'
            )
        if not needs_scores and any(score is not None for score in scores):
            raise SpacyMlmError(
                f"'{self.name}': {type(self.loss).__name__} treats every pair as a positive pair, but the pairs have "
                'scores (STS data?). For scored pairs use [components.<name>.loss] @misc = "spacy_mlm.CoSENTLoss.v1".'
            )
        gold = torch.tensor(scores, dtype=torch.float32) if needs_scores else None
        return self.loss(pooled[:, 0], pooled[:, 1], gold)

    def finish_update(self, sgd: Optimizer) -> None:
        """Nothing to do: the pipe has no weights; the transformer applies the encoder's update."""

    def to_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> None:
        with disk_writes(f"the '{self.name}' component", path, IN_PLACE_HINT):
            util.to_disk(path, {"cfg": lambda p: atomic_write_text(p, srsly.json_dumps(self.cfg, indent=2))}, exclude)

    def from_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> "TrfSimilarity":
        util.from_disk(path, {"cfg": lambda p: self.cfg.update(srsly.read_json(p))}, exclude)
        return self

    def to_bytes(self, *, exclude: Iterable[str] = tuple()) -> bytes:
        return srsly.msgpack_dumps({"cfg": self.cfg})

    def from_bytes(self, data: bytes, *, exclude: Iterable[str] = tuple()) -> "TrfSimilarity":
        self.cfg.update(srsly.msgpack_loads(data)["cfg"])
        return self
