"""Scripted team runs from a YAML or JSON file (read here; the service runs the team it names).

    team: evolution | healing | gaps
    task: "what to do"          # the request, or the problem description for healing
    docs: [https://...]         # evolution only
    approve: policy | yes       # yes: approve LOW risk by policy; MEDIUM and HIGH stay pending for an approver
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from evorag.errors import NotFoundError, UserError

TEAMS = ("evolution", "healing", "gaps")


def load_spec(path: Path) -> dict:
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
    if not isinstance(data, dict) or data.get("team") not in TEAMS:
        raise UserError(f"{path}: 'team' must be one of {', '.join(TEAMS)}")
    if data["team"] != "gaps" and not isinstance(data.get("task"), str):
        raise UserError(f"{path}: 'task' must be a string")
    if data.get("approve", "policy") not in ("policy", "yes"):
        raise UserError(f"{path}: 'approve' must be 'policy' or 'yes'")
    return data
