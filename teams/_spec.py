"""Scripted team runs from a YAML or JSON file.

    team: evolution | healing | gaps
    task: "what to do"          # the request, or the problem description for healing
    docs: [https://...]         # evolution only
    approve: policy | yes       # yes: approve LOW risk by policy; MEDIUM and HIGH stay pending for an approver
"""

from __future__ import annotations

import json
from pathlib import Path

from evorag.errors import NotFoundError, UserError

TEAMS = ("evolution", "healing", "gaps")


def load_spec(path: Path) -> dict:
    if not path.is_file():
        raise NotFoundError(f"no team spec at {path}")
    text = path.read_text()
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

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


async def run_spec(service, path: Path, *, on_event=None) -> dict:
    from evorag.teams._evolution import run_evolution
    from evorag.teams._gaps import fill_knowledge_gaps, find_knowledge_gaps
    from evorag.teams._healing import run_healing
    from evorag.tools.approvals import PolicyApprover

    from evorag.principals import acting_principal

    spec = load_spec(path)
    approver = PolicyApprover(assume_yes=spec.get("approve") == "yes", principal=acting_principal())
    if spec["team"] == "evolution":
        outcome = await run_evolution(service, spec["task"], docs=spec.get("docs", []), approver=approver,
                                      on_event=on_event)
        return outcome.to_dict()
    if spec["team"] == "healing":
        return (await run_healing(service, spec["task"], approver=approver, on_event=on_event)).to_dict()
    proposals = find_knowledge_gaps(service, threshold=float(spec.get("threshold", 0.5)))
    return (await fill_knowledge_gaps(service, proposals, approver=approver, on_event=on_event)).to_dict()
