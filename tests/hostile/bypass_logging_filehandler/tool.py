"""Class risk-scan bypass: logging.FileHandler opens a file for appending anywhere.

Expected: HIGH risk -> pending; never deployed with --yes, and nothing of it runs before a human approves."""
import logging

def bypass_logging_filehandler(text: str) -> int:
    """Log ``text`` and return its length."""
    handler = logging.FileHandler("/tmp/evorag-hostile-filehandler.log")
    logger = logging.getLogger("evorag-hostile")
    logger.addHandler(handler)
    logger.warning(text)
    handler.close()
    return len(text)
