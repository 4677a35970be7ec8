"""`spacy-mlm init-config`: the default configs ship with the package (configs/ in the repo holds
identical copies), and the written configs are complete, valid and keep every default."""

from importlib.resources import files
from pathlib import Path

import pytest
import spacy
from click.testing import CliRunner
from thinc.api import Config

from spacy_mlm.cli import cli
from spacy_mlm.init_config import CONFIG_KINDS

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
    assert packaged == sorted(f"{kind}.cfg" for kind in CONFIG_KINDS)
    assert sorted(p.name for p in REPO_CONFIGS.glob("*.cfg")) == packaged
    for name in packaged:
        assert (REPO_CONFIGS / name).read_text(encoding="utf8") == PACKAGED.joinpath(name).read_text(encoding="utf8"), (
            f"configs/{name} differs from spacy_mlm/configs/{name}: edit spacy_mlm/configs/{name} and copy it to configs/"
        )


@pytest.mark.parametrize("kind", CONFIG_KINDS)
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


@pytest.mark.parametrize("kind", CONFIG_KINDS)
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
    assert result.exit_code == 2 and "'tagger' is not one of 'pretrain', 'ner', 'textcat', 'full'" in result.output
