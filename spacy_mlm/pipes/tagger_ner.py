"""trf_tagger_ner: entities as per-token BILUO tags on the shared transformer.

The token-classification recipe of HF's `AutoModelForTokenClassification` (one softmax per
token over the tags, cross-entropy averaged over tokens) inside a spaCy component: `doc.ents`,
the NER scorer, `spacy train` and `to_disk` work as with `trf_ner`. Predictions are decoded with
Viterbi over the valid BILUO transitions, so every predicted span is well formed.
"""

import math
from functools import lru_cache, partial
from itertools import islice
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy
from spacy.attrs import IS_SPACE
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.tokens import Doc
from spacy.training import Example, biluo_tags_to_spans, validate_examples, validate_get_examples
from spacy.util import registry
from thinc.api import Model, Softmax_v2, chain, set_dropout_rate, with_array
from thinc.types import Floats2d, Ints1d

from ..errors import SpacyMlmError
from ._listener import LISTENER_CONFIG, ScaledHead, check_transformer_before, warn_unseen_labels, with_head_lr_scale
from ._runtime import prepare_pipe_process

OUT = "O"
DEFAULT_TAGGER_NER_MODEL = {
    "@architectures": "spacy_mlm.TokenClassifier.v1",
    "nO": None,
    "init_std": 0.02,
    "tok2vec": LISTENER_CONFIG,
}


@registry.architectures("spacy_mlm.TokenClassifier.v1")
def build_token_classifier(
    tok2vec: Model[List[Doc], List[Floats2d]], nO: Optional[int] = None, init_std: float = 0.02
) -> Model[List[Doc], List[Floats2d]]:
    """Token vectors (the listener's: mean of each token's wordpieces) -> linear layer -> softmax
    over the tags; softmaxed in training, logits in prediction. The weights start as HF's
    classifier does, N(0, init_std), not at zero as in spacy.Tagger.v2: with zero weights the
    encoder gets no gradient until the head has grown, which at fine-tuning rates takes most of a
    short training run (WNUT-17: BENCHMARKS.md)."""
    width = tok2vec.get_dim("nO") if tok2vec.has_dim("nO") else None
    output_layer = Softmax_v2(nO, width, init_W=partial(normal_weights, std=init_std), normalize_outputs=False)
    model = chain(tok2vec, with_array(output_layer))
    model.set_ref("tok2vec", tok2vec)
    model.set_ref("output_layer", output_layer)
    return model


def normal_weights(ops: Any, shape: Tuple[int, ...], *, std: float) -> Any:
    """N(0, std) weights from numpy's global generator (seeded by spacy.util.fix_random_seed)."""
    return ops.asarray(numpy.random.normal(0.0, std, shape).astype("float32"))


@Language.factory(
    "trf_tagger_ner",
    assigns=["doc.ents", "token.ent_iob", "token.ent_type"],
    requires=["doc._.trf_data"],
    default_config={
        "model": DEFAULT_TAGGER_NER_MODEL,
        "scorer": {"@scorers": "spacy.ner_scorer.v1"},
        "head_lr_scale": 1.0,
    },
    default_score_weights={"ents_f": 1.0, "ents_p": 0.0, "ents_r": 0.0, "ents_per_type": None},
)
def make_trf_tagger_ner(
    nlp: Language, name: str, model: Model, scorer: Optional[Callable], head_lr_scale: float
) -> "TrfTaggerEntityRecognizer":
    """NER as token classification: add it after a `transformer` and train.
    head_lr_scale: the tag softmax's learning rate as a multiple of the optimizer's (the encoder's)."""
    prepare_pipe_process()
    return with_head_lr_scale(TrfTaggerEntityRecognizer(nlp.vocab, model, name, scorer=scorer), head_lr_scale)


def biluo_tag_names(entity_labels: Sequence[str]) -> List[str]:
    """The tag set: O, then B-, I-, L-, U- of each entity label."""
    return [OUT] + [f"{move}-{label}" for label in entity_labels for move in "BILU"]


@lru_cache(maxsize=16)
def decoding_constraints(entity_labels: Tuple[str, ...]) -> Tuple[numpy.ndarray, numpy.ndarray]:
    """For a label set: allowed_transitions of its tags, and which tags may not sit on a
    whitespace token (B, L, U: as in spaCy's ner, entities neither start nor end on whitespace)."""
    tags = biluo_tag_names(entity_labels)
    return allowed_transitions(tags), numpy.array([tag[0] in "BLU" for tag in tags])


def allowed_transitions(tags: Sequence[str]) -> numpy.ndarray:
    """allowed[i, j]: tag j may follow tag i. Row/column len(tags) is the doc's start/end."""
    n = len(tags)
    allowed = numpy.zeros((n + 1, n + 1), dtype=bool)
    for i, prev in enumerate([*tags, OUT]):  # the start state behaves like O
        inside = prev[0] in "BI"
        for j, tag in enumerate(tags):
            if inside:
                allowed[i, j] = tag[0] in "IL" and tag[2:] == prev[2:]
            else:
                allowed[i, j] = tag == OUT or tag[0] in "BU"
        allowed[i, n] = not inside  # a doc can't end inside an entity
    return allowed


def viterbi(log_probs: numpy.ndarray, allowed: numpy.ndarray) -> numpy.ndarray:
    """The best tag sequence under the allowed transitions (start/end in row/column -1)."""
    return viterbi_batch([log_probs], allowed)[0]


# Token positions x docs decoded in one padded block: bounds the block's memory (a doc of 200k
# tokens is decoded alone, not padded next to 1,000 short ones).
VITERBI_BLOCK_CELLS = 1 << 16


def viterbi_batch(batch_log_probs: Sequence[numpy.ndarray], allowed: numpy.ndarray) -> List[numpy.ndarray]:
    """`viterbi` of each doc's (tokens x tags) log-probabilities, docs of similar length stepped together.

    One numpy operation per token position of a block's longest doc instead of per token of every
    doc (per-doc loops were a third of the heads' time in nlp.pipe). Blocks hold docs sorted by
    length, at most VITERBI_BLOCK_CELLS padded positions unless one doc is longer. Each doc's sums
    and argmaxes are exactly those of decoding it alone: its score stops moving after its last token."""
    lengths = [len(lp) for lp in batch_log_probs]
    decoded: List[numpy.ndarray] = [numpy.zeros((0,), dtype="i") for _ in lengths]
    order = [i for i in sorted(range(len(lengths)), key=lengths.__getitem__) if lengths[i]]
    first = 0
    for k in range(len(order) + 1):
        if k == len(order) or (k > first and (k - first + 1) * lengths[order[k]] > VITERBI_BLOCK_CELLS):
            block = order[first:k]
            for i, best in zip(block, _viterbi_block([batch_log_probs[i] for i in block], allowed)):
                decoded[i] = best
            first = k
    return decoded


def _viterbi_block(batch_log_probs: Sequence[numpy.ndarray], allowed: numpy.ndarray) -> List[numpy.ndarray]:
    """Viterbi of non-empty docs padded to the longest of them."""
    if not batch_log_probs:
        return []
    lengths = numpy.array([len(lp) for lp in batch_log_probs], dtype="i")
    n_docs, n_steps, n_tags = len(lengths), int(lengths.max()), batch_log_probs[0].shape[1]
    padded = numpy.zeros((n_docs, n_steps, n_tags), dtype=numpy.result_type(*batch_log_probs))
    for i, lp in enumerate(batch_log_probs):
        padded[i, : len(lp)] = lp
    last = lengths - 1
    shortest = int(last.min())  # up to here every doc is still running: no masking needed
    penalty = numpy.where(allowed, 0.0, -numpy.inf)
    transitions = penalty[:n_tags, :n_tags]
    score = penalty[-1, :n_tags] + padded[:, 0]
    backpointers = numpy.zeros((n_docs, n_steps, n_tags), dtype="i")
    for t in range(1, n_steps):
        candidates = score[:, :, None] + transitions
        backpointers[:, t] = candidates.argmax(axis=1)
        stepped = candidates.max(axis=1) + padded[:, t]
        score = stepped if t <= shortest else numpy.where((t <= last)[:, None], stepped, score)
    current = (score + penalty[:n_tags, -1]).argmax(axis=1).astype("i")
    best = numpy.zeros((n_docs, n_steps), dtype="i")
    rows = numpy.arange(n_docs)
    for t in range(n_steps - 1, -1, -1):
        if t <= shortest:
            best[:, t] = current
            if t > 0:
                current = backpointers[rows, t, current]
        else:
            active = t <= last
            best[:, t] = numpy.where(active, current, 0)
            current = numpy.where(active, backpointers[rows, t, current], current)
    return [best[i, : lengths[i]] for i in range(n_docs)]


def log_softmax(logits: numpy.ndarray) -> numpy.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - numpy.log(numpy.exp(shifted).sum(axis=1, keepdims=True))


class TrfTaggerEntityRecognizer(ScaledHead, TrainablePipe):
    """Sets doc.ents from a BILUO tag per token. `labels` are the entity labels (as for spaCy's
    `ner`); the model's outputs are `tags` (biluo_tag_names(labels))."""

    def __init__(self, vocab, model: Model, name: str = "trf_tagger_ner", *, scorer: Optional[Callable] = None):
        self.vocab = vocab
        self.model = model
        self.name = name
        self.scorer = scorer
        self.cfg: Dict[str, Any] = {"labels": []}

    @property
    def labels(self) -> tuple:
        return tuple(self.cfg["labels"])

    @property
    def label_data(self) -> tuple:
        return self.labels

    @property
    def tags(self) -> List[str]:
        return biluo_tag_names(self.labels)

    def add_label(self, label: str) -> int:
        if not isinstance(label, str):
            raise ValueError(f"'{self.name}': labels are strings, got {label!r}.")
        if label in self.labels:
            return 0
        output = self.model.get_ref("output_layer")
        if output.has_dim("nO"):
            raise SpacyMlmError(
                f"'{self.name}': cannot add label {label!r} to an initialized model (its softmax has "
                f"{output.get_dim('nO')} tags). Add all labels before nlp.initialize(), or pass them "
                "in [initialize.components] labels."
            )
        self.cfg["labels"].append(label)
        self.vocab.strings.add(label)
        return 1

    def predict(self, docs: Iterable[Doc]) -> List[Ints1d]:
        """The tag ids of each doc's best valid BILUO sequence (docs are not modified)."""
        docs = list(docs)
        if not any(len(doc) for doc in docs):
            return [numpy.zeros((0,), dtype="i") for _ in docs]
        scores = self.model.predict(docs)
        # One device-to-host copy for the batch, not one per doc.
        return self._decode_rows(docs, self.model.ops.to_numpy(self.model.ops.xp.concatenate(scores)))

    def decode(self, doc: Doc, logits: numpy.ndarray) -> numpy.ndarray:
        """The tag ids of the best valid BILUO sequence for one doc's logits (tokens x tags)."""
        return self._decode_rows([doc], logits)[0]

    def _decode_rows(self, docs: Sequence[Doc], logits: numpy.ndarray) -> List[numpy.ndarray]:
        """`decode` for each doc, from the docs' logits stacked as rows (doc after doc): log-softmax,
        no B/L/U on whitespace tokens, Viterbi. Row-wise, so one call serves the whole batch."""
        allowed, not_on_space = decoding_constraints(self.labels)
        log_probs = log_softmax(logits)
        # doc.to_array, not token.is_space: no Token object per token
        spaces = numpy.concatenate([doc.to_array(IS_SPACE) for doc in docs]).astype(bool)
        log_probs[numpy.ix_(spaces, not_on_space)] = -numpy.inf
        return viterbi_batch(numpy.split(log_probs, numpy.cumsum([len(doc) for doc in docs])[:-1]), allowed)

    def set_annotations(self, docs: Iterable[Doc], batch_tag_ids: Sequence[Ints1d]) -> None:
        """Add the predicted entities; entities already on the doc (e.g. an entity_ruler's) win
        where they overlap."""
        tags = self.tags
        for doc, tag_ids in zip(docs, batch_tag_ids):
            predicted = biluo_tags_to_spans(doc, [tags[i] for i in tag_ids])
            existing = list(doc.ents)  # doc.ents walks every token: read it once
            taken = {i for ent in existing for i in range(ent.start, ent.end)}
            new = [s for s in predicted if not taken.intersection(range(s.start, s.end))]
            doc.set_ents(existing + new, default="outside")

    def update(self, examples: Iterable[Example], *, drop: float = 0.0, sgd=None, losses=None) -> Dict[str, float]:
        examples = list(examples)
        if losses is None:
            losses = {}
        losses.setdefault(self.name, 0.0)
        validate_examples(examples, "TrfTaggerEntityRecognizer.update")
        if not any(len(eg.predicted) for eg in examples):
            return losses
        set_dropout_rate(self.model, drop)
        scores, backprop = self.model.begin_update([eg.predicted for eg in examples])
        loss, d_scores = self.get_loss(examples, scores)
        backprop(d_scores)
        if sgd not in (None, False):
            self.finish_update(sgd)
        losses[self.name] += loss
        return losses

    def get_loss(self, examples: Iterable[Example], scores: List[Floats2d]):
        """Cross-entropy per token, averaged over the batch's tokens (HF's token-classification
        loss). Tokens without gold annotation ('-') or misaligned with the gold tokens don't count."""
        validate_examples(examples, "TrfTaggerEntityRecognizer.get_loss")
        tags = self.tags
        known = set(tags)
        truths = []
        for eg in examples:
            doc_truths = [None if tag in (None, "-", "") else tag for tag in eg.get_aligned_ner()]
            for tag in doc_truths:
                if tag is not None and tag not in known:
                    raise SpacyMlmError(
                        f"'{self.name}': the training data has the entity label {tag[2:]!r}, which this "
                        f"component doesn't know (labels: {list(self.labels)}). Initialize it with data "
                        "that contains every label, or list them in [initialize.components] labels."
                    )
            truths.append(doc_truths)
        # Mean over the labelled tokens, as HF's CrossEntropyLoss (thinc's normalize divides by
        # the number of docs). The guesses are softmax outputs: d(loss)/d(logits) = (p - gold) / n.
        n_labelled = max(1, sum(tag is not None for doc_truths in truths for tag in doc_truths))
        index = {tag: i for i, tag in enumerate(tags)}
        xp = self.model.ops.xp
        loss, d_scores = 0.0, []
        for guess, doc_truths in zip(scores, truths):
            rows = [i for i, tag in enumerate(doc_truths) if tag is not None]
            gold = [index[doc_truths[i]] for i in rows]
            d_guess = guess.copy()
            d_guess[[i for i, tag in enumerate(doc_truths) if tag is None]] = 0.0
            d_guess[rows, gold] -= 1.0
            loss -= float(xp.log(xp.clip(guess[rows, gold], 1e-12, 1.0)).sum()) if rows else 0.0
            d_scores.append(d_guess / n_labelled)
        loss /= n_labelled
        if math.isnan(loss):
            raise SpacyMlmError(f"'{self.name}': the loss is NaN; lower the learning rate or check the inputs.")
        return loss, d_scores

    def initialize(self, get_examples: Callable[[], Iterable[Example]], *, nlp: Optional[Language] = None,
                   labels: Optional[Iterable[str]] = None) -> None:
        validate_get_examples(get_examples, "TrfTaggerEntityRecognizer.initialize")
        check_transformer_before(self, nlp)
        if labels is None:
            labels = sorted({ent.label_ for eg in get_examples() for ent in eg.reference.ents})
        for label in labels:
            self.add_label(label)
        if not self.labels:
            raise SpacyMlmError(
                f"'{self.name}': no entity labels: the examples given to initialize have no entities. "
                "Check the training data (doc.ents of the reference docs) or pass labels."
            )
        tags = self.tags
        doc_sample, label_sample = [], []
        for eg in islice(get_examples(), 10):
            doc_sample.append(eg.predicted)
            gold = eg.get_aligned_ner()
            label_sample.append(self.model.ops.asarray2f([[float(t == g) for t in tags] for g in gold]).reshape(len(gold), len(tags)))
        self.model.initialize(X=doc_sample, Y=label_sample)

    def score(self, examples: Iterable[Example], **kwargs) -> Dict[str, Any]:
        examples = list(examples)
        gold = {ent.label_ for eg in examples for ent in eg.reference.ents}
        warn_unseen_labels(self.name, gold, set(self.labels))
        return super().score(examples, **kwargs)

