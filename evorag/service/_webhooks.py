"""Webhook use cases (admin role): register a URL for events, list, enable again, remove, read the delivery
log. Sending is the notifier's (evorag.tools.webhooks), which the parts raising events call."""

from __future__ import annotations

from collections.abc import Iterable

from evorag.errors import UserError
from evorag.principals import Principal
from evorag.service._context import ServiceContext
from evorag.tools.webhooks import DeliveryAttempt, Webhook


class WebhooksService:
    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx

    def add(self, url: str, events: Iterable[str], *, allow_private: bool = False,
            principal: Principal | None = None) -> tuple[Webhook, str]:
        """Register ``url`` for ``events``; returns the hook and its signing secret, shown this once. The URL
        guard refuses private and loopback addresses unless ``allow_private`` (or EVORAG_ALLOW_PRIVATE)."""
        allow_private = allow_private or self._ctx.settings.allow_private
        with self._ctx.acting(principal, "webhooks"):
            return self._ctx.parts.webhooks.store.add(url, events, allow_private=allow_private)

    def list(self, *, principal: Principal | None = None) -> list[Webhook]:
        self._ctx.check(principal, "webhooks")
        return self._ctx.parts.webhooks.store.hooks()

    def enable(self, hook_id: str, *, principal: Principal | None = None) -> Webhook:
        """Enable a hook again (after it was disabled for failing); its failure count starts from zero."""
        with self._ctx.acting(principal, "webhooks"):
            return self._ctx.parts.webhooks.store.enable(hook_id)

    def remove(self, hook_id: str, *, principal: Principal | None = None) -> None:
        with self._ctx.acting(principal, "webhooks"):
            self._ctx.parts.webhooks.store.remove(hook_id)

    def log(self, *, hook_id: str | None = None, last: int = 50,
            principal: Principal | None = None) -> list[DeliveryAttempt]:
        """The newest ``last`` delivery attempts (of one hook), oldest first."""
        self._ctx.check(principal, "webhooks")
        if not 1 <= last <= 10_000:
            raise UserError(f"last must be between 1 and 10000, got {last}")
        return self._ctx.parts.webhooks.store.log(hook_id=hook_id, last=last)

    def emit(self, event: str, data: dict) -> int:
        """Send ``event`` to the hooks subscribed to it (in the background); returns how many."""
        return self._ctx.parts.webhooks.emit(event, data)
