"""Errors users can trigger. Each message names the file, key or value and the fix."""

from typing import Optional


class SpacyMlmError(ValueError):
    """A user-facing error from spacy-mlm (bad path, config, checkpoint or data)."""


class DiskWriteError(SpacyMlmError, OSError):
    """A write failed (disk full, read-only or unwritable directory). The message names the path
    and the fix; it is also an OSError (with errno and filename) for code that catches those."""

    def __init__(self, message: str, errno: Optional[int] = None, filename: Optional[str] = None) -> None:
        OSError.__init__(self, message)
        self.errno = errno
        self.filename = filename

    def __str__(self) -> str:
        return str(self.args[0])


class IncompatibleVersionsError(SpacyMlmError, ImportError):
    """spacy-transformers/transformers could not be imported with the installed versions; the
    message lists them and the pip command that installs a working set."""
