"""Hostile candidates are data for tests/test_hostile_battery.py: never collect or import them here."""

collect_ignore_glob = ["*"]
