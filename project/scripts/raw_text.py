"""Write the unlabeled text for MLM pretraining: one doc per line, under OUTPUT_DIR.

    python scripts/raw_text.py OUTPUT_DIR --text FILE... [--textcat FILE...] [--ner FILE...]

--text files are copied line by line (blank lines dropped); --textcat files (any format
`spacy-mlm convert --kind textcat` reads) contribute their texts without the labels, --ner
files (CoNLL) their sentences without the tags. Only
training splits belong here: the dev/test text is what the evaluations hold out.
Writes follow spacy-mlm's output rule (spacy_mlm/safe_output.py): a rerun replaces this script's own
earlier output; another non-empty OUTPUT_DIR needs --force, and an input's directory is refused.
"""

import argparse
import sys
from pathlib import Path

from spacy.vocab import Vocab

from spacy_mlm.convert import read_conll_ner, read_textcat_examples
from spacy_mlm.errors import SpacyMlmError
from spacy_mlm.pretrain.tokenizer import iter_corpus_lines
from spacy_mlm.safe_output import check_output, write_output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("--text", nargs="*", default=[])
    parser.add_argument("--textcat", nargs="*", default=[])
    parser.add_argument("--ner", nargs="*", default=[])
    parser.add_argument("--force", action="store_true", help="write into a non-empty directory this script did not write")
    args = parser.parse_args()
    try:
        write_raw_text(args)
    except SpacyMlmError as e:
        sys.exit(f"Error: {e}")


def write_raw_text(args: argparse.Namespace) -> None:
    output = check_output(args.output_dir, [*args.text, *args.textcat, *args.ner], command="python scripts/raw_text.py",
                          force=args.force)
    files = {}
    for path in args.text:
        lines = list(iter_corpus_lines([path]))
        files[Path(path).name + ".txt"] = lines
        print(f"{path}: {len(lines)} lines")
    for path in args.textcat:
        texts = [text for _, text, _ in read_textcat_examples(path)]
        files[Path(path).name + ".txt"] = texts
        print(f"{path}: {len(texts)} texts (labels dropped)")
    for path in args.ner:
        texts = [doc.text for doc in read_conll_ner(path, n_sents=1, vocab=Vocab())]
        files[Path(path).name + ".txt"] = texts
        print(f"{path}: {len(texts)} sentences (tags dropped)")

    def write(tmp: Path) -> None:
        for name, lines in files.items():
            (tmp / name).write_text("\n".join(lines) + "\n", encoding="utf8")

    write_output(output, write, "the raw text")


if __name__ == "__main__":
    main()
