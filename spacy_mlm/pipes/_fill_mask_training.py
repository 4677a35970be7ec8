"""fill_mask's MLM loss during training: masked copies of the docs' transformer windows (and of
replay text) through the shared encoder and the MLM head, with the settings `mlm_rate`, `masking`,
`loss_weight`, `mlm_share`, `mlm_every`, `replay_text` and `replay_docs` (see make_fill_mask)."""

import math
from itertools import islice
from typing import Dict, Iterable, Iterator, List, Optional

import torch
from spacy.tokens import Doc
from spacy.training import Example
from thinc.api import Optimizer

from ..errors import SpacyMlmError
from ..mlm_data.corpus import any_corpus
from ..mlm_data.masking import IGNORE_INDEX, Masker, span_masking
from ._mlm_batch import CALL_COST_PIECES, length_groups, masked_batch


class MlmTraining:
    """Mixin: the MLM-loss half of FillMask. The pipe provides `name`, `nlp`, `upstream_model`,
    `tokenizer`, `tied_head()`, its upstream component `_transformer` and `finish_update`, and calls
    `_reset_training()` whenever it installs a head."""

    def _init_training(self, *, mlm_rate: float, masking: Optional[Masker], loss_weight: float, mlm_share: float,
                       replay_text: Optional[str], replay_docs: int, mlm_every: int) -> None:
        """Check and keep the training settings (the errors name [components.<name>])."""
        name = self.name
        self.masking = masking if masking is not None else span_masking(max_span=1)
        self.mlm_rate = mlm_rate
        if loss_weight < 0:
            raise SpacyMlmError(f"fill_mask loss_weight must be >= 0, got {loss_weight}: set [components.{name}] loss_weight.")
        self.loss_weight = loss_weight
        if not 0.0 < mlm_share <= 1.0:
            raise SpacyMlmError(
                f"fill_mask mlm_share must be in (0, 1], got {mlm_share}: set [components.{name}] mlm_share "
                "(1 masks every window of the batch; mlm_rate 0 turns the MLM loss off)."
            )
        self.mlm_share = mlm_share
        if replay_docs < 0 or (replay_docs and not replay_text):
            raise SpacyMlmError(
                f"fill_mask replay_docs = {replay_docs} needs replay_docs >= 0 and, when > 0, a replay_text file: set "
                f"[components.{name}] replay_text = \"general.txt\" (or replay_docs = 0)."
            )
        self.replay_text = replay_text
        self.replay_docs = replay_docs
        self.mlm_every = mlm_every
        self._pending: List[Doc] = []  # docs of the updates since the last MLM pass
        self._pending_updates = 0
        self._replay_stream: Optional[Iterator[str]] = None
        self._generator = torch.Generator().manual_seed(0)

    def _reset_training(self) -> None:
        """Training state starts afresh with every head (initialize, from_disk): no docs waiting for
        an MLM pass, the replay text from its start."""
        self._pending, self._pending_updates, self._replay_stream = [], 0, None

    @property
    def mlm_rate(self) -> float:
        return self._mlm_rate

    @mlm_rate.setter
    def mlm_rate(self, value: float) -> None:
        if not 0.0 <= value < 1.0:
            raise SpacyMlmError(
                f"fill_mask mlm_rate must be in [0, 1), got {value}: set [components.{self.name}] mlm_rate "
                "(0.15 is BERT's rate; 0 turns the MLM loss off)."
            )
        self._mlm_rate = value
        if value:
            self.masking.rate = value

    @property
    def mlm_every(self) -> int:
        return self._mlm_every

    @mlm_every.setter
    def mlm_every(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise SpacyMlmError(
                f"fill_mask mlm_every must be a whole number >= 1, got {value!r}: set [components.{self.name}] mlm_every "
                "(1 runs the MLM pass every update; 4 every fourth update, over the last four batches)."
            )
        self._mlm_every = value

    def update(
        self,
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd: Optional[Optimizer] = None,
        losses: Optional[Dict[str, float]] = None,
    ) -> Dict[str, float]:
        """MLM loss on masked copies of the docs' transformer windows, times loss_weight, backpropagated
        into the head and the shared transformer's encoder (its own dropout, from the checkpoint's
        config, applies). `losses` gets the unweighted loss.
        With mlm_every = k, the docs wait for the k-th update, which runs one pass over the k batches'
        docs with the loss times k (about the sum of k steps' gradients); the other updates add nothing.
        The transformer applies its gradients in its own finish_update."""
        losses = {} if losses is None else losses
        losses.setdefault(self.name, 0.0)
        docs = [eg.predicted for eg in examples]
        if self.mlm_rate == 0.0 or self.loss_weight == 0.0 or not any(len(doc) for doc in docs):
            return losses
        dtype = self.upstream_model.attrs.get("dtype", "fp32")
        if dtype != "fp32":  # its MLM pass bypasses the transformer component, which refuses too
            from ..precision import train_in_fp32_fix

            raise SpacyMlmError(train_in_fp32_fix(dtype))
        self._pending += docs
        self._pending_updates += 1
        if self._pending_updates < self.mlm_every:
            return losses
        docs, self._pending, self._pending_updates = self._pending, [], 0
        docs += self.replay_batch(self.replay_docs * self.mlm_every)
        head = self.tied_head()
        batch = self.masked_batch(docs)
        predicted = batch["labels"] != IGNORE_INDEX
        if not predicted.any():
            return losses
        encoder, device = self.upstream_model.transformer, head.decoder_weight.device
        encoder.train()  # spacy-transformers puts it back in eval mode for prediction
        lengths = batch["attention_mask"].sum(dim=1).tolist()
        # On a GPU one call over more padding is assumed cheaper than another call (not measured).
        call_cost = CALL_COST_PIECES if device.type == "cpu" else math.inf
        logits, labels = [], []
        for rows in length_groups(lengths, call_cost):  # each group padded to its own longest row (right padding)
            index, width = torch.tensor(rows), max(lengths[row] for row in rows)
            masked = predicted[index, :width]
            if not masked.any():
                continue
            hidden = encoder(input_ids=batch["input_ids"][index, :width].to(device),
                             attention_mask=batch["attention_mask"][index, :width].to(device)).last_hidden_state
            logits.append(head(hidden[masked.to(device)]))
            labels.append(batch["labels"][index, :width][masked])
        loss = self.get_loss(examples, (torch.cat(logits), torch.cat(labels).to(device)))
        (loss * (self.loss_weight * self.mlm_every)).backward()
        if sgd is not None:
            self.finish_update(sgd)
            self._transformer.finish_update(sgd)
        losses[self.name] += float(loss.item())
        return losses

    def replay_batch(self, n_docs: int) -> List[Doc]:
        """The next `n_docs` docs of `replay_text` (starting it again when it runs out)."""
        if not n_docs:
            return []
        texts: List[str] = []
        for _ in range(2):  # at most one restart: a text of m < n_docs docs gives min(2m, n_docs), repeating them
            if self._replay_stream is None:
                try:
                    self._replay_stream = iter(any_corpus(self.replay_text)())
                except SpacyMlmError as e:
                    raise SpacyMlmError(f"[components.{self.name}] replay_text = {self.replay_text!r}: {e}") from None
            texts += islice(self._replay_stream, n_docs - len(texts))
            if len(texts) == n_docs:
                break
            self._replay_stream = None
        if not texts:
            raise SpacyMlmError(f"[components.{self.name}] replay_text = {self.replay_text!r} holds no text.")
        return [self.nlp.make_doc(text) for text in texts]

    def masked_batch(self, docs: List[Doc]) -> Dict[str, torch.Tensor]:
        """The upstream transformer's windows of the docs (an `mlm_share` of them, drawn uniformly),
        masked by `masking` (the next draw). The loss stays a mean over the masked tokens of the
        windows drawn: an estimate of the full batch's, with the same scale."""
        spans = [span for doc_spans in self.upstream_model.attrs["get_spans"](docs) for span in doc_spans]
        if self.mlm_share < 1.0:  # at 1 no draw: the masks stay those of every window
            keep = max(1, round(self.mlm_share * len(spans)))
            chosen = torch.randperm(len(spans), generator=self._generator)[:keep].sort().values
            spans = [spans[i] for i in chosen.tolist()]
        return masked_batch(spans, self.tokenizer, self.masking, self._generator)

    def get_loss(self, examples: Iterable[Example], scores) -> torch.Tensor:
        """Cross-entropy of the head's logits against the original wordpieces of the masked positions."""
        logits, labels = scores
        return torch.nn.functional.cross_entropy(logits.float(), labels)
