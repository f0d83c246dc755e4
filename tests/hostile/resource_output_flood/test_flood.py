import sys

from tool import resource_output_flood


def test_counts_characters():
    for _ in range(30):
        sys.stdout.write("1 passed " * 110_000 + "\n")
    assert resource_output_flood("abc") == 3
