"""What every use case module gets: the settings, the parts, the writer slot, and who acts."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass

from evorag.errors import PermissionDeniedError
from evorag.principals import Principal, acting_as, acting_principal, require
from evorag.service._components import Components
from evorag.service._writer import WriterSlot
from evorag.settings import Settings
from evorag.tools.costs import metering

logger = logging.getLogger("evorag.audit")


@dataclass(slots=True)
class ServiceContext:
    """Shared by the use cases of one service.

    Who acts: the ``principal=`` a method was given, else the principal the current call already acts for (a
    crawl started by an evolution belongs to whoever started the evolution), else ``principal`` (by default
    the local OS user as admin: whoever calls the Python API owns EVORAG_HOME).
    """

    settings: Settings
    parts: Components
    writer: WriterSlot
    principal: Principal

    def check(self, principal: Principal | None, operation: str) -> Principal:
        """The principal acting now, if its role allows ``operation`` (evorag.principals.OPERATIONS). A refusal
        is written to the audit log (who, through which interface, what): probing for what one may do leaves a
        trace."""
        who = principal or acting_principal() or self.principal
        try:
            return require(who, operation)
        except PermissionDeniedError:
            try:
                self.parts.pipeline.audit.write("permission_denied", principal=who, operation=operation,
                                                via=who.via)
            except Exception as exc:  # noqa: BLE001 - the refusal stands even when it cannot be written down
                logger.warning("a refused %s by %s was not audited: %s", operation, who.name, exc)
            raise

    @contextlib.contextmanager
    def acting(self, principal: Principal | None, operation: str) -> Iterator[Principal]:
        """Check the role, and record the principal as the one acting (the audit log names it)."""
        # The model calls made meanwhile are attributed to this operation (evorag.tools.costs).
        with acting_as(self.check(principal, operation)) as who, metering(operation=operation):
            yield who
