"""One reader per annotated data format (text corpora for pretraining: spacy_mlm.mlm_data.corpus)."""

from .conll import iob_to_iob2, read_conll_ner, read_conll_sentences
from .parallel_labels import read_label_mapping, read_parallel_examples, read_parallel_textcat
from .sts import read_sts, read_sts_rows
from .textcat import TEXTCAT_FORMATS, detect_textcat_format, read_textcat, read_textcat_examples

__all__ = ["iob_to_iob2", "read_conll_ner", "read_conll_sentences", "read_sts", "read_sts_rows", "TEXTCAT_FORMATS",
           "detect_textcat_format", "read_textcat", "read_textcat_examples", "read_label_mapping",
           "read_parallel_examples", "read_parallel_textcat"]
