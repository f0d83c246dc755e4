"""The error tree, split by who is at fault.

Every ``EvoragError`` carries a message written for the person at the keyboard: the CLI, the MCP
server and the UI print it as it is (one line, no traceback). ``hint`` says how to fix it.
"""

from __future__ import annotations


class EvoragError(Exception):
    """Base class: the message is shown to the user verbatim."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UserError(EvoragError):
    """The caller's mistake: a bad argument, input file or setting. Retrying will not help."""

    exit_code = 2


class ConfigError(UserError):
    """A setting is missing or invalid; the message names the setting to fix."""


class NotFoundError(UserError):
    """A named thing (source, dataset, version) does not exist."""


class PermissionDeniedError(UserError):
    """The acting principal's role does not allow this; the message names the role needed and the one held."""


class BlockedURLError(UserError):
    """The URL guard refused a URL (private address, odd scheme, ...)."""


class ExternalError(EvoragError):
    """Something outside evorag failed: a website, a model endpoint, a Qdrant server."""

    exit_code = 3


class CrawlError(ExternalError):
    """A crawl could not fetch or read what it was asked for."""


class ModelError(ExternalError):
    """An embedding or language model provider failed or is unreachable."""


class ModelUnavailableError(ModelError):
    """An agent step needed the language model and it failed (unreachable, timed out, refused): the run ended
    there, recorded as ``model_unavailable``. One line (no hint): the message names the setting to fix."""


class StoreError(ExternalError):
    """The vector store failed or is unreachable."""


class InternalError(EvoragError):
    """A bug in evorag. Please report it."""

    exit_code = 70
