"""The live set of deployed tools, shared by the agents and the MCP server.

Tools are described by their manifests (derived from the AST at deploy time) and executed only in the
sandbox: the host never imports generated code. ``refresh`` re-reads the repository after a deploy or a
rollback and tells every listener which tools appeared and disappeared, so registration is live.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from evorag.tools.plugins._manifest import WITHHELD, ToolManifest, untrusted_line
from evorag.tools.plugins._repository import MIGRATION_FILE, PluginRepository
from evorag.tools.risk_rules import instruction_like
from evorag.tools.sandbox import Limits
from evorag.tools.tool_compat import major_of
from evorag.tools.tool_envs import LOCK_FILE, ToolEnvironments

from evorag.errors import ExternalError, NotFoundError, UserError
from evorag.terminal import strip_control


def pinned_name(name: str, major: int) -> str:
    """The folder (and MCP tool name) of a previous major version: ``NAME_vMAJOR`` ('@' is no MCP tool name)."""
    return f"{name}_v{major}"

# Runs inside the sandbox: loads the tool, calls it with the JSON arguments, prints a JSON result.
_RUNNER = """
import json, sys
sys.path.insert(0, "/work")
import importlib.util
spec = importlib.util.spec_from_file_location("tool", "/work/tool.py")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
args = json.loads(open("/work/args.json").read())
try:
    result = getattr(module, sys.argv[1])(**args)
except Exception as exc:
    print(json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}"}))
else:
    print(json.dumps({"ok": True, "result": result}, default=str))
"""


def call_in_sandbox(sandbox, source: Path, function: str, arguments: dict, *, timeout: float,
                    python_env: Path | None = None, label: str = ""):
    """Call ``function`` of ``source``/tool.py with ``arguments`` in the sandbox and return its JSON result.

    Raises UserError when the tool raised (its message says which exception), ExternalError when the run
    failed or printed no result. Used for live calls and, at deploy, to record a tool's examples."""
    label = label or function
    with tempfile.TemporaryDirectory(prefix=f"evorag-call-{label}-") as tmp:
        work = Path(tmp)
        shutil.copy2(Path(source) / "tool.py", work / "tool.py")
        (work / "args.json").write_text(json.dumps(arguments))
        (work / "_runner.py").write_text(_RUNNER)
        result = sandbox.run(work, ["python", "/work/_runner.py", function], limits=Limits(wall_seconds=timeout),
                             python_env=python_env)
    if result.exit_code != 0 or result.timed_out:
        reason = result.killed_reason or (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise ExternalError(f"tool {label} failed in the sandbox: {reason}")
    try:
        payload = json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise ExternalError(f"tool {label} printed no result") from None
    if not payload.get("ok"):
        raise UserError(f"tool {label} raised {payload.get('error')}")
    return payload["result"]


@dataclass(slots=True)
class RegistryChange:
    added: list[str]
    removed: list[str]
    updated: list[str]


Listener = Callable[[RegistryChange], None]


class ToolRegistry:
    def __init__(self, repository: PluginRepository, sandbox_factory: Callable[[], object], *,
                 environments: ToolEnvironments | None = None) -> None:
        self.repository = repository
        self._sandbox_factory = sandbox_factory
        # A tool with a lock runs with its environment mounted (installed again from the lock if it is missing).
        self.environments = environments or ToolEnvironments(repository.root.parent / "envs")
        self._tools: dict[str, ToolManifest] = {}
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        self.refresh()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def tools(self) -> list[ToolManifest]:
        with self._lock:
            return list(self._tools.values())

    def get(self, name: str) -> ToolManifest:
        """The tool called ``name``; ``NAME@MAJOR`` is that major version: the deployed tool when its version has
        that major, else the previous major version a breaking redeploy kept (``NAME_vMAJOR``)."""
        name = self.resolve(name)
        with self._lock:
            if name not in self._tools:
                raise NotFoundError(f"no deployed tool named {name!r}", hint="see `evorag tools list`")
            return self._tools[name]

    def resolve(self, name: str) -> str:
        """The folder name of ``NAME`` or ``NAME@MAJOR`` (see ``get``); a NotFoundError names the majors kept."""
        base, at, major = str(name).partition("@")
        if not at:
            return name
        if not major.isdigit() or major != str(int(major)):
            raise UserError(f"invalid major version in {name!r}", hint="write NAME@MAJOR, e.g. word_count@1")
        with self._lock:
            current = self._tools.get(base)
            if current is not None and not current.pinned_of and major_of(current.semver) == int(major):
                return base
            pinned = self._tools.get(pinned_name(base, int(major)))
            if pinned is not None and pinned.pinned_of == base:
                return pinned.name
            kept = sorted(f"{base}@{major_of(m.semver)}" for m in self._tools.values() if m.pinned_of == base)
            if current is not None:
                kept.insert(0, f"{base}@{major_of(current.semver)}")
        raise NotFoundError(f"no major version {major} of tool {base!r}",
                            hint=f"deployed: {', '.join(kept)}" if kept else "see `evorag tools list`")

    def refresh(self) -> RegistryChange:
        current = {m.name: m for m in self.repository.manifests()}
        with self._lock:
            before = self._tools
            change = RegistryChange(
                added=sorted(set(current) - set(before)),
                removed=sorted(set(before) - set(current)),
                updated=sorted(n for n in set(current) & set(before) if current[n].version != before[n].version),
            )
            self._tools = current
        if change.added or change.removed or change.updated:
            for listener in list(self._listeners):
                listener(change)
        return change

    def call(self, name: str, arguments: dict, *, timeout: float = 30.0):
        """Validate ``arguments`` against the tool's schema and run it in the sandbox."""
        import jsonschema  # ~60 ms to import: only calls of deployed tools need it

        manifest = self.get(name)
        name = manifest.name  # NAME@MAJOR: the folder of that version
        # A previous major version's tool.py still defines the function under the tool's own name.
        function = manifest.pinned_of or name
        try:
            jsonschema.validate(arguments, manifest.parameters_schema)
        except jsonschema.ValidationError as exc:
            raise UserError(f"invalid arguments for {name}: {exc.message}") from None
        source = self.repository.tool_dir(name)
        lock = source / LOCK_FILE
        python_env = self.environments.for_lock(lock.read_text(encoding="utf-8")) if lock.is_file() else None
        return call_in_sandbox(self._sandbox_factory(), source, function, arguments, timeout=timeout,
                               python_env=python_env, label=name)

    def documentation(self) -> str:
        """Markdown reference of every deployed tool: schema, description, examples, version.

        Descriptions, parameter descriptions and requests are untrusted text: they are served the way
        ``ToolManifest.served_description`` serves them (template, one quoted line, instructions withheld).
        """
        lines = ["# Evolved tools", ""]
        for manifest in sorted(self.tools(), key=lambda m: m.name):
            lines += [f"## `{manifest.served_name()}`", "", manifest.served_description(), "",
                      "Arguments (JSON schema):", "", "```json",
                      json.dumps(manifest.served_schema(), indent=2), "```", ""]
            for example in manifest.served_examples():
                lines += [f"Example (recorded in the sandbox, untrusted data): {example}", ""]
            lines += self._migration_lines(manifest)
            if manifest.request:
                request = WITHHELD if instruction_like(manifest.request) else untrusted_line(manifest.request)
                lines += [f"Requested as (untrusted): {json.dumps(request, ensure_ascii=False)}", ""]
        return "\n".join(lines)

    def _migration_lines(self, manifest: ToolManifest) -> list[str]:
        """The tool's migration guide after a breaking redeploy (evorag writes it from parameter names and types;
        a guide that reads like instructions is withheld like any untrusted text)."""
        try:
            guide = self.repository.tool_dir(manifest.served_name()) / MIGRATION_FILE
        except (NotFoundError, UserError):
            return []
        if not guide.is_file():
            return []
        text = guide.read_text(encoding="utf-8", errors="replace")[:8000]
        if instruction_like(text):
            return [WITHHELD, ""]
        return [strip_control(text).replace("## Migrating", "### Migrating", 1).rstrip(), ""]
