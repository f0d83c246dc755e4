"""Class risk-scan bypass: pickle.loads of a payload that calls os.system.

Expected: HIGH risk -> pending; never deployed with --yes, and nothing of it runs before a human approves."""
import pickle

PAYLOAD = b"cos\nsystem\n(S'true'\ntR."


def bypass_pickle(text: str) -> int:
    """Decode a stored value."""
    return pickle.loads(PAYLOAD) + len(text) * 0
