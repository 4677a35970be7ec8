"""Masked-LM data, shared by pretraining (spacy_mlm.pretrain) and fill_mask's MLM loss (spacy_mlm.pipes):
text corpus readers (corpus), tokenizing and packing into sequences and batches (packing), and the
masking strategies (masking). The registered readers and maskers (`spacy_mlm.Corpus.v1`,
`spacy_mlm.TokenMasking.v1`, ...) live in spaCy's `misc` registry."""
