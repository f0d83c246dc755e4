"""The events a webhook may subscribe to: an allowlist, kept apart from the delivery code (evorag.tools.webhooks,
which loads httpx) so that the command line can name them in its help without loading an HTTP client."""

EVENTS = ("approval_pending", "deploy", "rollback", "anomaly", "proposal", "crawl_finished")
