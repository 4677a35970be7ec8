"""Print (and write as Markdown) the pretrained vs random-init table of the `ablation` workflow.

    python scripts/ablation_report.py RESULTS_JSONL... --out metrics/ablation/table.md

Each RESULTS_JSONL holds the JSON lines bench/eval_tasks.py appends (one run per line; the
last line with a given tag wins).
"""

import argparse
import json
from pathlib import Path

from wasabi import msg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    runs = {}
    for path in args.results:
        if path.is_file():
            for line in path.read_text(encoding="utf8").splitlines():
                if line.strip():
                    run = json.loads(line)
                    runs[run["tag"]] = run
    header = ("encoder", "WNUT-17 dev F1", "SST-2 dev accuracy", "epochs / lr / batch")
    rows = []
    for tag, run in runs.items():
        ner, cat, a = run.get("ner/spacy", {}), run.get("textcat/spacy", {}), run["args"]
        rows.append((
            tag,
            f"{ner['ents_f']:.3f}" if ner else "-",
            f"{cat['accuracy']:.3f}" if cat else "-",
            f"{a['epochs']} / {a['lr']:g} / {a['batch_size']}",
        ))
    msg.table(rows, header=header, divider=True, title="Same fine-tuning budget, different encoders")
    if args.out:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n", encoding="utf8")


if __name__ == "__main__":
    main()
