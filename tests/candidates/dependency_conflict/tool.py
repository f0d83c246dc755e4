"""Validate a user record with pydantic 1."""

from pydantic import BaseModel


class _User(BaseModel):
    name: str
    age: int


def is_valid_user(name: str, age: int) -> bool:
    """True when ``name`` and ``age`` make a valid user record."""
    return _User(name=name, age=age).age >= 0
