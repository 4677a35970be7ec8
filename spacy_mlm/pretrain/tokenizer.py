"""Train a fast tokenizer with HF `tokenizers`, saved so `AutoTokenizer` loads it."""

import re
from functools import partial
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Union

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

from ..errors import SpacyMlmError
from ..mlm_data.corpus import corpus_of, read_file

WORDPIECE_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
BPE_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
# XLM-R's special tokens and ids; init-model hands the same strings to DeBERTa-v2's and ALBERT's classes.
UNIGRAM_SPECIALS = BPE_SPECIALS
TOKENIZER_KINDS = ("wordpiece", "bpe", "unigram")
# The weights of an HF model checkpoint: a new tokenizer must not be written beside them.
MODEL_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
# Runs of more than MAX_WORD_CHARS characters without a space (a base64 blob, minified code, a file
# without spaces) are left out of training: they are no words (a WordPiece tokenizer encodes a word
# that long as [UNK]), and the WordPiece trainer's time grows with the square of a word's length
# (one 1 MB run: 20 minutes).
MAX_WORD_CHARS = 100
_LONG_WORD = re.compile(r"\S{%d,}" % (MAX_WORD_CHARS + 1))


def iter_corpus_lines(paths: Iterable[Union[str, Path]]) -> Iterator[str]:
    """The texts of plain-text, JSONL (`text` field) or .spacy files, read as `pretrain` and `score` read
    them, except that plain-text lines keep their spaces (project/scripts/raw_text.py copies them)."""
    for path in paths:
        yield from corpus_of(str(path), partial(read_file, strip=False), max_docs=None)()


def train_tokenizer(
    texts: Iterable[str],
    output_dir: Union[str, Path],
    *,
    vocab_size: int,
    kind: str = "wordpiece",
    lowercase: bool = False,
    model_max_length: int = 512,
):
    """Train a WordPiece (BERT-style), byte-level BPE (RoBERTa-style) or Unigram (SentencePiece-style:
    `▁` starts a word; XLM-R, DeBERTa-v2/v3, ALBERT) tokenizer. The Unigram one is saved as tokenizer.json
    only (no sentencepiece .model file): the fast classes load it without the sentencepiece package.

    RETURNS (PreTrainedTokenizerFast): the tokenizer, also saved to output_dir.
    """
    hf_tok = build_tokenizer(texts, vocab_size=vocab_size, kind=kind, lowercase=lowercase,
                             model_max_length=model_max_length)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    hf_tok.save_pretrained(str(output_dir))
    return hf_tok


def build_tokenizer(
    texts: Iterable[str],
    *,
    vocab_size: int,
    kind: str = "wordpiece",
    lowercase: bool = False,
    model_max_length: int = 512,
    source: Optional[str] = None,
):
    """train_tokenizer without saving: RETURNS (PreTrainedTokenizerFast) the trained tokenizer.

    source: the files the texts come from, for the message when there is no text.
    """
    from transformers import BertTokenizerFast, RobertaTokenizerFast, XLMRobertaTokenizerFast

    if kind not in TOKENIZER_KINDS:
        raise SpacyMlmError(f"Unknown tokenizer kind {kind!r}: use one of {', '.join(TOKENIZER_KINDS)}.")
    if vocab_size < 100:
        raise SpacyMlmError(f"vocab_size={vocab_size} is too small: use at least 100.")
    if kind == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase, strip_accents=None if lowercase else False)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=WORDPIECE_SPECIALS)
        tok.decoder = decoders.WordPiece()
    elif kind == "unigram":
        tok = Tokenizer(models.Unigram())
        # SentencePiece's defaults: NFKC, runs of spaces collapsed, a `▁` before every word.
        steps = [normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")]
        tok.normalizer = normalizers.Sequence(steps + [normalizers.Lowercase()] if lowercase else steps)
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
        trainer = trainers.UnigramTrainer(
            vocab_size=vocab_size, special_tokens=UNIGRAM_SPECIALS, unk_token="<unk>", shrinking_factor=0.75
        )
        tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    else:
        tok = Tokenizer(models.BPE())
        if lowercase:
            tok.normalizer = normalizers.Lowercase()
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=BPE_SPECIALS,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        )
        tok.decoder = decoders.ByteLevel()
    n_texts = 0

    def counted(texts: Iterable[str]) -> Iterator[str]:
        nonlocal n_texts
        for text in texts:
            n_texts += 1
            yield _LONG_WORD.sub(" ", text) if len(text) > MAX_WORD_CHARS else text

    tok.train_from_iterator(counted(texts), trainer=trainer)
    if n_texts == 0:
        where = f"{source} holds no non-blank text" if source else "give at least one non-blank line of text"
        raise SpacyMlmError(f"The tokenizer corpus is empty: {where}. Check the paths, and that the files hold text.")
    if kind == "wordpiece":
        cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]",
            pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
        )
        hf_tok = BertTokenizerFast(
            tokenizer_object=tok, do_lower_case=lowercase, model_max_length=model_max_length
        )
    elif kind == "unigram":
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A </s>",
            pair="<s> $A </s> </s> $B </s>",
            special_tokens=[("<s>", tok.token_to_id("<s>")), ("</s>", tok.token_to_id("</s>"))],
        )
        hf_tok = XLMRobertaTokenizerFast(tokenizer_object=tok, model_max_length=model_max_length)
    else:
        tok.post_processor = processors.RobertaProcessing(
            ("</s>", tok.token_to_id("</s>")), ("<s>", tok.token_to_id("<s>")), add_prefix_space=False
        )
        hf_tok = RobertaTokenizerFast(tokenizer_object=tok, model_max_length=model_max_length)
    return hf_tok


def model_in(output_dir: Path) -> Optional[str]:
    """Why a new tokenizer must not be saved to output_dir even with --force: it holds a model, whose
    embedding rows belong to the vocabulary of the tokenizer it was built with."""
    found = [name for name in MODEL_FILES if (Path(output_dir) / name).exists()]
    if not found:
        return None
    return (f"The output directory {output_dir} holds a model ({', '.join(found)}): a new tokenizer there would replace the vocabulary "
            "its embeddings were trained with, so token ids would no longer match the weights. Save the tokenizer "
            "to a new directory and build a model on it with `spacy-mlm init-model` (--force does not allow this).")


def special_token_kwargs(tokenizer) -> dict:
    """The special-token strings of a tokenizer, as keyword arguments for a tokenizer class."""
    names: List[str] = ["pad_token", "unk_token", "cls_token", "sep_token", "mask_token", "bos_token", "eos_token"]
    return {name: getattr(tokenizer, name) for name in names if getattr(tokenizer, name, None) is not None}
