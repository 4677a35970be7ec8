"""Load the spaCy pipelines the commands are given: a path that is no pipeline, a damaged file,
transformer weights that are not plain tensors, an unknown factory or registered function end in
a SpacyMlmError naming the pipeline (or the file) and the fix, not in a traceback.

Nothing pickled runs: spacy-transformers reads a pipeline's encoder weights (`<component>/model`)
with torch.load and no `weights_only` argument, so torch's default applies, weights_only=True from
torch 2.6 on (setup.py requires it): pickled objects other than tensors are refused.
"""

from pathlib import Path
from typing import Optional

from .errors import SpacyMlmError

# torch.load reads any pickle when this is set, also where its caller passes no weights_only.
NO_WEIGHTS_ONLY_ENV = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"


def load_pipeline(model: str):
    """spacy.load for the commands: a path that is no pipeline, a damaged file, weights that are
    not plain tensors, an unknown factory or registered function become a SpacyMlmError naming
    the pipeline (or file) and the fix.

    TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD turns torch's weights_only default off for the whole process:
    then pipelines are refused (module docstring)."""
    import os
    import pickle

    import spacy
    from catalogue import RegistryError
    from safetensors import SafetensorError
    from thinc.api import ConfigValidationError

    path = Path(model)
    if path.exists() and not path.is_dir():
        raise SpacyMlmError(f"{model} is a file, not a spaCy pipeline: pass the pipeline's directory (with config.cfg), "
                            "written by nlp.to_disk() or `spacy train`, or an installed pipeline package.")
    if path.exists() and not (path / "config.cfg").is_file():
        hf = (" It is an HF checkpoint (config.json): add it to a pipeline as the transformer's `name` and save "
              "that pipeline." if (path / "config.json").is_file() else "")
        raise SpacyMlmError(
            f"{model} is not a spaCy pipeline (no config.cfg in it). Pass a directory written by "
            f"nlp.to_disk() or `spacy train` (e.g. training/model-best), or an installed pipeline package.{hf}"
        )
    if not path.exists() and not spacy.util.is_package(model):
        raise SpacyMlmError(
            f"No spaCy pipeline {model!r}: the directory does not exist and no installed package has that name."
        )
    if path.is_dir():  # spaCy and transformers report a file they may not read as damaged or as a hub name
        from .readers.lines import open_input

        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            open_input(file).close()
    if os.environ.get(NO_WEIGHTS_ONLY_ENV, "0").lower() in ("1", "y", "yes", "true"):  # as torch reads it
        raise SpacyMlmError(
            f"{NO_WEIGHTS_ONLY_ENV} is set, so torch.load would run any pickle in the transformer weights of "
            f"{model}: unset it to load the pipeline (weights_only loading reads every spaCy pipeline)."
        )
    try:
        return spacy.load(model)
    except SpacyMlmError:  # our components' own messages name their files already
        raise
    except pickle.UnpicklingError as e:
        reason = next((line.strip() for line in str(e).splitlines() if "WeightsUnpickler error" in line), first_line(e))
        reason = reason.split(" Please use")[0]  # torch goes on with how to allow the object
        raise SpacyMlmError(
            f"{_file_in_traceback(e, path) or path} holds pickled objects other than tensors, which could run "
            f"code when loaded; torch refused them ({reason[:300]}). Do not use this pipeline: get it again from a "
            "trusted source, or train and save it again."
        ) from None
    except RegistryError as e:
        raise SpacyMlmError(_config_error(model, e)) from None
    except ConfigValidationError as e:
        raise SpacyMlmError(f"{path / 'config.cfg'} is not a valid pipeline config: {e}") from None
    except ValueError as e:
        if str(e).startswith("[E002]"):  # spaCy: no factory of that name
            raise SpacyMlmError(_config_error(model, e)) from None
        raise SpacyMlmError(_damaged_error(model, e)) from None
    except (OSError, KeyError, RuntimeError, SafetensorError) as e:
        raise SpacyMlmError(_damaged_error(model, e)) from None


def _config_error(model: str, error: Exception) -> str:
    """An unknown factory or registered function: a package is missing, or the name is wrong."""
    return (f"Could not load the spaCy pipeline {model}: its config.cfg names a factory or function that is not "
            f"installed ({first_line(error, 400).rstrip('.')}). Install the package that provides it, or fix the "
            "name in config.cfg.")


def _damaged_error(model: str, error: Exception) -> str:
    culprit = _file_in_traceback(error, Path(model)) or model
    return (f"Could not load the spaCy pipeline {model}: {culprit} is damaged or incomplete ({type(error).__name__}: "
            f"{first_line(error).rstrip('.')}). Save or copy the pipeline again.")


def _file_in_traceback(error: Exception, root: Path) -> Optional[Path]:
    """The innermost path below `root` among the local variables of the failing calls: the file or
    directory that was being read (spaCy's errors name none)."""
    found, tb = None, error.__traceback__
    while tb is not None:
        for value in list(tb.tb_frame.f_locals.values()):
            if isinstance(value, Path) and root.resolve() in value.resolve().parents:
                found = value
        tb = tb.tb_next
    return found


def first_line(error: Exception, limit: int = 300) -> str:
    text = str(error).strip().splitlines()
    return text[0][:limit] if text else type(error).__name__
