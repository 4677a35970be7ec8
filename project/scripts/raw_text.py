"""Write the unlabeled text for MLM pretraining: one doc per line, under OUTPUT_DIR.

    python scripts/raw_text.py OUTPUT_DIR --text FILE... [--textcat FILE...] [--ner FILE...]

--text files are copied line by line (blank lines dropped); --textcat files (any format
`spacy-mlm convert --kind textcat` reads) contribute their texts without the labels, --ner
files (CoNLL) their sentences without the tags. Only
training splits belong here: the dev/test text is what the evaluations hold out.
"""

import argparse
from pathlib import Path

from spacy.vocab import Vocab

from spacy_mlm.convert import read_conll_ner, read_textcat_examples
from spacy_mlm.pretrain.tokenizer import iter_corpus_lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("--text", nargs="*", default=[])
    parser.add_argument("--textcat", nargs="*", default=[])
    parser.add_argument("--ner", nargs="*", default=[])
    args = parser.parse_args()
    args.output_dir.mkdir(parents=True, exist_ok=True)
    for path in args.text:
        lines = list(iter_corpus_lines([path]))
        (args.output_dir / (Path(path).name + ".txt")).write_text("\n".join(lines) + "\n", encoding="utf8")
        print(f"{path}: {len(lines)} lines")
    for path in args.textcat:
        texts = [text for _, text, _ in read_textcat_examples(path)]
        (args.output_dir / (Path(path).name + ".txt")).write_text("\n".join(texts) + "\n", encoding="utf8")
        print(f"{path}: {len(texts)} texts (labels dropped)")
    for path in args.ner:
        texts = [doc.text for doc in read_conll_ner(path, n_sents=1, vocab=Vocab())]
        (args.output_dir / (Path(path).name + ".txt")).write_text("\n".join(texts) + "\n", encoding="utf8")
        print(f"{path}: {len(texts)} sentences (tags dropped)")


if __name__ == "__main__":
    main()
