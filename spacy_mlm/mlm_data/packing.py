"""Tokenize a streaming corpus and pack several docs into each fixed-length sequence.

Sequence layout: [CLS] doc1 [SEP] doc2 [SEP] doc3... A doc longer than the sequence
continues in the next sequence: nothing is dropped. Only the last sequence of an epoch
is padded. Docs are tokenized in batches by the fast (Rust) tokenizer as they stream by,
or, with a cache directory, once: the packed sequences go to memory-mapped arrays that every
later epoch, --resume and every DDP process read instead of tokenizing again.
"""

import bisect
import hashlib
import json
import os
import random
import re
import shutil
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Tuple

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence

from ..errors import SpacyMlmError

Sequence_ = Tuple[List[int], Optional[List[int]]]  # token ids, word ids (-1: special)
WHITESPACE_WORD = re.compile(r"\S+")
CACHE_FORMAT = 1  # bump when the layout of the cached arrays changes


def piece_word_ids(text: str, word_starts: List[int], offsets: List[Tuple[int, int]]) -> List[int]:
    """The word of each piece (0, 1, ... in order), from the words' start characters and the pieces' offsets.

    A piece belongs to the word of its first non-space character: SentencePiece's `▁` and byte-level BPE's
    `Ġ` carry the space before their word in their offsets, and a bare `▁` piece starts the next word.
    Words that one piece spans (a piece across a spaCy token boundary) become one word, so whole-word
    masking never masks part of a piece's word.
    """
    if not word_starts:
        return [0] * len(offsets)

    def word_at(char: int) -> int:
        return max(0, bisect.bisect_right(word_starts, char) - 1)

    merged = list(range(len(word_starts)))  # word -> the first word it is merged into
    firsts = []
    for start, end in offsets:
        piece = text[start:end]
        content = piece.strip()
        if content:
            first = start + len(piece) - len(piece.lstrip())
            first_word, last_word = word_at(first), word_at(first + len(content) - 1)
        else:  # whitespace or empty: the start of the next word
            first_word = last_word = min(bisect.bisect_left(word_starts, end), len(word_starts) - 1)
        for word in range(first_word + 1, last_word + 1):
            merged[word] = merged[first_word]
        firsts.append(first_word)
    labels = [merged[word] for word in firsts]
    renumbered = {label: n for n, label in enumerate(sorted(set(labels)))}
    return [renumbered[label] for label in labels]


class Packer:
    def __init__(
        self,
        corpus: Callable[[], Iterator[str]],
        tokenizer,
        seq_length: int,
        *,
        word_boundaries: Optional[str] = None,
        word_lang: str = "xx",
        tokenize_batch: int = 256,
        shuffle_buffer: int = 0,
        seed: int = 0,
        name: str = "corpus",
        cache_dir: Optional[Path] = None,
        corpus_key: str = "",
    ) -> None:
        """cache_dir: tokenize and pack once into this directory (see cache_path); corpus_key: what,
        besides its files, defines the corpus's texts (reader settings, held-out split)."""
        if seq_length < 8:
            raise SpacyMlmError(f"[training] seq_length = {seq_length} is too short: use at least 8.")
        self.corpus, self.tokenizer, self.seq_length = corpus, tokenizer, seq_length
        self.word_boundaries, self.word_lang = word_boundaries, word_lang
        self.tokenize_batch, self.shuffle_buffer, self.seed, self.name = tokenize_batch, shuffle_buffer, seed, name
        self.cls_id = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
        self.sep_id = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
        if self.sep_id is None:
            raise SpacyMlmError("The tokenizer has no separator (sep/eos) token to mark document boundaries.")
        self._spacy_tokenizer = None
        self.cache_dir, self.corpus_key = (Path(cache_dir) if cache_dir is not None else None), corpus_key
        self._cached: Optional[Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]] = None

    def _word_starts(self, text: str) -> List[int]:
        if self.word_boundaries == "spacy":
            if self._spacy_tokenizer is None:
                import spacy

                self._spacy_tokenizer = spacy.blank(self.word_lang).tokenizer
            return [t.idx for t in self._spacy_tokenizer(text) if not t.is_space]
        return [m.start() for m in WHITESPACE_WORD.finditer(text)]

    def _docs(self) -> Iterator[Sequence_]:
        """(ids, word ids) per doc, without special tokens; word ids count up within the doc."""
        batch: List[str] = []

        def flush() -> Iterator[Sequence_]:
            enc = self.tokenizer(
                batch, add_special_tokens=False, return_attention_mask=False, return_token_type_ids=False,
                return_offsets_mapping=self.word_boundaries is not None, verbose=False,
            )
            for i, ids in enumerate(enc["input_ids"]):
                if self.word_boundaries is None:
                    yield ids, None
                    continue
                yield ids, piece_word_ids(batch[i], self._word_starts(batch[i]), enc["offset_mapping"][i])

        for text in self.corpus():
            batch.append(text)
            if len(batch) >= self.tokenize_batch:
                yield from flush()
                batch = []
        if batch:
            yield from flush()

    def _packed(self) -> Iterator[Sequence_]:
        if self.cache_dir is None:
            yield from self._tokenized_and_packed()
            return
        ids, lengths, words = self.load_cache()
        for i, n in enumerate(lengths.tolist()):
            yield ids[i, :n].tolist(), (words[i, :n].tolist() if words is not None else None)

    def _tokenized_and_packed(self) -> Iterator[Sequence_]:
        body = self.seq_length - (1 if self.cls_id is not None else 0)
        head = [self.cls_id] if self.cls_id is not None else []
        ids_buf: List[int] = []
        words_buf: List[int] = []
        word_offset = 0
        with_words = self.word_boundaries is not None
        for ids, words in self._docs():
            ids_buf.extend(ids)
            ids_buf.append(self.sep_id)
            if with_words:
                words_buf.extend(w + word_offset for w in words)
                words_buf.append(-1)
                word_offset += (max(words) + 1) if words else 0
            while len(ids_buf) >= body:
                yield head + ids_buf[:body], ([-1] * len(head) + words_buf[:body]) if with_words else None
                del ids_buf[:body]
                if with_words:
                    del words_buf[:body]
        if ids_buf:
            yield head + ids_buf, ([-1] * len(head) + words_buf) if with_words else None

    # ---- the tokenize-once cache

    def cache_path(self) -> Path:
        """CACHE_DIR/<hash of the corpus files (path, size, mtime), corpus_key, tokenizer, seq_length, word boundaries>."""
        files = getattr(self.corpus, "files", None)
        if files is None:
            raise SpacyMlmError(f"The {self.name} has no files to key a tokenization cache on.")
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is not None:
            # The model, not the truncation/padding state each call of a fast tokenizer resets.
            tokenizer = {k: v for k, v in json.loads(backend.to_str()).items() if k not in ("truncation", "padding")}
        else:
            tokenizer = sorted(self.tokenizer.get_vocab().items())
        key = {
            "format": CACHE_FORMAT,
            "files": [[str(Path(f).resolve()), os.stat(f).st_size, os.stat(f).st_mtime_ns] for f in files],
            "corpus": self.corpus_key,
            "tokenizer": tokenizer,
            "seq_length": self.seq_length, "word_boundaries": self.word_boundaries,
            "word_lang": self.word_lang,
            "cls": self.cls_id, "sep": self.sep_id,
        }
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode("utf8")).hexdigest()[:24]
        return self.cache_dir / f"{re.sub(r'[^a-z]+', '-', self.name)}-{digest}"

    def build_cache(self) -> Tuple[Path, bool]:
        """Tokenize and pack the corpus into cache_path(), unless it is there. RETURNS (path, built now)."""
        path = self.cache_path()
        if (path / "meta.json").is_file():
            return path, False
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        print(f"Tokenizing the {self.name} once into {path}", flush=True)
        start = time.perf_counter()
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.cache_dir))  # renamed into place when complete
        rows, tokens, L = 0, 0, self.seq_length
        with_words = self.word_boundaries is not None
        with (tmp / "ids.bin").open("wb") as f_ids, (tmp / "lengths.bin").open("wb") as f_len, \
                (tmp / "words.bin").open("wb") as f_words:
            for ids, words in self._tokenized_and_packed():
                f_ids.write(np.asarray(ids + [0] * (L - len(ids)), dtype=np.int32).tobytes())
                f_len.write(np.int32(len(ids)).tobytes())
                if with_words:
                    f_words.write(np.asarray(words + [-1] * (L - len(words)), dtype=np.int32).tobytes())
                rows, tokens = rows + 1, tokens + len(ids)
        seconds = time.perf_counter() - start
        meta = {"rows": rows, "seq_length": L, "words": with_words, "tokens": tokens, "seconds": round(seconds, 3)}
        (tmp / "meta.json").write_text(json.dumps(meta))
        try:
            tmp.rename(path)
        except OSError:  # another process finished the same cache first: use theirs
            shutil.rmtree(tmp, ignore_errors=True)
        print(f"Tokenized {tokens:,} tokens into {rows:,} sequences in {seconds:.1f} s "
              f"({tokens / max(seconds, 1e-9):,.0f} tokens/s)", flush=True)
        return path, True

    def load_cache(self) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
        """(ids (rows, seq_length), lengths (rows,), word ids or None), memory-mapped; built if missing."""
        if self._cached is None:
            path, _ = self.build_cache()
            meta = json.loads((path / "meta.json").read_text())
            rows, L = meta["rows"], meta["seq_length"]

            def read(name: str, shape: Tuple[int, ...]) -> np.ndarray:
                if rows == 0:  # an empty file cannot be memory-mapped
                    return np.zeros(shape, dtype=np.int32)
                return np.memmap(path / name, dtype=np.int32, mode="r", shape=shape)

            words = read("words.bin", (rows, L)) if meta["words"] else None
            self._cached = (read("ids.bin", (rows, L)), read("lengths.bin", (rows,)), words)
        return self._cached

    def epoch(self, epoch: int) -> Iterator[Sequence_]:
        """One pass over the corpus; with a shuffle buffer the order depends on (seed, epoch) only."""
        if self.shuffle_buffer <= 1:
            yield from self._packed()
            return
        rng = random.Random(self.seed * 1_000_003 + epoch)
        buffer: List[Sequence_] = []
        for seq in self._packed():
            buffer.append(seq)
            if len(buffer) >= self.shuffle_buffer:
                i = rng.randrange(len(buffer))
                buffer[i], buffer[-1] = buffer[-1], buffer[i]
                yield buffer.pop()
        rng.shuffle(buffer)
        yield from buffer

    def files_text(self) -> str:
        """The corpus files, for messages."""
        return ", ".join(map(str, getattr(self.corpus, "files", None) or [])) or "the corpus"

    def stream(self, skip: int = 0) -> Iterator[Tuple[int, Sequence_]]:
        """(epoch, sequence) forever, skipping the first `skip` sequences (to resume)."""
        epoch, seen = 0, 0
        while True:
            n = 0
            for seq in self.epoch(epoch):
                n += 1
                seen += 1
                if seen > skip:
                    yield epoch, seq
            if n == 0:
                raise SpacyMlmError(f"The {self.name} is empty: {self.files_text()} holds no non-blank text.")
            epoch += 1


def collate(seqs: List[Sequence_], pad_id: int, special_ids: List[int]) -> dict:
    """Pad to the longest sequence; `special` marks tokens never to mask (specials, padding)."""
    # torch's pad_sequence, not tokenizer.pad: the word ids need padding too, and tokenizer.pad
    # pads only the tokenizer's own fields.
    pad = partial(pad_sequence, batch_first=True)
    input_ids = pad([torch.tensor(ids, dtype=torch.long) for ids, _ in seqs], padding_value=pad_id)
    attention_mask = pad([torch.ones(len(ids), dtype=torch.long) for ids, _ in seqs], padding_value=0)
    word_ids = pad([torch.tensor(words if words is not None else [-1] * len(ids), dtype=torch.long)
                    for ids, words in seqs], padding_value=-1)
    special = torch.isin(input_ids, torch.tensor(special_ids, dtype=torch.long)) | (attention_mask == 0)
    word_ids[special] = -1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "word_ids": word_ids, "special": special}
