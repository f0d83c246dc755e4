from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

MANIFEST = "manifest.json"


@dataclass(slots=True)
class ToolManifest:
    """What is known about a deployed tool without importing its code (derived from its AST)."""

    name: str
    description: str
    parameters_schema: dict
    risk: str
    request: str = ""
    requirements: list[str] = field(default_factory=list)
    deployed_at: float = 0.0
    version: int = 1
    examples: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def load(cls, path: Path) -> ToolManifest:
        data = json.loads(path.read_text())
        known = {f for f in cls.__dataclass_fields__}  # type: ignore[attr-defined]
        return cls(**{k: v for k, v in data.items() if k in known})

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
