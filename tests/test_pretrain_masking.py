"""Masking strategies: parity with HF DataCollatorForLanguageModeling, whole words, spans."""

import pytest
import torch
from transformers import AutoTokenizer, DataCollatorForLanguageModeling

from spacy_mlm.mlm_data.masking import span_masking, token_masking, whole_word_masking
from spacy_mlm.mlm_data.packing import Packer, collate

from .pretrain_fixtures import sentences

pytest_plugins = ["tests.pretrain_fixtures"]


def packed_batch(tokenizer, n_docs=400, seq_length=64, words=None):
    texts = sentences(n_docs, seed=5)
    packer = Packer(lambda: iter(texts), tokenizer, seq_length, word_boundaries=words)
    seqs = list(packer.epoch(0))
    return collate(seqs, tokenizer.pad_token_id, sorted(set(tokenizer.all_special_ids))), texts


@pytest.mark.parametrize("rate", [0.15, 0.4])
def test_token_masking_equals_hf_collator(pt_tokenizers, rate):
    tok = AutoTokenizer.from_pretrained(pt_tokenizers["wordpiece"])
    batch, _ = packed_batch(tok)
    special = batch["special"]
    masker = token_masking(rate=rate)
    ours_in, ours_lab = masker(batch["input_ids"], special, None, mask_token_id=tok.mask_token_id,
                               vocab_size=len(tok), generator=torch.Generator().manual_seed(3))
    hf = DataCollatorForLanguageModeling(tok, mlm_probability=rate)
    hf.generator = torch.Generator().manual_seed(3)
    hf_in, hf_lab = hf.torch_mask_tokens(batch["input_ids"].clone(), special)
    # Same random draws in the same order: identical masks, not just similar rates.
    assert torch.equal(ours_in, hf_in) and torch.equal(ours_lab, hf_lab)


def test_token_masking_rates_on_large_sample(pt_tokenizers):
    """Rates over ~100k tokens against the HF collator with independent seeds (3 sigma)."""
    tok = AutoTokenizer.from_pretrained(pt_tokenizers["bpe"])
    batch, _ = packed_batch(tok, n_docs=1500, seq_length=128)
    ids, special = batch["input_ids"], batch["special"]
    ours_in, ours_lab = token_masking(rate=0.15)(ids, special, None, mask_token_id=tok.mask_token_id,
                                                 vocab_size=len(tok), generator=torch.Generator().manual_seed(1))
    hf = DataCollatorForLanguageModeling(tok, mlm_probability=0.15)
    hf.generator = torch.Generator().manual_seed(99)
    hf_in, hf_lab = hf.torch_mask_tokens(ids.clone(), special)

    def rates(inputs, labels):
        masked = labels != -100
        n = int(masked.sum())
        return {
            "masked": n / int((~special).sum()),
            "mask_token": int((inputs[masked] == tok.mask_token_id).sum()) / n,
            "kept": int((inputs[masked] == ids[masked]).sum()) / n,
        }

    ours, theirs = rates(ours_in, ours_lab), rates(hf_in, hf_lab)
    n_tokens = int((~special).sum())
    assert n_tokens > 50_000
    assert not bool(((ours_lab != -100) & special).any()), "special tokens were masked"
    assert abs(ours["masked"] - 0.15) < 3 * (0.15 * 0.85 / n_tokens) ** 0.5 + 1e-3
    for key in ours:
        assert abs(ours[key] - theirs[key]) < 0.015, (key, ours, theirs)
    assert abs(ours["mask_token"] - 0.8) < 0.015
    assert abs(ours["kept"] - 0.1) < 0.015  # random replacements can hit the original: ~0.1 + 0.1/|V|


@pytest.mark.parametrize("kind", ["wordpiece", "bpe"])
def test_whole_word_masking_masks_all_pieces(pt_tokenizers, kind):
    tok = AutoTokenizer.from_pretrained(pt_tokenizers[kind])
    batch, _ = packed_batch(tok, words="whitespace")
    words, special = batch["word_ids"], batch["special"]
    _, labels = whole_word_masking(rate=0.2, word_boundaries="whitespace")(
        batch["input_ids"], special, words, mask_token_id=tok.mask_token_id, vocab_size=len(tok),
        generator=torch.Generator().manual_seed(0))
    masked = labels != -100
    # The small vocabulary splits long words into several pieces: the check is not vacuous.
    counts = torch.bincount(words[words >= 0])
    assert int((counts > 1).sum()) > 100
    for w in torch.unique(words[masked]).tolist():
        in_word = words == w
        assert bool(masked[in_word].all()), "a word was partly masked"
    word_rate = len(torch.unique(words[masked])) / len(torch.unique(words[words >= 0]))
    assert abs(word_rate - 0.2) < 0.03


def test_whole_word_masking_with_spacy_words(pt_tokenizers):
    tok = AutoTokenizer.from_pretrained(pt_tokenizers["wordpiece"])
    texts = ["paris, london. berlin!"]
    packer = Packer(lambda: iter(texts), tok, 32, word_boundaries="spacy")
    (ids, words), = list(packer.epoch(0))
    pieces = tok.convert_ids_to_tokens(ids)
    # spaCy splits the punctuation off: "paris" and "," are different words.
    by_word = {}
    for piece, w in zip(pieces, words):
        by_word.setdefault(w, []).append(piece)
    grouped = [",".join(v) for k, v in sorted(by_word.items()) if k >= 0]
    assert len(grouped) == 6
    assert grouped[:2] == [",".join(tok.tokenize("paris")), ",".join(tok.tokenize(","))]


def test_span_masking_never_overshoots_the_budget():
    """Words of 1-4 pieces, spans up to 10 words: no row masks more than round(rate * tokens)
    (a row's first word is the one exception, and here every word fits the budget)."""
    gen = torch.Generator().manual_seed(0)
    sizes = torch.randint(1, 5, (64, 96), generator=gen)
    word_ids = torch.stack([torch.repeat_interleave(torch.arange(96), row)[:96] for row in sizes])
    ids, special = torch.arange(96).repeat(64, 1), torch.zeros(64, 96, dtype=torch.bool)
    _, labels = span_masking(rate=0.15, p=0.1)(ids, special, word_ids, mask_token_id=0, vocab_size=100,
                                                 generator=torch.Generator().manual_seed(1))
    per_row = (labels != -100).sum(1)
    assert int(per_row.max()) <= round(0.15 * 96)
    assert float(per_row.float().mean()) >= 0.9 * round(0.15 * 96)


def test_span_masking_spans_are_whole_words_with_target_rate(pt_tokenizers):
    tok = AutoTokenizer.from_pretrained(pt_tokenizers["wordpiece"])
    # 256-token rows: a budget of ~38 tokens leaves room for whole spans (short rows cut them).
    batch, _ = packed_batch(tok, n_docs=800, seq_length=256, words="whitespace")
    words, special = batch["word_ids"], batch["special"]
    _, labels = span_masking(rate=0.15, word_boundaries="whitespace")(
        batch["input_ids"], special, words, mask_token_id=tok.mask_token_id, vocab_size=len(tok),
        generator=torch.Generator().manual_seed(0))
    masked = labels != -100
    rate = int(masked.sum()) / int((~special).sum())
    assert 0.14 <= rate <= 0.16  # the budget is never overshot after a row's first word
    # Per row: a word cut by a sequence boundary is two words for span masking.
    for row in range(words.shape[0]):
        for w in torch.unique(words[row][masked[row]]).tolist():
            assert bool(masked[row][words[row] == w].all())
    # Spans: runs of consecutive masked words are on average longer than single words.
    runs, current = [], 0
    for row in range(words.shape[0]):
        seen = []
        for w, m in zip(words[row].tolist(), masked[row].tolist()):
            if w >= 0 and (not seen or seen[-1][0] != w):
                seen.append((w, m))
        for _, m in seen:
            if m:
                current += 1
            elif current:
                runs.append(current)
                current = 0
    assert sum(runs) / len(runs) > 3.0  # SpanBERT reports 3.8 for p = 0.2, max 10
