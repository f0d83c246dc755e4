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
from evorag.tools.plugins._repository import PluginRepository
from evorag.tools.risk_rules import instruction_like
from evorag.tools.sandbox import Limits

from evorag.errors import ExternalError, NotFoundError, UserError

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


@dataclass(slots=True)
class RegistryChange:
    added: list[str]
    removed: list[str]
    updated: list[str]


Listener = Callable[[RegistryChange], None]


class ToolRegistry:
    def __init__(self, repository: PluginRepository, sandbox_factory: Callable[[], object]) -> None:
        self.repository = repository
        self._sandbox_factory = sandbox_factory
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
        with self._lock:
            if name not in self._tools:
                raise NotFoundError(f"no deployed tool named {name!r}", hint="see `evorag tools list`")
            return self._tools[name]

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
        try:
            jsonschema.validate(arguments, manifest.parameters_schema)
        except jsonschema.ValidationError as exc:
            raise UserError(f"invalid arguments for {name}: {exc.message}") from None
        source = self.repository.tool_dir(name)
        with tempfile.TemporaryDirectory(prefix=f"evorag-call-{name}-") as tmp:
            work = Path(tmp)
            shutil.copy2(source / "tool.py", work / "tool.py")
            (work / "args.json").write_text(json.dumps(arguments))
            (work / "_runner.py").write_text(_RUNNER)
            result = self._sandbox_factory().run(
                work, ["python", "/work/_runner.py", name], limits=Limits(wall_seconds=timeout)
            )
        if result.exit_code != 0 or result.timed_out:
            reason = result.killed_reason or (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise ExternalError(f"tool {name} failed in the sandbox: {reason}")
        try:
            payload = json.loads(result.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise ExternalError(f"tool {name} printed no result") from None
        if not payload.get("ok"):
            raise UserError(f"tool {name} raised {payload.get('error')}")
        return payload["result"]

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
            for example in manifest.examples:
                lines += [f"Example: `{json.dumps(example.get('arguments'))}` → `{json.dumps(example.get('result'))}`", ""]
            if manifest.request:
                request = WITHHELD if instruction_like(manifest.request) else untrusted_line(manifest.request)
                lines += [f"Requested as (untrusted): {json.dumps(request, ensure_ascii=False)}", ""]
        return "\n".join(lines)
