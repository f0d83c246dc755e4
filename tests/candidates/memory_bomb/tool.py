"""Build a large cache (without bound: the sandbox's memory limit must stop it)."""


def warm_cache(block_mb: int = 64) -> int:
    """Fill memory with blocks of ``block_mb`` megabytes until it runs out; return the block count."""
    blocks = []
    while True:
        blocks.append(b"x" * (block_mb * 1024 * 1024))
        if len(blocks) < 0:
            return len(blocks)
