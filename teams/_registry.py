"""One registry for agents and teams: evorag's own (registered by evorag.teams._builtins) and those of installed
packages, found through the entry point groups ``evorag.agents`` and ``evorag.teams``.

An entry point is read from the package metadata when the registry is first asked, and its object is
imported only when that name is needed (or a listing shows it). A plugin that fails to import, gives the wrong
kind of object, or claims a name that is taken is reported with its name, distribution and error by the
listings (``evorag agents list``) and by any team that needs it; it never stops evorag. Names of built-in
agents and teams cannot be taken by a plugin, so no plugin replaces a gate.

Entry point objects: for ``evorag.agents`` an ``AgentPlugin``; for ``evorag.teams`` a ``TeamSpec`` (e.g.
``load_team_spec(Path(__file__).with_name("team.yaml"))``) or the mapping of one. The entry point's name is
the agent's or team's name.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata

from evorag.agents import AgentPlugin
from evorag.teams._team_spec import BUILTIN_FLOWS, ResolvedTeam, TeamSpec, resolve_team

from evorag.errors import ConfigError, EvoragError, NotFoundError

logger = logging.getLogger(__name__)

GROUPS = {"agent": "evorag.agents", "team": "evorag.teams"}
_KINDS = {"agent": AgentPlugin, "team": TeamSpec}


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an agent or team comes from: evorag itself (no distribution), or an installed distribution's
    entry point (``name = module:attribute``)."""

    distribution: str | None = None
    version: str | None = None
    entry_point: str | None = None

    @property
    def builtin(self) -> bool:
        return self.distribution is None and self.entry_point is None

    def label(self) -> str:
        if self.builtin:
            return "built-in"
        where = f"{self.distribution or 'unknown distribution'} {self.version or ''}".strip()
        return f"{where} (entry point {self.entry_point})" if self.entry_point else where

    def to_dict(self) -> dict:
        return {"builtin": self.builtin, "distribution": self.distribution, "version": self.version,
                "entry_point": self.entry_point}


BUILTIN = Origin()


@dataclass(slots=True)
class PluginInfo:
    """One line of ``evorag agents list`` / ``evorag teams list``. ``flows``: for an agent, the kinds of team
    it can join; for a team, its flow. ``status`` is ok or broken (then ``error`` says why)."""

    kind: str
    name: str
    description: str
    flows: tuple[str, ...]
    origin: Origin
    status: str = "ok"
    error: str | None = None
    extends: str | None = None

    def to_dict(self) -> dict:
        return {"kind": self.kind, "name": self.name, "description": self.description, "flows": list(self.flows),
                "status": self.status, "error": self.error, "extends": self.extends, "origin": self.origin.to_dict()}


@dataclass(slots=True)
class _Slot:
    """A name offered by a built-in registration or an entry point, and what loading it gave."""

    kind: str
    name: str
    origin: Origin
    entry_point: metadata.EntryPoint | None = None
    value: object = None
    error: str | None = None
    loaded: bool = False
    conflicts: list[Origin] = field(default_factory=list)


def installed_entry_points(group: str) -> Iterable[metadata.EntryPoint]:
    return metadata.entry_points(group=group)


class PluginRegistry:
    """Agents and teams by name. ``discover(group)`` lists entry points (default: the installed packages')."""

    def __init__(self, discover: Callable[[str], Iterable[metadata.EntryPoint]] = installed_entry_points) -> None:
        self._discover = discover
        self._builtin: dict[str, dict[str, _Slot]] = {"agent": {}, "team": {}}
        self._plugins: dict[str, dict[str, _Slot]] | None = None
        self._extra: dict[str, dict[str, _Slot]] = {"agent": {}, "team": {}}
        self._lock = threading.RLock()

    # Registration
    def register(self, item: AgentPlugin | TeamSpec, origin: Origin = BUILTIN) -> None:
        """Register an agent or team in code: evorag's own (``BUILTIN``), or one with an origin of its own
        (for example a test's). A built-in name is registered once."""
        kind = "agent" if isinstance(item, AgentPlugin) else "team" if isinstance(item, TeamSpec) else None
        if kind is None:
            raise TypeError(f"register an AgentPlugin or a TeamSpec, not {type(item).__name__}")
        with self._lock:
            if item.name in self._builtin[kind]:
                raise ValueError(f"{kind} {item.name} is registered already")
            table = self._builtin if origin.builtin else self._extra
            table[kind][item.name] = _Slot(kind, item.name, origin, value=item, loaded=True)

    # Lookup
    def agent(self, name: str) -> AgentPlugin:
        """The agent ``name``; NotFoundError when nobody offers it, ConfigError when its plugin is broken."""
        return self._value("agent", name)  # type: ignore[return-value]

    def team(self, name: str) -> TeamSpec:
        return self._value("team", name)  # type: ignore[return-value]

    def origin(self, kind: str, name: str) -> Origin:
        return self._slot(kind, name).origin

    def resolve(self, name: str) -> ResolvedTeam:
        """The team ``name`` with its ``extends`` chain applied and checked, and every agent it names
        available for its flow."""
        team = resolve_team(self.team(name), self.team)
        for node in team.nodes:
            agent = self.agent(node)
            builder = agent.step if team.flow == "evolution" else agent.chat
            if builder is None:
                kind = "an evolution step" if team.flow == "evolution" else "a chat participant"
                raise ConfigError(f"team {name}: agent {node} cannot be {kind} (it offers: "
                                  f"{', '.join(agent.flows)})", hint="`evorag agents list` shows what each "
                                  "agent can join")
        return team

    # Listings
    def agents(self) -> list[PluginInfo]:
        infos = []
        for slot in self._all("agent"):
            value = self._load(slot)
            info = PluginInfo("agent", slot.name, getattr(value, "description", ""), getattr(value, "flows", ()),
                              slot.origin)
            infos.append(self._mark(info, slot))
        return infos

    def teams(self) -> list[PluginInfo]:
        infos = []
        for slot in self._all("team"):
            value = self._load(slot)
            info = PluginInfo("team", slot.name, getattr(value, "description", ""),
                              (value.flow,) if isinstance(value, TeamSpec) else (), slot.origin,
                              extends=getattr(value, "extends", None))
            self._mark(info, slot)
            if info.status == "ok":
                try:
                    self.resolve(slot.name)  # the agents it names, its base, its graph
                except EvoragError as exc:
                    info.status, info.error = "broken", exc.message
            infos.append(info)
        return infos

    # Internals
    def _all(self, kind: str) -> list[_Slot]:
        with self._lock:
            plugins = self._discovered()[kind]
            return [*self._builtin[kind].values(), *sorted([*plugins.values(), *self._extra[kind].values()],
                                                           key=lambda slot: slot.name)]

    def _mark(self, info: PluginInfo, slot: _Slot) -> PluginInfo:
        if slot.error is not None:
            info.status, info.error = "broken", slot.error
        return info

    def _slot(self, kind: str, name: str) -> _Slot:
        with self._lock:
            slot = (self._builtin[kind].get(name) or self._extra[kind].get(name)
                    or self._discovered()[kind].get(name))
        if slot is None:
            raise NotFoundError(f"no {kind} named {name!r}",
                                hint=f"`evorag {kind}s list` shows the installed {kind}s")
        return slot

    def _value(self, kind: str, name: str) -> object:
        slot = self._slot(kind, name)
        value = self._load(slot)
        if slot.error is not None:
            raise ConfigError(f"{kind} {name} from {slot.origin.label()} is broken: {slot.error}",
                              hint=f"fix or uninstall {slot.origin.distribution or 'the plugin'}; "
                              f"`evorag {kind}s list` shows the state of every plugin")
        return value

    def _load(self, slot: _Slot) -> object:
        with self._lock:
            if slot.loaded:
                return slot.value
            slot.loaded = True
            try:
                value = slot.entry_point.load()
                if slot.kind == "team" and isinstance(value, Mapping):
                    value = TeamSpec.from_mapping(value, where=f"entry point {slot.origin.entry_point}")
                expected = _KINDS[slot.kind]
                if not isinstance(value, expected):
                    raise TypeError(f"the entry point gives a {type(value).__name__}, not an {expected.__name__}")
                if value.name != slot.name:
                    raise ValueError(f"the entry point is named {slot.name} but gives the {slot.kind} {value.name}")
                if isinstance(value, TeamSpec) and value.flow in BUILTIN_FLOWS:
                    raise ValueError(f"flow {value.flow} is evorag's own")
                slot.value = value
            # A plugin is someone else's code: whatever it raises (SystemExit included) is its error, not ours.
            except (Exception, SystemExit) as exc:  # noqa: BLE001
                message = getattr(exc, "message", None) or str(exc) or "no message"
                slot.error = f"{type(exc).__name__}: {message.splitlines()[0][:300]}"
                # Reported by the listings and by any team that needs it; a log line would repeat it.
                logger.debug("%s plugin %s from %s is broken: %s", slot.kind, slot.name, slot.origin.label(),
                             slot.error)
            return slot.value

    def _discovered(self) -> dict[str, dict[str, _Slot]]:
        """Entry points by kind and name, read once; a name offered twice, or a built-in name, is an error of
        every plugin offering it (never loaded)."""
        if self._plugins is not None:
            return self._plugins
        found: dict[str, dict[str, _Slot]] = {"agent": {}, "team": {}}
        for kind, group in GROUPS.items():
            seen = set()
            for entry_point in self._discover(group):
                dist = getattr(entry_point, "dist", None)
                name = dist.metadata["Name"] if dist is not None else None
                key = (entry_point.name, entry_point.value, name)
                if key in seen:  # the same distribution reached through two sys.path entries
                    continue
                seen.add(key)
                origin = Origin(name, dist.version if dist is not None else None,
                                f"{entry_point.name} = {entry_point.value}")
                slot = _Slot(kind, entry_point.name, origin, entry_point=entry_point)
                other = found[kind].get(entry_point.name)
                if entry_point.name in self._builtin[kind]:
                    slot.loaded, slot.error = True, f"the name of a built-in {kind}: the plugin is not used"
                elif other is not None:
                    other.conflicts.append(origin)
                    other.loaded = True
                    other.error = (f"offered by {other.origin.label()} and by "
                                   f"{', '.join(o.label() for o in other.conflicts)}: neither is used")
                    continue
                found[kind][entry_point.name] = slot
        self._plugins = found
        return found
