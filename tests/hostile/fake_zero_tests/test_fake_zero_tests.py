"""Tests to be written."""

EXPECTED = 3
