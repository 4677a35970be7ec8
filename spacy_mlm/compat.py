"""The versions spacy-mlm works with, checked where a mismatch would otherwise surface as an
ImportError or AttributeError deep inside spacy-transformers or transformers."""

import warnings
from importlib.metadata import PackageNotFoundError, version
from typing import Dict, List, Optional

from .errors import IncompatibleVersionsError

# Mirrors install_requires in setup.py. spacy-transformers 1.4 pins transformers < 4.53.3.
# Written out, not read with importlib.metadata.requires("spacy-mlm"): a source checkout has no
# installed metadata of its own (or an editable install's of another checkout).
REQUIREMENTS: Dict[str, str] = {
    "spacy": ">=3.8,<3.9",
    "spacy-transformers": ">=1.3,<1.5",
    "transformers": ">=4.41,<4.53.3",
    # weights_only=True by default: pipelines' transformer weights are read without running pickles.
    "torch": ">=2.6",
}


class IncompatibleVersionWarning(UserWarning):
    """An installed library is outside the range spacy-mlm is tested with."""


def installed_version(name: str) -> Optional[str]:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def version_problems() -> List[str]:
    """'name X (needs SPEC)' for each required library that is missing or outside its range."""
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion

    problems = []
    for name, spec in REQUIREMENTS.items():
        found = installed_version(name)
        try:
            ok = found is not None and SpecifierSet(spec).contains(found, prereleases=True)
        except InvalidVersion:
            ok = False
        if not ok:
            problems.append(f"{name} {found or '(not installed)'} (needs {spec})")
    return problems


def fix_command() -> str:
    return "pip install " + " ".join(f"'{name}{spec}'" for name, spec in REQUIREMENTS.items())


def incompatible_versions_error(error: ImportError) -> IncompatibleVersionsError:
    """The error for a failed import of spacy-transformers/transformers: versions and the fix."""
    problems = version_problems()
    found = ", ".join(f"{n} {installed_version(n) or '(not installed)'}" for n in REQUIREMENTS)
    return IncompatibleVersionsError(
        f"spacy-transformers/transformers could not be imported ({type(error).__name__}: {error}). "
        f"Installed: {found}. " + (f"Out of range: {'; '.join(problems)}. " if problems else "")
        + f"spacy-mlm needs {', '.join(f'{n}{s}' for n, s in REQUIREMENTS.items())}: run {fix_command()}"
    )


def warn_on_untested_versions() -> None:
    """Warn when a library imports but is outside the range spacy-mlm is tested with."""
    problems = version_problems()
    if problems:
        warnings.warn(
            f"spacy-mlm is tested with {', '.join(f'{n}{s}' for n, s in REQUIREMENTS.items())}, but found "
            f"{'; '.join(problems)}. If loading or training fails, run {fix_command()}",
            IncompatibleVersionWarning,
            stacklevel=2,
        )
