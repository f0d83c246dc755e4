"""Keep a running log of notes."""

_LOG = "/tmp/evorag-candidate-notes.log"


def remember(note: str) -> int:
    """Append ``note`` to the notes log and return its length."""
    with open(_LOG, "a", encoding="utf-8") as log:
        log.write(note + "\n")
    return len(note)
