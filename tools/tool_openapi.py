"""An OpenAPI 3.1 document of the deployed tools: one POST operation per tool (previous major versions included).

Each operation takes the tool's arguments as its JSON request body (the parameters' JSON schema) and answers with
its result (the return value's JSON schema; ``{}`` when the return type has no schema). OpenAPI 3.1 schemas are
JSON Schema 2020-12, which is what the code gate writes. Author text goes in only the way clients see it
elsewhere (``ToolManifest.served_description``/``served_schema``): a fixed template and quoted, cleaned lines.
"""

from __future__ import annotations

from collections.abc import Iterable

from evorag.tools.plugins._manifest import ToolManifest
from evorag.tools.tool_compat import major_of

OPENAPI_VERSION = "3.1.0"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_ERROR = {"type": "object", "properties": {"error": {"type": "string"}, "hint": {"type": "string"}},
          "required": ["error"]}


def tools_openapi(manifests: Iterable[ToolManifest], *, evorag_version: str) -> dict:
    """The document for ``manifests``; ``info.version`` is evorag's version (each tool's is ``x-tool-version``)."""
    paths: dict[str, dict] = {}
    for manifest in sorted(manifests, key=lambda m: m.served_name()):
        name = manifest.served_name()
        version = manifest.semantic_version()
        operation = {
            "operationId": name,
            "summary": f"{name} {version}",
            "description": manifest.served_description(),
            "tags": ["evolved tools"],
            "x-tool-version": version,
            "x-risk": manifest.risk if manifest.risk in ("LOW", "MEDIUM", "HIGH") else "unknown",
            "requestBody": {"required": True, "content": {"application/json": {"schema": manifest.served_schema()}}},
            "responses": {
                "200": {"description": "The tool's result.",
                        "content": {"application/json": {"schema": manifest.served_return_schema()}}},
                "400": {"description": "The arguments do not match the schema, or the tool refused them.",
                        "content": {"application/json": {"schema": _ERROR}}},
                "502": {"description": "The tool failed in the sandbox.",
                        "content": {"application/json": {"schema": _ERROR}}},
            },
        }
        if manifest.pinned_of:
            operation["x-pinned-of"] = manifest.pinned_of
            operation["x-call-as"] = f"{manifest.pinned_of}@{major_of(version)}"
            operation["deprecated"] = True  # kept for callers that pinned it, until a person retires it
        paths[f"/tools/{name}"] = {"post": operation}
    return {
        "openapi": OPENAPI_VERSION,
        "jsonSchemaDialect": JSON_SCHEMA_DIALECT,
        "info": {"title": "evorag evolved tools", "version": evorag_version,
                 "description": "Tools evolved and deployed by evorag; every call runs in evorag's sandbox. "
                 "`evorag tools call NAME ARGS`, the MCP server and this interface take the same arguments."},
        "tags": [{"name": "evolved tools"}],
        "paths": paths,
    }

