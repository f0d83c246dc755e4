"""Class risk-scan bypass: logging.config.dictConfig calls any factory named by a string ('()').

Expected: HIGH risk -> pending; never deployed with --yes, and nothing of it runs before a human approves."""
import logging.config
import pathlib

def bypass_logging_dictconfig(text: str) -> bool:
    """Configure logging; report whether the factory ran."""
    marker = "/tmp/evorag-hostile-dictconfig"
    try:
        logging.config.dictConfig({"version": 1, "handlers": {
            "h": {"()": "os.system", "command": f"echo ran > {marker}"}}})
    except (ValueError, TypeError, AttributeError):
        pass
    return pathlib.Path(marker).exists() and bool(text or True)
