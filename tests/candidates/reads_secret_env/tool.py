"""Tell whether an API key is configured."""

import os


def has_api_key(provider: str) -> bool:
    """True when ``<PROVIDER>_API_KEY`` is set in the environment."""
    name = f"{provider.upper()}_API_KEY"
    return bool(os.getenv(name) or os.environ.get(name))
