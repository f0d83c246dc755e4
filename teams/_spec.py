"""Scripted team runs from a YAML or JSON file (read here; the service runs the team it names).

    team: evolution                 # any team of `evorag teams list`: built-in or a plugin's
    task: "what to do"              # the request, the problem description for healing, the first message
                                    # of a chat team; not needed for gaps
    docs: [https://...]             # evolution teams only
    approve: policy | yes           # yes: approve LOW risk by policy; MEDIUM and HIGH stay pending for an approver
    threshold: 0.5                  # gaps only
    replies: ["yes", ...]           # chat teams: the person's answers when the team asks, in order
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from evorag.errors import NotFoundError, UserError

_KEYS = frozenset({"team", "task", "docs", "approve", "threshold", "replies"})


def load_spec(path: Path) -> dict:
    """The run spec at ``path``, its shape checked (whether the team exists and what it needs is the
    service's to check)."""
    if not path.is_file():
        raise NotFoundError(f"no team spec at {path}")
    text = path.read_text()
    try:
        if path.suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:  # noqa: BLE001 - any parse error is the user's file
        raise UserError(f"{path} is not valid {'YAML' if path.suffix in ('.yaml', '.yml') else 'JSON'}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("team"), str) or not data["team"]:
        raise UserError(f"{path}: 'team' must name a team", hint="`evorag teams list` shows them")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise UserError(f"{path}: unknown key {', '.join(map(str, unknown))} (known: {', '.join(sorted(_KEYS))})")
    if "task" in data and not isinstance(data["task"], str):
        raise UserError(f"{path}: 'task' must be a string")
    if not isinstance(data.get("docs", []), list) or not all(isinstance(u, str) for u in data.get("docs", [])):
        raise UserError(f"{path}: 'docs' must be a list of URLs")
    if not isinstance(data.get("replies", []), list) or not all(isinstance(r, str) for r in data.get("replies", [])):
        raise UserError(f"{path}: 'replies' must be a list of strings")
    if data.get("approve", "policy") not in ("policy", "yes"):
        raise UserError(f"{path}: 'approve' must be 'policy' or 'yes'")
    return data
