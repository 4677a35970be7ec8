"""`spacy-mlm init-config`: the default configs ship with the package (configs/ in the repo links
to them), and the written configs are complete, valid and keep every default."""

from importlib.resources import files
from pathlib import Path

import pytest
import spacy
from click.testing import CliRunner
from thinc.api import Config

from spacy_mlm.cli import cli
from spacy_mlm.init_config import CONFIG_FILES

pytest_plugins = ["tests.pretrain_fixtures"]

REPO_CONFIGS = Path(__file__).resolve().parent.parent / "configs"
PACKAGED = files("spacy_mlm").joinpath("configs")


def flat(config: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def init_config(tmp_path: Path, kind: str, *args: str) -> Config:
    out = tmp_path / f"{kind}.cfg"
    result = CliRunner().invoke(cli, ["init-config", kind, str(out), *args])
    assert result.exit_code == 0, result.output
    return Config().from_disk(out, interpolate=False)


def test_repo_configs_are_the_packaged_ones():
    packaged = sorted(p.name for p in PACKAGED.iterdir() if p.name.endswith(".cfg"))
    assert packaged == sorted(f"{kind}.cfg" for kind in CONFIG_FILES)
    # One set of configs: the repo's configs/ is a link to the packaged folder, not a copy.
    assert REPO_CONFIGS.is_symlink() and REPO_CONFIGS.resolve() == Path(str(PACKAGED)).resolve()


@pytest.mark.parametrize("kind", CONFIG_FILES)
def test_init_config_keeps_every_default_and_fills_the_rest(kind, tmp_path):
    shipped = flat(Config().from_str(PACKAGED.joinpath(f"{kind}.cfg").read_text(encoding="utf8"), interpolate=False))
    written = flat(init_config(tmp_path, kind))
    assert {key: written.get(key) for key in shipped} == shipped
    if kind != "pretrain":
        # spaCy filled what the short configs leave to the factories' defaults.
        assert len(written) > len(shipped) and "components.transformer.model.get_spans.window" in written
        nlp = spacy.util.load_model_from_config(
            Config().from_disk(tmp_path / f"{kind}.cfg", overrides={"paths.base_model": "x"}), validate=True
        )
        assert "transformer" in nlp.pipe_names


@pytest.mark.parametrize("kind", CONFIG_FILES)
def test_init_config_base_model_and_gpu(kind, tmp_path):
    config = init_config(tmp_path, kind, "--base-model", "/models/my-bert", "--gpu")
    assert config["paths"]["base_model"] == "/models/my-bert"
    if kind == "pretrain":
        assert config["system"]["gpu_id"] == 0
        assert config["model"]["name"] == "${paths.base_model}"
    else:
        assert config["components"]["transformer"]["model"]["mixed_precision"] is True
        assert config["components"]["transformer"]["model"]["name"] == "${paths.base_model}"


def test_init_config_pretrain_loads_with_the_pretraining_checks(tmp_path):
    from spacy_mlm.pretrain.config import load_config

    init_config(tmp_path, "pretrain")
    cfg = load_config(tmp_path / "pretrain.cfg", {"paths.base_model": "m", "paths.train": "t.txt"})
    assert cfg["model"]["name"] == "m" and cfg["corpus"]["train"]["path"] == "t.txt"


def test_init_config_to_stdout_and_bad_kind():
    result = CliRunner().invoke(cli, ["init-config", "ner", "-"])
    assert result.exit_code == 0 and result.output.startswith("[paths]"), result.output
    result = CliRunner().invoke(cli, ["init-config", "tagger", "x.cfg"])
    assert result.exit_code == 2 and "'tagger' is not one of 'pretrain', 'dapt', 'ner', 'textcat', 'full'" in result.output


def test_init_config_dapt_warms_up_a_fresh_head_only(tmp_path, pt_model, pt_corpus):
    """dapt: the pretrain config with the continued-pretraining settings; a checkpoint without an
    MLM head gets the head warm-up and that many more steps, one with a head goes straight on."""
    from transformers import AutoModel

    from spacy_mlm.init_config import DAPT_HEAD_WARMUP, DAPT_SETTINGS
    from spacy_mlm.pretrain.config import load_config

    AutoModel.from_pretrained(pt_model).save_pretrained(tmp_path / "encoder")
    with_head = init_config(tmp_path, "dapt", "--base-model", str(pt_model))
    (tmp_path / "h").mkdir()
    headless = init_config(tmp_path / "h", "dapt", "--base-model", str(tmp_path / "encoder"))
    warmup = DAPT_HEAD_WARMUP["training.head_warmup_steps"]
    assert with_head["training"]["head_warmup_steps"] == 0
    assert with_head["training"]["max_steps"] == DAPT_SETTINGS["training.max_steps"]
    assert headless["training"]["head_warmup_steps"] == warmup > 0
    assert headless["training"]["max_steps"] == DAPT_SETTINGS["training.max_steps"] + warmup
    for key, value in DAPT_SETTINGS.items():
        if key != "training.max_steps":
            section, name = key.split(".")
            assert with_head[section][name] == headless[section][name] == value
    # The written file is a pretrain config that `spacy-mlm pretrain` reads as it is.
    cfg = load_config(tmp_path / "h" / "dapt.cfg", {"paths.train": str(pt_corpus[0])})
    assert cfg["training"]["head_warmup_lr"] == DAPT_HEAD_WARMUP["training.head_warmup_lr"]
    # A copy saved with its fresh head still untrained (as the project's prepare_base.py writes one)
    # gets the warm-up too; a checkpoint whose head MLM pretraining trained does not.
    from transformers import AutoTokenizer

    from spacy_mlm.mlm import has_mlm_head, load_masked_lm
    from spacy_mlm.pretrain.checkpoint import save_final

    load_masked_lm(tmp_path / "encoder", fresh_head=True).save_pretrained(tmp_path / "fresh-copy")
    assert not has_mlm_head(tmp_path / "fresh-copy")
    model = load_masked_lm(tmp_path / "fresh-copy")
    save_final(tmp_path / "run", model, AutoTokenizer.from_pretrained(pt_model))
    assert has_mlm_head(tmp_path / "run" / "final") and has_mlm_head(pt_model)


def test_init_config_dapt_needs_a_base_model(tmp_path):
    result = CliRunner().invoke(cli, ["init-config", "dapt", str(tmp_path / "dapt.cfg")])
    assert result.exit_code != 0 and "needs --base-model" in str(result.exception or result.output)


def test_init_config_dapt_steps(tmp_path, pt_model):
    """--steps sets the whole-model phase, --head-warmup-steps the warm-up (only where there is one)."""
    from transformers import AutoModel

    AutoModel.from_pretrained(pt_model).save_pretrained(tmp_path / "encoder")
    headless = init_config(tmp_path, "dapt", "--base-model", str(tmp_path / "encoder"), "--steps", "40",
                           "--head-warmup-steps", "7")
    assert (headless["training"]["max_steps"], headless["training"]["head_warmup_steps"]) == (47, 7)
    assert (tmp_path / "dapt.cfg").read_text().startswith("# Continued (domain-adaptive) pretraining")
    with_head = init_config(tmp_path, "dapt", "--base-model", str(pt_model), "--steps", "40",
                            "--head-warmup-steps", "7", "--force")
    assert (with_head["training"]["max_steps"], with_head["training"]["head_warmup_steps"]) == (40, 0)
    result = CliRunner().invoke(cli, ["init-config", "pretrain", str(tmp_path / "p.cfg"), "--steps", "5"])
    assert result.exit_code != 0 and "--steps and --head-warmup-steps are for init-config dapt" in str(result.exception)
