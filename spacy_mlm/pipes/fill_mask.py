"""fill_mask: predict masked tokens from the shared transformer's output.

One encoder pass serves every pipe: this component applies the checkpoint's MLM head
to the hidden states the `transformer` component already stored in `doc._.trf_data`.
"""

from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy
import srsly
import torch
from spacy import util
from spacy.language import Language
from spacy.pipeline import Pipe
from spacy.symbols import ORTH
from spacy.tokens import Doc, Token
from thinc.api import get_array_module, xp2torch

from ..errors import SpacyMlmError
from ..heads import MaskedLMHead, load_mlm_head
from ._upstream import get_upstream_transformer, require_trf_data

# One doc's predictions: (token index, top-k vocabulary ids, their probabilities) per mask.
MaskPrediction = Tuple[int, numpy.ndarray, numpy.ndarray]

DEFAULT_FILL_MASK_CONFIG = {
    "top_k": 5,
    "targets": None,
    "upstream": "transformer",
    "checkpoint": None,
}


def install_extensions() -> None:
    if not Doc.has_extension("fill_mask"):
        Doc.set_extension("fill_mask", default=None)
    if not Token.has_extension("fill_mask"):
        Token.set_extension("fill_mask", default=None)


@Language.factory(
    "fill_mask",
    assigns=["doc._.fill_mask", "token._.fill_mask"],
    requires=["doc._.trf_data"],
    default_config=DEFAULT_FILL_MASK_CONFIG,
)
def make_fill_mask(
    nlp: Language,
    name: str,
    top_k: int,
    targets: Optional[List[str]],
    upstream: str,
    checkpoint: Optional[str],
) -> "FillMask":
    """Predict `[MASK]` / `<mask>` tokens with the MLM head of the shared transformer's checkpoint.

    top_k (int): number of predictions per mask token.
    targets (Optional[List[str]]): restrict predictions to these words (scores are not renormalised).
    upstream (str): name of the spacy-transformers component to read.
    checkpoint (Optional[str]): HF checkpoint holding the MLM head; default: the transformer's `name`.
    """
    return FillMask(nlp, name, top_k=top_k, targets=targets, upstream=upstream, checkpoint=checkpoint)


class FillMask(Pipe):
    """Fill-mask predictions for every mask token, in doc order, from one encoder pass."""

    def __init__(
        self,
        nlp: Language,
        name: str = "fill_mask",
        *,
        top_k: int = 5,
        targets: Optional[List[str]] = None,
        upstream: str = "transformer",
        checkpoint: Optional[str] = None,
    ) -> None:
        if top_k < 1:
            raise SpacyMlmError(f"fill_mask top_k must be at least 1, got {top_k}.")
        self.name = name
        self.nlp = nlp
        self.vocab = nlp.vocab
        self.top_k = top_k
        self.targets = list(targets) if targets else None
        self.upstream = upstream
        self.checkpoint = checkpoint
        self.head: Optional[MaskedLMHead] = None
        self.cfg: Dict[str, Any] = {"mask_token": None, "target_ids": None}
        self._tied = False
        self._token_str_cache: Dict[int, str] = {}
        install_extensions()

    # -- setup ----------------------------------------------------------------
    @property
    def tokenizer(self):
        return get_upstream_transformer(self.nlp, self.upstream, self.name).model.tokenizer

    @property
    def mask_token(self) -> Optional[str]:
        return self.cfg["mask_token"]

    def initialize(self, get_examples=None, *, nlp: Optional[Language] = None, checkpoint: Optional[str] = None):
        """Load the MLM head from `checkpoint` (or the upstream transformer's checkpoint)."""
        if nlp is not None:
            self.nlp = nlp
        transformer = get_upstream_transformer(self.nlp, self.upstream, self.name)
        if transformer.model.tokenizer is None:  # transformer not initialized yet
            transformer.model.initialize()
        source = checkpoint or self.checkpoint or transformer.model.attrs["name"]
        self.head = load_mlm_head(source)
        self._tied = False
        self._setup_tokens(transformer.model.tokenizer, source)

    def _setup_tokens(self, tokenizer, source: str) -> None:
        if tokenizer.mask_token is None:
            raise SpacyMlmError(
                f"The tokenizer of {source!r} has no mask token, so there is nothing for fill_mask to fill. "
                "Use a masked-LM checkpoint (BERT, RoBERTa, DistilBERT, ...)."
            )
        vocab_size = self.head.config.vocab_size
        if len(tokenizer) > vocab_size:
            raise SpacyMlmError(
                f"The tokenizer of the '{self.upstream}' component has {len(tokenizer)} tokens but the "
                f"MLM head of {source!r} predicts {vocab_size}: they come from different checkpoints. "
                "Point fill_mask's `checkpoint` at the checkpoint the transformer was loaded from."
            )
        self.cfg["mask_token"] = tokenizer.mask_token
        self.cfg["target_ids"] = self._target_ids(tokenizer) if self.targets else None
        self._add_special_case()

    def _target_ids(self, tokenizer) -> List[int]:
        """Candidate ids for `targets`, resolved as HF's fill-mask pipeline resolves them."""
        vocab = tokenizer.get_vocab()
        ids = []
        for target in self.targets or []:
            id_ = vocab.get(target)
            if id_ is None:
                pieces = tokenizer(target, add_special_tokens=False, max_length=1, truncation=True)["input_ids"]
                if not pieces:
                    continue
                id_ = pieces[0]
            ids.append(int(id_))
        ids = list(set(ids))  # same order as HF, so ties break the same way
        if not ids:
            raise SpacyMlmError(f"None of the fill_mask targets {self.targets} maps to a vocabulary entry.")
        return ids

    def _add_special_case(self) -> None:
        """Keep the mask string one spaCy token, e.g. in 'is [MASK].' or 'is <mask>.'."""
        mask = self.mask_token
        if mask and hasattr(self.nlp.tokenizer, "add_special_case"):
            self.nlp.tokenizer.add_special_case(mask, [{ORTH: mask}])

    def _ensure_ready(self) -> MaskedLMHead:
        if self.head is None:
            raise SpacyMlmError(
                f"'{self.name}' has no MLM head yet: call nlp.initialize() (it loads the head from the "
                "transformer's checkpoint) or load a saved pipeline with spacy.load()."
            )
        if not self._tied:
            transformer = get_upstream_transformer(self.nlp, self.upstream, self.name)
            self.head.tie_to(transformer.model.transformer.get_input_embeddings())
            self._tied = True
        return self.head

    # -- processing -----------------------------------------------------------
    def __call__(self, doc: Doc) -> Doc:
        self.set_annotations([doc], self.predict([doc]))
        return doc

    def pipe(self, stream: Iterable[Doc], *, batch_size: int = 128):
        for docs in util.minibatch(stream, size=batch_size):
            self.set_annotations(docs, self.predict(docs))
            yield from docs

    def predict(self, docs: Iterable[Doc]) -> List[List[MaskPrediction]]:
        """Top-k ids and probabilities for every mask token. Does not modify the docs."""
        docs = list(docs)
        positions: List[Tuple[int, int]] = []  # (doc index, token index) per mask token
        rows = []  # hidden state of each mask token's best wordpiece, or None
        for d, doc in enumerate(docs):
            if self.mask_token is None or not any(t.text == self.mask_token for t in doc):
                continue
            trf_data = require_trf_data(doc, self.name, self.upstream)
            for token in doc:
                if token.text == self.mask_token:
                    positions.append((d, token.i))
                    rows.append(self._mask_hidden_state(trf_data, token.i))
        predictions: List[List[MaskPrediction]] = [[] for _ in docs]
        found = [r for r in rows if r is not None]
        if not found:
            for (d, i), _ in zip(positions, rows):
                predictions[d].append((i, numpy.zeros((0,), dtype="i"), numpy.zeros((0,), dtype="f")))
            return predictions
        head = self._ensure_ready()
        xp = get_array_module(found[0])
        hidden = xp2torch(xp.stack(found)).to(head.decoder_weight.device, head.decoder_weight.dtype)
        with torch.no_grad():
            probs = head(hidden).float().softmax(dim=-1)
            target_ids = self.cfg["target_ids"]
            if target_ids:
                probs = probs[:, target_ids]
            scores, ids = probs.topk(min(self.top_k, probs.shape[-1]), dim=-1)
        if target_ids:
            ids = torch.tensor(target_ids, device=ids.device)[ids]
        scores, ids = scores.cpu().numpy(), ids.cpu().numpy()
        row = 0
        for (d, i), hidden_row in zip(positions, rows):
            if hidden_row is None:  # mask fell outside every window (truncated)
                predictions[d].append((i, numpy.zeros((0,), dtype="i"), numpy.zeros((0,), dtype="f")))
            else:
                predictions[d].append((i, ids[row], scores[row]))
                row += 1
        return predictions

    def _mask_hidden_state(self, trf_data, token_i: int):
        """Hidden state of the mask wordpiece in the window where the mask is best centred."""
        hidden = trf_data.model_output.get("last_hidden_state")
        if hidden is None or hidden.size == 0 or token_i >= len(trf_data.align):
            return None
        n_spans, seq_len, width = hidden.shape
        flat_ids = trf_data.wordpieces.input_ids.reshape(-1)
        lengths = trf_data.wordpieces.attention_mask.sum(axis=1)
        mask_id = self.tokenizer.mask_token_id
        best, best_margin = None, -1
        for flat in trf_data.align[token_i].dataXd.ravel().tolist():
            if int(flat_ids[flat]) != mask_id:
                continue
            span, pos = divmod(flat, seq_len)
            margin = min(pos, int(lengths[span]) - 1 - pos)
            if margin > best_margin:
                best, best_margin = flat, margin
        if best is None:
            return None
        return hidden.reshape(-1, width)[best]

    def set_annotations(self, docs: Sequence[Doc], predictions: List[List[MaskPrediction]]) -> None:
        for doc, doc_predictions in zip(docs, predictions):
            entries = []
            for token_i, ids, scores in doc_predictions:
                token = doc[token_i]
                entry = [
                    {
                        "score": float(score),
                        "token": int(id_),
                        "token_str": self._token_str(int(id_)),
                        "sequence": self._fill(doc, token, self._token_str(int(id_))),
                    }
                    for id_, score in zip(ids.tolist(), scores.tolist())
                ]
                token._.fill_mask = entry
                entries.append(entry)
            doc._.fill_mask = entries

    def _token_str(self, id_: int) -> str:
        if id_ not in self._token_str_cache:
            self._token_str_cache[id_] = self.tokenizer.decode([id_])
        return self._token_str_cache[id_]

    @staticmethod
    def _fill(doc: Doc, token, token_str: str) -> str:
        return doc.text[: token.idx] + token_str.strip() + doc.text[token.idx + len(token.text) :]

    # -- serialization --------------------------------------------------------
    def to_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> None:
        serialize = {
            "cfg": lambda p: srsly.write_json(p, self.cfg),
            "head": lambda p: self._require_head().to_disk(p),
        }
        util.to_disk(path, serialize, exclude)

    def from_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> "FillMask":
        def load_head(p: Path) -> None:
            self.head = MaskedLMHead.from_disk(p)
            self._tied = False

        deserialize = {"cfg": lambda p: self.cfg.update(srsly.read_json(p)), "head": load_head}
        util.from_disk(path, deserialize, exclude)
        self._add_special_case()
        self._token_str_cache = {}
        return self

    def _require_head(self) -> MaskedLMHead:
        if self.head is None:
            raise SpacyMlmError(f"Cannot save '{self.name}' before nlp.initialize() loaded its MLM head.")
        return self.head
