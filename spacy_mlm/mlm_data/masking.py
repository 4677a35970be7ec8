"""Masking strategies, each a registered function returning a `Masker`.

A masker picks positions to predict, then applies BERT's replace/random/keep split to
them. Token masking draws its random numbers in the same order as HF
`DataCollatorForLanguageModeling`, so with the same torch generator state both produce
the same masks.
"""

from typing import Optional, Tuple

import torch
from spacy.util import registry

from ..errors import SpacyMlmError

IGNORE_INDEX = -100
WORD_BOUNDARIES = ("whitespace", "spacy")


class Masker:
    """Base class: `select` picks the positions; `__call__` corrupts the inputs."""

    # None: the masker needs no word ids; else how words are found ("whitespace" or "spacy").
    word_boundaries: Optional[str] = None
    # With word_boundaries "spacy": the spaCy language whose tokenizer finds the words.
    word_lang: str = "xx"

    def __init__(self, rate: float, replace: float, random: float) -> None:
        if not 0.0 < rate < 1.0:
            raise SpacyMlmError(f"[masking] rate = {rate}: use a value between 0 and 1 (BERT: 0.15, 0.15-0.4 works).")
        if replace < 0 or random < 0 or replace + random > 1.0:
            raise SpacyMlmError(
                f"[masking] replace = {replace}, random = {random}: both >= 0 and replace + random <= 1 "
                "(BERT: 0.8 and 0.1; the rest keeps the original token)."
            )
        self.rate, self.replace, self.random = rate, replace, random

    def select(
        self, input_ids: torch.Tensor, special: torch.Tensor, word_ids: Optional[torch.Tensor], generator: torch.Generator
    ) -> torch.Tensor:
        raise NotImplementedError

    def __call__(
        self,
        input_ids: torch.Tensor,
        special: torch.Tensor,
        word_ids: Optional[torch.Tensor],
        *,
        mask_token_id: int,
        vocab_size: int,
        generator: torch.Generator,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """RETURNS (inputs, labels): corrupted inputs, and labels that are -100 where nothing is predicted."""
        labels = input_ids.clone()
        masked = self.select(input_ids, special, word_ids, generator) & ~special
        labels[~masked] = IGNORE_INDEX
        inputs = input_ids.clone()
        replaced = torch.bernoulli(torch.full(labels.shape, self.replace), generator=generator).bool() & masked
        inputs[replaced] = mask_token_id
        if self.replace == 1 or self.random == 0:
            return inputs, labels
        scaled = self.random / (1 - self.replace)
        randomized = torch.bernoulli(torch.full(labels.shape, scaled), generator=generator).bool() & masked & ~replaced
        random_words = torch.randint(vocab_size, labels.shape, dtype=torch.long, generator=generator)
        inputs[randomized] = random_words[randomized]
        return inputs, labels


class TokenMasker(Masker):
    def select(self, input_ids, special, word_ids, generator):
        probability = torch.full(input_ids.shape, self.rate)
        probability.masked_fill_(special, 0.0)
        return torch.bernoulli(probability, generator=generator).bool()


class WholeWordMasker(Masker):
    def __init__(self, rate: float, replace: float, random: float, word_boundaries: str, lang: str = "xx") -> None:
        super().__init__(rate, replace, random)
        if word_boundaries not in WORD_BOUNDARIES:
            raise SpacyMlmError(f"word_boundaries = {word_boundaries!r}: use one of {', '.join(WORD_BOUNDARIES)}.")
        import spacy

        try:
            spacy.util.get_lang_class(lang)
        except ImportError:
            raise SpacyMlmError(
                f"[masking] lang = {lang!r} is not a spaCy language: use a code such as xx (any language written "
                "with spaces), en, de, zh, ja (see spacy.blank)."
            ) from None
        self.word_boundaries, self.word_lang = word_boundaries, lang

    def select(self, input_ids, special, word_ids, generator):
        valid = word_ids >= 0
        words, inverse = torch.unique(word_ids[valid], return_inverse=True)
        chosen = torch.bernoulli(torch.full((len(words),), self.rate), generator=generator).bool()
        masked = torch.zeros_like(valid)
        masked[valid] = chosen[inverse]
        return masked


class SpanMasker(WholeWordMasker):
    """SpanBERT: spans of whole words with geometric lengths until `rate` of the tokens are masked."""

    def __init__(self, rate, replace, random, word_boundaries, p: float, max_span: int, lang: str = "xx") -> None:
        super().__init__(rate, replace, random, word_boundaries, lang)
        if not 0 < p < 1 or max_span < 1:
            raise SpacyMlmError(f"[masking] p = {p}, max_span = {max_span}: need 0 < p < 1 and max_span >= 1.")
        self.p, self.max_span = p, max_span

    def select(self, input_ids, special, word_ids, generator):
        masked = torch.zeros(input_ids.shape, dtype=torch.bool)
        for row in range(input_ids.shape[0]):
            ids = word_ids[row]
            valid = ids >= 0
            words, inverse = torch.unique_consecutive(ids[valid], return_inverse=True)
            if len(words) == 0:
                continue
            budget = max(1, round(self.rate * int(valid.sum())))
            word_masked = torch.zeros(len(words), dtype=torch.bool)
            sizes = torch.bincount(inverse, minlength=len(words))
            n_masked = 0
            for _ in range(4 * len(words)):  # bounded: the budget may not be reachable exactly
                if n_masked >= budget:
                    break
                u = torch.rand(2, generator=generator)
                # Inverse CDF of the geometric distribution on 1, 2, ...
                length = min(self.max_span, int(torch.ceil(torch.log(1 - u[0]) / torch.log(torch.tensor(1 - self.p)))))
                start = int(u[1] * len(words))
                # As in SpanBERT, a span stops where the budget would be overshot (SpanBERT cuts
                # mid-word; we stop before the word, so spans stay whole words), except that a
                # row's first word is always masked.
                for word in range(start, min(start + max(1, length), len(words))):
                    if word_masked[word]:
                        continue
                    if n_masked and n_masked + int(sizes[word]) > budget:
                        break
                    word_masked[word] = True
                    n_masked += int(sizes[word])
            row_mask = torch.zeros(int(valid.sum()), dtype=torch.bool)
            row_mask[:] = word_masked[inverse]
            masked[row, valid] = row_mask
        return masked


@registry.misc.register("spacy_mlm.TokenMasking.v1")
def token_masking(rate: float = 0.15, replace: float = 0.8, random: float = 0.1) -> Masker:
    """BERT masking: each non-special token is predicted with probability `rate`; of those,
    `replace` become the mask token, `random` a random token, the rest stay."""
    return TokenMasker(rate, replace, random)


@registry.misc.register("spacy_mlm.WholeWordMasking.v1")
def whole_word_masking(
    rate: float = 0.15, replace: float = 0.8, random: float = 0.1, word_boundaries: str = "spacy", lang: str = "xx"
) -> Masker:
    """Each word (a spaCy token, or a whitespace-separated word) is masked with probability
    `rate`, all its subword pieces together, whatever the tokenizer (WordPiece, BPE, SentencePiece).
    lang: the spaCy language that splits words (xx: spaces and punctuation; zh, ja, th, ...: text
    without spaces, which xx leaves as one word)."""
    return WholeWordMasker(rate, replace, random, word_boundaries, lang)


@registry.misc.register("spacy_mlm.SpanMasking.v1")
def span_masking(
    rate: float = 0.15, replace: float = 0.8, random: float = 0.1, word_boundaries: str = "spacy",
    p: float = 0.2, max_span: int = 10, lang: str = "xx",
) -> Masker:
    """SpanBERT masking: spans of whole words, lengths ~ Geometric(p) clipped at max_span, until
    round(rate * tokens) of each row are masked (a span stops before the word that would overshoot;
    only a row's first word may exceed it alone); lang as for spacy_mlm.WholeWordMasking.v1."""
    return SpanMasker(rate, replace, random, word_boundaries, p, max_span, lang)
