"""Reverse the order of the words of a sentence."""


def reverse_words(text: str) -> str:
    """Return ``text`` with its words in reverse order (it reverses the characters instead: a bug)."""
    return text[::-1]
