"""fill_mask: predict masked tokens from the shared transformer's output.

One encoder pass serves every pipe: this component applies the checkpoint's MLM head
to the hidden states the `transformer` component already stored in `doc._.trf_data`.
During training (`nlp.update`, `spacy train`) it adds an MLM loss on masked copies of the
training docs through the shared transformer, so head and encoder stay in step while the
encoder is fine-tuned for other tasks.
That loss needs a second encoder pass: spacy-transformers tokenizes the docs' text inside its
model's forward, so masked ids could only enter the shared pass through a swapped tokenizer, and
every listener head would then train on the masks. `mlm_share` and `mlm_every` make the second pass
cheaper instead.
"""

from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy
import srsly
import torch
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.symbols import ORTH
from spacy.tokens import Doc, Token

from ..compat import incompatible_versions_error

try:  # a clear error (versions, pip command) instead of an ImportError deep inside spacy-transformers
    import spacy_transformers  # noqa: F401
except ImportError as e:
    raise incompatible_versions_error(e) from e

from thinc.api import Model, PyTorchWrapper_v2, get_array_module, xp2torch

from ..errors import SpacyMlmError
from ..mlm import MaskedLMHead
from ..mlm_data.masking import Masker
from ..util import IN_PLACE_HINT, atomic_write_bytes, disk_writes
from ._fill_mask_lookup import OOV_TARGETS, mask_hidden_states, mask_starts, target_ids
from ._fill_mask_parts import from_parts, read_parts, to_parts, unpack_parts
from ._fill_mask_training import MlmTraining
from ._runtime import prepare_pipe_process
from ._upstream import get_upstream_transformer, require_trf_data

# One doc's predictions: (token index, top-k vocabulary ids, their probabilities) per mask.
MaskPrediction = Tuple[int, numpy.ndarray, numpy.ndarray]

DEFAULT_FILL_MASK_CONFIG = {
    "top_k": 5,
    "targets": None,
    "oov_targets": "warn",
    "upstream": "transformer",
    "checkpoint": None,
    "mlm_rate": 0.15,
    "loss_weight": 1.0,
    "mlm_share": 1.0,
    "mlm_every": 1,
    "replay_text": None,
    "replay_docs": 0,
    # Whole words, round(mlm_rate * wordpieces) per window (at least one), as before the maskers were
    # shared with pretraining; now with BERT's 80/10/10 split.
    "masking": {"@misc": "spacy_mlm.SpanMasking.v1", "max_span": 1},
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
    oov_targets: str,
    upstream: str,
    checkpoint: Optional[str],
    mlm_rate: float,
    masking: Masker,
    loss_weight: float,
    mlm_share: float,
    replay_text: Optional[str],
    replay_docs: int,
    mlm_every: int,
) -> "FillMask":
    """Predict `[MASK]` / `<mask>` tokens with the MLM head of the shared transformer's checkpoint.

    top_k (int): number of predictions per mask token.
    targets (Optional[List[str]]): restrict predictions to these words (scores are not renormalised).
    oov_targets (str): a target that is not a vocabulary entry: "warn" (predict its first wordpiece,
        as HF's fill-mask pipeline does, with an OovTargetWarning naming both) or "error".
    upstream (str): name of the spacy-transformers component to read.
    checkpoint (Optional[str]): HF checkpoint holding the MLM head; default: the transformer's `name`.
    mlm_rate (float): share of words masked in the MLM loss during training; 0 turns it off.
    masking (Masker): how the training loss masks, as in pretraining (spacy_mlm.TokenMasking.v1,
        WholeWordMasking.v1, SpanMasking.v1 with their replace/random split); mlm_rate sets its rate.
    loss_weight (float): multiplies the MLM loss, and so its gradient into the shared encoder,
        against the other heads' losses (0 turns the loss off, as mlm_rate 0 does).
    mlm_share (float): share of each batch's transformer windows that the MLM loss runs on (at least
        one window), drawn afresh every step from the training seed; its second encoder pass costs
        about this share of a full one. 1 masks every window.
    mlm_every (int): run the MLM pass on every k-th update (with non-empty docs) only, over the last
        k batches' docs plus k * replay_docs replay docs (mlm_share of all their windows), with the
        loss times k: about the sum of k steps' MLM gradients (exactly k times the mean over all
        their masked tokens), in one pass that pays its fixed cost once per k steps. The optimizer
        sees it on one update in k (thinc's Adam and per-tensor clipping act on it there), and the
        logged loss is 0 on the others. Under spaCy's accumulate_gradient an update is one
        sub-batch. A run's last updates short of a multiple of k add no MLM loss. 1: every update.
    replay_text (Optional[str]): a text file or directory (read as `spacy-mlm pretrain` reads text)
        whose docs the MLM loss adds to each training batch, so that fine-tuning on task text keeps
        the encoder's masked-token accuracy on general text. Read at the first training step only.
    replay_docs (int): docs of replay_text added to each step's MLM batch (cycling through the text);
        mlm_share draws from their windows as from the task docs'.
    """
    prepare_pipe_process()
    return FillMask(nlp, name, top_k=top_k, targets=targets, oov_targets=oov_targets, upstream=upstream, checkpoint=checkpoint,
                    mlm_rate=mlm_rate, masking=masking, loss_weight=loss_weight,
                    mlm_share=mlm_share, replay_text=replay_text, replay_docs=replay_docs, mlm_every=mlm_every)


class FillMask(MlmTraining, TrainablePipe):
    """Fill-mask predictions for every mask token, in doc order, from one encoder pass; its MLM loss
    during training comes from MlmTraining (_fill_mask_training)."""

    def __init__(
        self,
        nlp: Language,
        name: str = "fill_mask",
        *,
        top_k: int = 5,
        targets: Optional[List[str]] = None,
        oov_targets: str = "warn",
        upstream: str = "transformer",
        checkpoint: Optional[str] = None,
        mlm_rate: float = 0.15,
        masking: Optional[Masker] = None,
        loss_weight: float = 1.0,
        mlm_share: float = 1.0,
        replay_text: Optional[str] = None,
        replay_docs: int = 0,
        mlm_every: int = 1,
    ) -> None:
        if top_k < 1:
            raise SpacyMlmError(f"fill_mask top_k must be at least 1, got {top_k}: set [components.{name}] top_k = 5.")
        self.name = name
        self.nlp = nlp
        self.vocab = nlp.vocab
        self.top_k = top_k
        self.targets = list(targets) if targets else None
        if oov_targets not in OOV_TARGETS:
            raise SpacyMlmError(f"fill_mask oov_targets = {oov_targets!r}: set [components.{name}] oov_targets to "
                                f"one of {', '.join(map(repr, OOV_TARGETS))}.")
        self.oov_targets = oov_targets
        self.upstream = upstream
        self.checkpoint = checkpoint
        self._init_training(mlm_rate=mlm_rate, masking=masking, loss_weight=loss_weight, mlm_share=mlm_share,
                            replay_text=replay_text, replay_docs=replay_docs, mlm_every=mlm_every)
        self.head: Optional[MaskedLMHead] = None
        self.model: Model = PyTorchWrapper_v2(torch.nn.Identity())
        self.cfg: Dict[str, Any] = {"mask_token": None, "target_ids": None}
        self._transformer = None  # the upstream component, resolved by initialize / from_disk
        self._mask_id: Optional[int] = None
        self._tied_to: Optional[torch.Tensor] = None
        self._token_str_cache: Dict[int, str] = {}
        install_extensions()

    # -- setup ----------------------------------------------------------------
    @property
    def upstream_model(self) -> Model:
        """The upstream transformer's thinc model (its .transformer and .tokenizer)."""
        if self._transformer is None:  # set together with the head
            raise SpacyMlmError(
                f"'{self.name}' has no MLM head yet: call nlp.initialize() (it loads the head from the "
                "transformer's checkpoint) or load a saved pipeline with spacy.load()."
            )
        return self._transformer.model

    @property
    def tokenizer(self):
        return self.upstream_model.tokenizer

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
        head = MaskedLMHead.from_checkpoint(source)
        tokenizer = transformer.model.tokenizer
        if tokenizer.mask_token is None:
            raise SpacyMlmError(
                f"The tokenizer of {source!r} has no mask token, so there is nothing for fill_mask to fill. "
                "Use a masked-LM checkpoint (BERT, RoBERTa, DistilBERT, ...)."
            )
        if len(tokenizer) > head.config.vocab_size:
            raise SpacyMlmError(
                f"The tokenizer of the '{self.upstream}' component has {len(tokenizer)} tokens but the "
                f"MLM head of {source!r} predicts {head.config.vocab_size}: they come from different checkpoints. "
                "Point fill_mask's `checkpoint` at the checkpoint the transformer was loaded from."
            )
        self.cfg["mask_token"] = tokenizer.mask_token
        self.cfg["target_ids"] = (target_ids(tokenizer, self.targets, self.name, self.oov_targets) if self.targets
                                  else None)
        self._set_head(head)
        # Masking draws follow the training seed (spaCy seeds torch in fix_random_seed).
        self._generator.manual_seed(int(torch.randint(2**62, ())))

    def _set_head(self, head: MaskedLMHead) -> None:
        """Install a head and resolve what it reads, once: the upstream component and its mask id."""
        self.head = head
        self.model = PyTorchWrapper_v2(head)
        self._transformer = get_upstream_transformer(self.nlp, self.upstream, self.name)
        self._mask_id = self._transformer.model.tokenizer.mask_token_id
        self._tied_to = None
        self._token_str_cache = {}
        self._reset_training()
        mask = self.mask_token
        if mask and hasattr(self.nlp.tokenizer, "add_special_case"):
            # Keep the mask string one spaCy token, e.g. in 'is [MASK].' or 'is <mask>.'.
            self.nlp.tokenizer.add_special_case(mask, [{ORTH: mask}])

    def tied_head(self) -> MaskedLMHead:
        """The MLM head, its decoder tied to the upstream transformer's current embedding matrix."""
        embeddings = self.upstream_model.transformer.get_input_embeddings()  # raises before initialize
        if self._tied_to is not embeddings.weight:  # loading the transformer replaces its modules
            self.head.tie_to(embeddings)
            self._tied_to = embeddings.weight
        return self.head

    # -- processing (__call__ and pipe: TrainablePipe's) ------------------------
    def predict(self, docs: Iterable[Doc]) -> List[List[MaskPrediction]]:
        """Top-k ids and probabilities for every mask token. Does not modify the docs."""
        docs = list(docs)
        positions: List[Tuple[int, int]] = []  # (doc index, token index) per mask token
        rows = []  # hidden state of each mask token's best wordpiece, or None
        for d, doc in enumerate(docs):
            starts = mask_starts(doc, self.mask_token, split_masks=not hasattr(self.nlp.tokenizer, "add_special_case"))
            if not starts:
                continue
            trf_data = require_trf_data(doc, self.name, self.upstream)
            positions.extend((d, token_i) for token_i in starts)
            rows.extend(mask_hidden_states(trf_data, starts, self._mask_id))
        found = [r for r in rows if r is not None]
        ids = scores = None
        if found:
            head = self.tied_head()
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
        predictions: List[List[MaskPrediction]] = [[] for _ in docs]
        row = 0
        for (d, i), hidden_row in zip(positions, rows):
            if hidden_row is None:  # mask fell outside every window (truncated)
                predictions[d].append((i, numpy.zeros((0,), dtype="i"), numpy.zeros((0,), dtype="f")))
            else:
                predictions[d].append((i, ids[row], scores[row]))
                row += 1
        return predictions

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

    def _fill(self, text: str, token, token_str: str) -> str:
        return text[: token.idx] + token_str.strip() + text[token.idx + len(self.mask_token) :]

    # -- serialization: one set of parts, as files (to_disk) or packed (to_bytes) ---
    def _parts(self) -> Dict[str, bytes]:
        if self.head is None:
            raise SpacyMlmError(f"Cannot save '{self.name}' before nlp.initialize() loaded its MLM head.")
        return to_parts(self.cfg, self.head)

    def _load_parts(self, parts: Dict[str, bytes], where: str) -> "FillMask":
        cfg, head = from_parts(parts, where)
        self.cfg.update(cfg)
        self._set_head(head)
        return self

    def to_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> None:
        path, parts = Path(path), self._parts()
        # Each file replaced atomically: a failed save never leaves a truncated file.
        with disk_writes(f"the '{self.name}' component", path, IN_PLACE_HINT):
            for name, data in parts.items():
                (path / name).parent.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(path / name, data)

    def from_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> "FillMask":
        return self._load_parts(read_parts(Path(path)), str(path))

    def to_bytes(self, *, exclude: Iterable[str] = tuple()) -> bytes:
        return srsly.msgpack_dumps(self._parts())

    def from_bytes(self, bytes_data: bytes, *, exclude: Iterable[str] = tuple()) -> "FillMask":
        return self._load_parts(unpack_parts(bytes_data), f"the bytes of '{self.name}'")
