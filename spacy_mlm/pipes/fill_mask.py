"""fill_mask: predict masked tokens from the shared transformer's output.

One encoder pass serves every pipe: this component applies the checkpoint's MLM head
to the hidden states the `transformer` component already stored in `doc._.trf_data`.
During training (`nlp.update`, `spacy train`) it adds an MLM loss on masked copies of the
training docs through the shared transformer, so head and encoder stay in step while the
encoder is fine-tuned for other tasks.
"""

from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy
import srsly
import torch
from spacy import util
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.symbols import ORTH
from spacy.tokens import Doc, Token
from spacy.training import Example

from ..compat import incompatible_versions_error

try:  # a clear error (versions, pip command) instead of an ImportError deep inside spacy-transformers
    from spacy_transformers.data_classes import FullTransformerBatch
    from transformers.file_utils import ModelOutput
except ImportError as e:
    raise incompatible_versions_error(e) from e

from thinc.api import Model, Optimizer, PyTorchWrapper_v2, get_array_module, set_dropout_rate, torch2xp, xp2torch

from ..errors import SpacyMlmError
from ..heads import MaskedLMHead, load_mlm_head
from ..util import IN_PLACE_HINT, atomic_write_text, disk_writes
from ._runtime import prepare_pipe_process
from ._upstream import get_upstream_transformer, require_trf_data

# One doc's predictions: (token index, top-k vocabulary ids, their probabilities) per mask.
MaskPrediction = Tuple[int, numpy.ndarray, numpy.ndarray]

DEFAULT_FILL_MASK_CONFIG = {
    "top_k": 5,
    "targets": None,
    "upstream": "transformer",
    "checkpoint": None,
    "mlm_rate": 0.15,
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
    mlm_rate: float,
) -> "FillMask":
    """Predict `[MASK]` / `<mask>` tokens with the MLM head of the shared transformer's checkpoint.

    top_k (int): number of predictions per mask token.
    targets (Optional[List[str]]): restrict predictions to these words (scores are not renormalised).
    upstream (str): name of the spacy-transformers component to read.
    checkpoint (Optional[str]): HF checkpoint holding the MLM head; default: the transformer's `name`.
    mlm_rate (float): share of tokens masked in the MLM loss during training; 0 turns it off.
    """
    prepare_pipe_process()
    return FillMask(
        nlp, name, top_k=top_k, targets=targets, upstream=upstream, checkpoint=checkpoint, mlm_rate=mlm_rate
    )


class FillMask(TrainablePipe):
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
        mlm_rate: float = 0.15,
    ) -> None:
        if top_k < 1:
            raise SpacyMlmError(f"fill_mask top_k must be at least 1, got {top_k}: set [components.{name}] top_k = 5.")
        if not 0.0 <= mlm_rate < 1.0:
            raise SpacyMlmError(
                f"fill_mask mlm_rate must be in [0, 1), got {mlm_rate}: set [components.{name}] mlm_rate "
                "(0.15 is BERT's rate; 0 turns the MLM loss off)."
            )
        self.name = name
        self.nlp = nlp
        self.vocab = nlp.vocab
        self.top_k = top_k
        self.targets = list(targets) if targets else None
        self.upstream = upstream
        self.checkpoint = checkpoint
        self.mlm_rate = mlm_rate
        self.head: Optional[MaskedLMHead] = None
        self.model: Model = PyTorchWrapper_v2(torch.nn.Identity())
        self.cfg: Dict[str, Any] = {"mask_token": None, "target_ids": None}
        self._tied = False
        self._token_str_cache: Dict[int, str] = {}
        self._mask_seed = 0
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
        self._set_head(load_mlm_head(source))
        self._setup_tokens(transformer.model.tokenizer, source)

    def _set_head(self, head: MaskedLMHead) -> None:
        self.head = head
        self.model = PyTorchWrapper_v2(head)
        self._tied = False

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
            raise SpacyMlmError(
                f"None of the fill_mask targets {self.targets} maps to a vocabulary entry: set "
                f"[components.{self.name}] targets to words the tokenizer knows, or to null for the whole vocabulary."
            )
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
            text = doc.text if doc_predictions else ""  # doc.text joins every token: build it once
            for token_i, ids, scores in doc_predictions:
                token = doc[token_i]
                entry = [
                    {
                        "score": float(score),
                        "token": int(id_),
                        "token_str": self._token_str(int(id_)),
                        "sequence": self._fill(text, token, self._token_str(int(id_))),
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
    def _fill(text: str, token, token_str: str) -> str:
        return text[: token.idx] + token_str.strip() + text[token.idx + len(token.text) :]

    # -- training -------------------------------------------------------------
    def update(
        self,
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd: Optional[Optimizer] = None,
        losses: Optional[Dict[str, float]] = None,
    ) -> Dict[str, float]:
        """MLM loss on masked copies of the docs, backpropagated into the head and the shared
        transformer. The transformer applies its gradients in its own finish_update."""
        losses = {} if losses is None else losses
        losses.setdefault(self.name, 0.0)
        docs = [eg.predicted for eg in examples]
        if self.mlm_rate == 0.0 or not any(len(doc) for doc in docs):
            return losses
        head = self._ensure_ready()
        transformer = get_upstream_transformer(self.nlp, self.upstream, self.name)
        masked_docs, labels_by_doc = self._mask_docs(docs)
        if not any(labels_by_doc):
            return losses
        set_dropout_rate(transformer.model, drop)
        trf_full, backprop = transformer.model.begin_update(masked_docs)
        hidden = trf_full.model_output.last_hidden_state
        positions, labels = self._mask_positions(trf_full, labels_by_doc)
        if not positions:
            return losses
        leaf = hidden.detach().requires_grad_()
        logits = head(leaf.reshape(-1, leaf.shape[-1])[torch.tensor(positions, device=leaf.device)])
        loss = self.get_loss(examples, (logits, torch.tensor(labels, device=logits.device)))
        loss.backward()
        d_output = FullTransformerBatch(
            spans=trf_full.spans, wordpieces=trf_full.wordpieces,
            model_output=ModelOutput(last_hidden_state=leaf.grad), align=trf_full.align,
        )
        backprop(d_output)
        if sgd is not None:
            self.finish_update(sgd)
            transformer.finish_update(sgd)
        losses[self.name] += float(loss.item())
        return losses

    def get_loss(self, examples: Iterable[Example], scores) -> torch.Tensor:
        """Cross-entropy of the head's logits against the masked tokens' first wordpieces."""
        logits, labels = scores
        return torch.nn.functional.cross_entropy(logits.float(), labels)

    def finish_update(self, sgd: Optimizer) -> None:
        """Step the head's own parameters. A decoder tied to the input embeddings is the
        transformer's parameter: the transformer's finish_update steps it, not us."""
        if self.head is None:
            return
        tied = self.head.decoder_weight if self.head.tied else None
        for name, param in self.head.named_parameters():
            if param.grad is None or param is tied:
                continue
            weights, _ = sgd((self.model.id, name), torch2xp(param.data), torch2xp(param.grad))
            param.data = xp2torch(weights, device=param.device)
            param.grad = None

    def _mask_docs(self, docs: List[Doc]) -> Tuple[List[Doc], List[List[Tuple[int, int]]]]:
        """Copies of the docs with ~mlm_rate of their tokens replaced by the mask token (whole
        spaCy tokens, so every tokenizer masks whole words), and (token index, label id) pairs:
        the label is the word's first wordpiece, what fill_mask predicts for one mask token."""
        tokenizer = self.tokenizer
        rng = numpy.random.default_rng(self._mask_seed)
        self._mask_seed += 1
        masked_docs, labels_by_doc = [], []
        for doc in docs:
            candidates = [t.i for t in doc if not t.is_space and t.text != self.mask_token]
            n = min(len(candidates), max(1, round(self.mlm_rate * len(candidates)))) if candidates else 0
            chosen = set(rng.choice(candidates, size=n, replace=False).tolist()) if n else set()
            words = [self.mask_token if t.i in chosen else t.text for t in doc]
            labels = []
            for i in sorted(chosen):
                prefix = " " if i > 0 and doc[i - 1].whitespace_ else ""
                ids = tokenizer(prefix + doc[i].text, add_special_tokens=False)["input_ids"]
                if ids:
                    labels.append((i, int(ids[0])))
            masked_docs.append(Doc(doc.vocab, words=words, spaces=[bool(t.whitespace_) for t in doc]))
            labels_by_doc.append(labels)
        return masked_docs, labels_by_doc

    def _mask_positions(self, trf_full, labels_by_doc) -> Tuple[List[int], List[int]]:
        """Flat wordpiece positions of the mask tokens in the batch output, with their labels.
        A mask inside two overlapping windows is trained in both."""
        seq_len = trf_full.wordpieces.input_ids.shape[1]
        flat_ids = trf_full.wordpieces.input_ids.reshape(-1)
        mask_id = self.tokenizer.mask_token_id
        positions, labels = [], []
        first_span = 0
        for doc_spans, doc_data, doc_labels in zip(trf_full.spans, trf_full.doc_data, labels_by_doc):
            offset = first_span * seq_len
            first_span += len(doc_spans)
            for token_i, label in doc_labels:
                if token_i >= len(doc_data.align):
                    continue
                for local in doc_data.align[token_i].dataXd.ravel().tolist():
                    if int(flat_ids[offset + local]) == mask_id:
                        positions.append(offset + local)
                        labels.append(label)
        return positions, labels

    # -- serialization --------------------------------------------------------
    def to_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> None:
        serialize = {
            "cfg": lambda p: atomic_write_text(p, srsly.json_dumps(self.cfg, indent=2)),
            "head": lambda p: self._require_head().to_disk(p),
        }
        with disk_writes(f"the '{self.name}' component", path, IN_PLACE_HINT):
            util.to_disk(path, serialize, exclude)

    def from_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> "FillMask":
        def load_head(p: Path) -> None:
            self._set_head(MaskedLMHead.from_disk(p))

        deserialize = {"cfg": lambda p: self.cfg.update(srsly.read_json(p)), "head": load_head}
        util.from_disk(path, deserialize, exclude)
        self._add_special_case()
        self._token_str_cache = {}
        return self

    def to_bytes(self, *, exclude: Iterable[str] = tuple()) -> bytes:
        head = self._require_head()
        return srsly.msgpack_dumps({
            "cfg": self.cfg,
            "config": head.config.to_json_string(),
            "tied": head.tied,
            "head": head.head_bytes(),
        })

    def from_bytes(self, bytes_data: bytes, *, exclude: Iterable[str] = tuple()) -> "FillMask":
        msg = srsly.msgpack_loads(bytes_data)
        self.cfg.update(msg["cfg"])
        self._set_head(MaskedLMHead.from_parts(msg["config"], msg["tied"], msg["head"]))
        self._add_special_case()
        self._token_str_cache = {}
        return self

    def _require_head(self) -> MaskedLMHead:
        if self.head is None:
            raise SpacyMlmError(f"Cannot save '{self.name}' before nlp.initialize() loaded its MLM head.")
        return self.head
