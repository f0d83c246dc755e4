"""Team specs: a team declared as data, in YAML or JSON. evorag's own teams are written this way
(teams/specs/), and so are plugin teams (``evorag.teams`` entry points). See docs/architecture.md, "Plugins".

    name: evolution-reviewed        # lower-case letters, digits, - and _
    flow: evolution                 # evolution | graph | conversation
    description: One sentence: what the team does.
    extends: evolution              # optional: start from another team of the same flow, then change it
    nodes: [a, b, c]                # agents by name (`evorag agents list`), added to the base's
    entry: a                        # graph flows: who speaks first (default: the base's, else the first node)
    edges:                          # graph flows; a node's edges are all conditional or all unconditional
      - {from: a, to: b}                                            # always
      - {from: b, to: c, when: PASS}                                # when b's verdict word is PASS
      - {from: c, to: b, when: FAIL, group: retry, activation: any} # activation group of a retry loop
    insert:                         # with extends: the edges into `before` now lead to `agent`, which
      - {agent: x, before: c, when: PASS}   # hands on to `before` on its verdict `when`
    remove_edges: [{from: a, to: b}]
    max_messages: 4                 # the MaxMessageTermination backstop (evolution: plus the next line
    messages_per_attempt: 6         # times EVORAG_EVOLUTION_ATTEMPTS; each insert adds one)

The verdict word of a message is read by ``evorag.agents.verdict_of`` (``TESTS: PASS`` -> PASS, ``APPROVE``,
``STOP: ...`` -> STOP). An evolution team must keep every built-in step and cannot reach the approval without
passing the dependency, code and test steps, nor the deployer without the approval (``check_gates``); the
approval step checks the same at run time on the very files it is asked to approve.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml
from autogen_agentchat.teams import DiGraph, DiGraphEdge, DiGraphNode
from evorag.agents import verdict_of
from evorag.agents._plugin import AGENT_NAME
from evorag.agents._verdicts import VERDICT_WORD

from evorag.errors import UserError

FLOWS = ("evolution", "graph", "conversation")
BUILTIN_FLOWS = ("healing", "gaps")  # evorag's own Python flows: listed like teams, not declarable
TEAM_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
ACTIVATIONS = ("all", "any")
# The steps of evorag's evolution flow; an evolution team keeps all of them (plugins add, never replace).
EVOLUTION_STEPS = ("orchestrator", "dependency_validator", "tool_generator", "code_debugger",
                   "integration_tester", "human", "deployer")
GATE_STEPS = ("dependency_validator", "code_debugger", "integration_tester")
DEFAULT_MAX_MESSAGES = {"evolution": 4, "graph": 20, "conversation": 20}
DEFAULT_PER_ATTEMPT = 6

_TOP_KEYS = frozenset({"name", "flow", "description", "extends", "nodes", "entry", "edges", "insert",
                       "remove_edges", "max_messages", "messages_per_attempt"})


@dataclass(frozen=True, slots=True)
class EdgeSpec:
    """``source`` hands on to ``target``: always, or when its verdict word is ``when``. Edges into one target
    that share an activation ``group`` activate it when ``all`` (default) or ``any`` of them fired."""

    source: str
    target: str
    when: str | None = None
    group: str | None = None
    activation: str = "all"

    def __post_init__(self) -> None:
        for node in (self.source, self.target):
            _check_agent_name(node)
        if self.when is not None and not (isinstance(self.when, str) and VERDICT_WORD.match(self.when)):
            raise ValueError(f"edge {self.source} -> {self.target}: 'when' must be a verdict word in capitals "
                             f"(PASS, FAIL, APPROVE...), not {self.when!r}")
        if self.group is not None and not (isinstance(self.group, str) and self.group.strip()):
            raise ValueError(f"edge {self.source} -> {self.target}: 'group' must be a non-empty string")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"edge {self.source} -> {self.target}: 'activation' must be all or any")

    def to_dict(self) -> dict:
        data: dict[str, Any] = {"from": self.source, "to": self.target}
        if self.when:
            data["when"] = self.when
        if self.group:
            data["group"] = self.group
        if self.activation != "all":
            data["activation"] = self.activation
        return data


@dataclass(frozen=True, slots=True)
class InsertSpec:
    """Put ``agent`` in front of ``before``: the edges into ``before`` lead to ``agent`` instead, and ``agent``
    hands on to ``before`` when its verdict is ``when``."""

    agent: str
    before: str
    when: str = "PASS"

    def __post_init__(self) -> None:
        _check_agent_name(self.agent)
        _check_agent_name(self.before)
        if not (isinstance(self.when, str) and VERDICT_WORD.match(self.when)):
            raise ValueError(f"insert {self.agent}: 'when' must be a verdict word in capitals, not {self.when!r}")


@dataclass(frozen=True, slots=True)
class TeamSpec:
    """A team as data; see the module docstring for the fields. Build it in Python or read it with
    ``load_team_spec`` / ``TeamSpec.from_mapping``."""

    name: str
    flow: str
    description: str
    nodes: tuple[str, ...] = ()
    edges: tuple[EdgeSpec, ...] = ()
    entry: str | None = None
    extends: str | None = None
    insert: tuple[InsertSpec, ...] = ()
    remove_edges: tuple[tuple[str, str], ...] = ()
    max_messages: int | None = None
    messages_per_attempt: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not TEAM_NAME.match(self.name):
            raise ValueError(f"team name {self.name!r} must be lower-case letters, digits, - and _ (at most 64)")
        if self.flow not in FLOWS + BUILTIN_FLOWS:
            raise ValueError(f"team {self.name}: 'flow' must be one of {', '.join(FLOWS)}, not {self.flow!r}")
        if not isinstance(self.description, str) or not self.description.strip():
            raise ValueError(f"team {self.name}: 'description' must be a non-empty string")
        for node in self.nodes:
            _check_agent_name(node)
        if len(set(self.nodes)) != len(self.nodes):
            raise ValueError(f"team {self.name}: a node is listed twice")
        if self.entry is not None:
            _check_agent_name(self.entry)
        if self.extends is not None and not (isinstance(self.extends, str) and TEAM_NAME.match(self.extends)):
            raise ValueError(f"team {self.name}: 'extends' must name a team")
        for value, key in ((self.max_messages, "max_messages"), (self.messages_per_attempt, "messages_per_attempt")):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1000):
                raise ValueError(f"team {self.name}: '{key}' must be a whole number from 0 to 1000")
        if self.flow == "conversation" and (self.edges or self.entry or self.insert or self.remove_edges):
            raise ValueError(f"team {self.name}: a conversation has participants (nodes) only: the model picks "
                             "who speaks next, so it takes no edges, entry, insert or remove_edges")
        if self.flow != "evolution" and self.messages_per_attempt is not None:
            raise ValueError(f"team {self.name}: 'messages_per_attempt' is for evolution teams")
        if (self.insert or self.remove_edges) and self.extends is None:
            raise ValueError(f"team {self.name}: 'insert' and 'remove_edges' change the team it extends: "
                             "add 'extends'")

    @classmethod
    def from_mapping(cls, data: object, *, where: str = "team spec", builtin: bool = False) -> TeamSpec:
        """Read a spec from parsed YAML/JSON; a bad one is a UserError naming ``where`` and the problem.
        ``builtin``: evorag's own specs may use its Python flows (healing, gaps)."""
        try:
            if not isinstance(data, Mapping):
                raise TypeError("a team spec is a mapping (name, flow, description, ...)")
            unknown = sorted(set(data) - _TOP_KEYS)
            if unknown:
                raise ValueError(f"unknown key {', '.join(map(str, unknown))} (known: {', '.join(sorted(_TOP_KEYS))})")
            flow = data.get("flow")
            if flow in BUILTIN_FLOWS and not builtin:
                raise ValueError(f"flow {flow} is evorag's own; declare an evolution, graph or conversation team")
            return cls(
                name=data.get("name"), flow=flow, description=data.get("description"),
                nodes=tuple(_str_list(data.get("nodes", []), "nodes")),
                edges=tuple(_edge(item) for item in _list(data.get("edges", []), "edges")),
                entry=data.get("entry"), extends=data.get("extends"),
                insert=tuple(_insert(item) for item in _list(data.get("insert", []), "insert")),
                remove_edges=tuple(_pair(item) for item in _list(data.get("remove_edges", []), "remove_edges")),
                max_messages=data.get("max_messages"), messages_per_attempt=data.get("messages_per_attempt"),
            )
        except (ValueError, TypeError) as exc:
            raise UserError(f"{where}: {exc}") from None

    def to_dict(self) -> dict:
        data: dict[str, Any] = {"name": self.name, "flow": self.flow, "description": self.description}
        if self.extends:
            data["extends"] = self.extends
        if self.nodes:
            data["nodes"] = list(self.nodes)
        if self.entry:
            data["entry"] = self.entry
        if self.edges:
            data["edges"] = [edge.to_dict() for edge in self.edges]
        if self.insert:
            data["insert"] = [{"agent": i.agent, "before": i.before, "when": i.when} for i in self.insert]
        if self.remove_edges:
            data["remove_edges"] = [{"from": a, "to": b} for a, b in self.remove_edges]
        for key in ("max_messages", "messages_per_attempt"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        return data


def load_team_spec(path: Path | str, *, builtin: bool = False) -> TeamSpec:
    """A team spec from a YAML (.yaml, .yml) or JSON file; UserError naming the file when it is not one."""
    path = Path(path)
    yaml_file = path.suffix in (".yaml", ".yml")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read the team spec {path}: {exc}") from None
    try:
        data = yaml.safe_load(text) if yaml_file else json.loads(text)
    except Exception as exc:  # noqa: BLE001 - any parse error is the file's
        raise UserError(f"{path} is not valid {'YAML' if yaml_file else 'JSON'}: {exc}") from None
    return TeamSpec.from_mapping(data, where=str(path), builtin=builtin)


@dataclass(frozen=True, slots=True)
class ResolvedTeam:
    """A spec with its ``extends`` chain applied: the graph a team is built from. ``lineage``: the specs it
    came from, the base first."""

    name: str
    flow: str
    description: str
    nodes: tuple[str, ...]
    edges: tuple[EdgeSpec, ...]
    entry: str | None
    max_messages: int
    messages_per_attempt: int
    lineage: tuple[str, ...]

    def message_limit(self, attempts: int = 1) -> int:
        """The MaxMessageTermination backstop for a run with ``attempts`` generate/debug rounds."""
        return self.max_messages + (self.messages_per_attempt * attempts if self.flow == "evolution" else 0)


def resolve_team(spec: TeamSpec, lookup: Callable[[str], TeamSpec]) -> ResolvedTeam:
    """Apply ``spec``'s ``extends`` chain (bases through ``lookup``), then check the result: nodes and edges
    agree, the graph is one AutoGen can run, and an evolution graph keeps its gates. UserError otherwise."""
    chain = [spec]
    while chain[-1].extends:
        base = lookup(chain[-1].extends)
        if base.name in {item.name for item in chain}:
            raise UserError(f"team {spec.name}: 'extends' goes round in a circle through {base.name}")
        if base.flow != spec.flow:
            raise UserError(f"team {spec.name}: it is a {spec.flow} team and cannot extend {base.name}, "
                            f"a {base.flow} team")
        chain.append(base)
    if spec.flow in BUILTIN_FLOWS:
        return ResolvedTeam(spec.name, spec.flow, spec.description, (), (), None, 0, 0, (spec.name,))
    nodes: list[str] = []
    edges: list[EdgeSpec] = []
    entry: str | None = None
    max_messages: int | None = None
    per_attempt: int | None = None
    for item in reversed(chain):
        where = f"team {item.name}"
        nodes += [node for node in item.nodes if node not in nodes]
        for source, target in item.remove_edges:
            kept = [e for e in edges if (e.source, e.target) != (source, target)]
            if len(kept) == len(edges):
                raise UserError(f"{where}: remove_edges names {source} -> {target}, which {item.extends} "
                                "does not have")
            edges = kept
        inserted = 0
        for insert in item.insert:
            if insert.before not in nodes:
                raise UserError(f"{where}: cannot insert {insert.agent} before {insert.before}, which is not a node")
            if insert.agent not in nodes:
                nodes.append(insert.agent)
            # A default group follows the edge to its new target; a named one (a retry loop's) stays.
            edges = [replace(e, target=insert.agent) if e.target == insert.before and e.source != insert.agent
                     else e for e in edges]
            edges.append(EdgeSpec(insert.agent, insert.before, when=insert.when))
            inserted += 1
        edges += item.edges
        entry = item.entry or entry
        max_messages = item.max_messages if item.max_messages is not None else max_messages
        if item.messages_per_attempt is not None:
            per_attempt = item.messages_per_attempt
        elif inserted and spec.flow == "evolution":  # an inserted step speaks once more per attempt
            per_attempt = (per_attempt if per_attempt is not None else DEFAULT_PER_ATTEMPT) + inserted
    if spec.flow != "conversation":
        entry = entry or (nodes[0] if nodes else None)
    team = ResolvedTeam(
        name=spec.name, flow=spec.flow, description=spec.description, nodes=tuple(nodes), edges=tuple(edges),
        entry=entry, max_messages=max_messages if max_messages is not None else DEFAULT_MAX_MESSAGES[spec.flow],
        messages_per_attempt=(per_attempt if per_attempt is not None else DEFAULT_PER_ATTEMPT)
        if spec.flow == "evolution" else 0,
        lineage=tuple(item.name for item in reversed(chain)),
    )
    _check_shape(team)
    if team.flow == "evolution":
        check_gates(team)
    return team


def edge_condition(when: str) -> Callable[[object], bool]:
    """The GraphFlow condition of ``when``: the message's verdict word is ``when``."""
    return lambda message: verdict_of(getattr(message, "content", None)) == when


def check_gates(team: ResolvedTeam) -> None:
    """An evolution graph keeps every built-in step, cannot reach the approval (human) without passing the
    dependency, code and test steps, nor the deployer without the approval. Reachability ignores edge
    conditions, so this errs on the side of refusing."""
    missing = [step for step in EVOLUTION_STEPS if step not in team.nodes]
    if missing:
        raise UserError(f"team {team.name}: an evolution team keeps every built-in step; missing "
                        f"{', '.join(missing)}")
    for gate in GATE_STEPS:
        if _reachable(team, "human", avoiding=gate):
            raise UserError(f"team {team.name}: the graph reaches the approval (human) without passing {gate}",
                            hint="plugin steps go between the built-in ones (insert ... before ...); they "
                            "cannot route around them")
    if _reachable(team, "deployer", avoiding="human"):
        raise UserError(f"team {team.name}: the graph reaches the deployer without passing the approval (human)")


def _reachable(team: ResolvedTeam, target: str, *, avoiding: str) -> bool:
    if team.entry == avoiding:
        return False
    seen, todo = {team.entry}, [team.entry]
    while todo:
        node = todo.pop()
        if node == target:
            return True
        for edge in team.edges:
            if edge.source == node and edge.target != avoiding and edge.target not in seen:
                seen.add(edge.target)
                todo.append(edge.target)
    return False


def _check_shape(team: ResolvedTeam) -> None:
    where = f"team {team.name}"
    if team.flow == "conversation":
        if len(team.nodes) < 2:
            raise UserError(f"{where}: a conversation needs at least two participants")
        return
    if not team.nodes:
        raise UserError(f"{where}: a graph needs nodes")
    for edge in team.edges:
        for node in (edge.source, edge.target):
            if node not in team.nodes:
                raise UserError(f"{where}: edge {edge.source} -> {edge.target} names {node}, which is not a node")
    if team.entry not in team.nodes:
        raise UserError(f"{where}: the entry {team.entry} is not a node")
    graph = DiGraph(nodes={name: DiGraphNode(name=name, edges=[
        DiGraphEdge(target=e.target, condition=edge_condition(e.when) if e.when else None,
                    activation_group=e.group or "", activation_condition=e.activation)
        for e in team.edges if e.source == name]) for name in team.nodes}, default_start_node=team.entry)
    try:
        graph.graph_validate()  # AutoGen's own rules: conditions, activation groups, cycles with an exit
    except ValueError as exc:
        raise UserError(f"{where}: {exc}") from None


def _check_agent_name(name: object) -> None:
    if not isinstance(name, str) or not AGENT_NAME.match(name):
        raise ValueError(f"{name!r} is not an agent name (lower-case letters, digits and _)")


def _list(value: object, key: str) -> list:
    if not isinstance(value, list):
        raise TypeError(f"'{key}' must be a list")
    return value


def _str_list(value: object, key: str) -> list[str]:
    items = _list(value, key)
    if not all(isinstance(item, str) for item in items):
        raise ValueError(f"'{key}' must be a list of agent names")
    return items


def _fields(item: object, key: str, allowed: frozenset[str], required: tuple[str, ...]) -> Mapping:
    if not isinstance(item, Mapping):
        raise TypeError(f"each item of '{key}' is a mapping")
    unknown = sorted(set(item) - allowed)
    if unknown:
        raise ValueError(f"'{key}': unknown key {', '.join(map(str, unknown))} (known: {', '.join(sorted(allowed))})")
    missing = [name for name in required if name not in item]
    if missing:
        raise ValueError(f"'{key}': an item lacks {', '.join(missing)}")
    return item


def _edge(item: object) -> EdgeSpec:
    data = _fields(item, "edges", frozenset({"from", "to", "when", "group", "activation"}), ("from", "to"))
    return EdgeSpec(data["from"], data["to"], when=data.get("when"), group=data.get("group"),
                    activation=data.get("activation", "all"))


def _insert(item: object) -> InsertSpec:
    data = _fields(item, "insert", frozenset({"agent", "before", "when"}), ("agent", "before"))
    return InsertSpec(data["agent"], data["before"], when=data.get("when", "PASS"))


def _pair(item: object) -> tuple[str, str]:
    data = _fields(item, "remove_edges", frozenset({"from", "to"}), ("from", "to"))
    _check_agent_name(data["from"])
    _check_agent_name(data["to"])
    return data["from"], data["to"]
