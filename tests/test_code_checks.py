"""The code gate: candidate tools get the right verdict, aliasing tricks are caught, schemas are right."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tools.code_checks import check_code, max_risk, scan_security

CANDIDATES = Path(__file__).parent / "candidates"


def candidate_source(name: str) -> str:
    return (CANDIDATES / name / "tool.py").read_text(encoding="utf-8")


def tool_source(body: str, *, imports: str = "", signature: str = "def tool(text: str) -> str:") -> str:
    """A well-formed tool module whose function runs ``body``."""
    return (
        textwrap.dedent(imports).strip()
        + "\n\n\n"
        + signature
        + '\n    """Do something."""\n'
        + textwrap.indent(textwrap.dedent(body).strip(), "    ")
        + "\n    return text\n"
    )


# --- the candidate battery ----------------------------------------------------------------------------

# candidate, ok, reason fragment (None: no reason), risk, fragment of a risk reason
BATTERY = [
    ("good_word_count", True, None, "LOW", None),
    ("syntax_error", False, "syntax error in tool.py at line 6", "LOW", None),
    ("missing_docstring", False, "function 'shout' (line 1) has no docstring", "LOW", None),
    (
        "missing_types",
        False,
        "parameter 'text' of function 'repeat' (line 1) has no type annotation",
        "LOW",
        None,
    ),
    ("two_public_functions", False, "2 public functions (to_upper (line 4), to_lower (line 9))", "LOW", None),
    ("uses_network", True, None, "HIGH", "uses the network (urllib.request.urlopen)"),
    ("uses_subprocess", True, None, "HIGH", "starts or controls processes (subprocess.run)"),
    ("writes_outside", True, None, "HIGH", "outside a temporary directory (open on _LOG = '/tmp/"),
    ("reads_secret_env", True, None, "HIGH", "environment variables (os.getenv)"),
    ("uses_eval", True, None, "HIGH", "runs dynamically built code (eval)"),
    ("infinite_loop", True, None, "LOW", None),
    ("memory_bomb", True, None, "LOW", None),
    ("failing_test", True, None, "LOW", None),
    ("unknown_package", True, None, "LOW", None),
    ("typosquat", True, None, "HIGH", "uses the network (requests.head)"),
    ("dependency_conflict", True, None, "LOW", None),
    ("new_dependency", True, None, "LOW", None),
]


def test_battery_covers_every_candidate():
    on_disk = {path.name for path in CANDIDATES.iterdir() if path.is_dir() and not path.name.startswith("_")}
    assert on_disk == {row[0] for row in BATTERY}


@pytest.mark.parametrize(
    ("name", "ok", "reason", "risk", "risk_reason"), BATTERY, ids=[row[0] for row in BATTERY]
)
def test_candidate_verdicts(name, ok, reason, risk, risk_reason):
    result = check_code(candidate_source(name))

    assert result.gate == "code"
    assert result.ok is ok, result.reason
    if reason is None:
        assert result.reason is None and result.problems == []
        assert result.function is not None
    else:
        assert reason in result.reason
        assert "\n" not in result.reason
    assert result.risk == risk, result.risk_reasons
    if risk_reason is not None:
        assert any(risk_reason in line for line in result.risk_reasons), result.risk_reasons
    else:
        assert result.risk_reasons == []


def test_good_candidate_signature_and_schema():
    result = check_code(candidate_source("good_word_count"))

    fn = result.function
    assert fn.name == "word_count"
    assert fn.docstring.startswith("Count the words in ``text``.")
    assert fn.returns == "int"
    assert fn.parameters == [
        {"name": "text", "annotation": "str", "default": None, "required": True},
        {"name": "mode", "annotation": "Literal['all', 'unique']", "default": "'all'", "required": False},
    ]
    assert fn.json_schema == {
        "type": "object",
        "properties": {
            "text": {"type": "string"},
            "mode": {"enum": ["all", "unique"], "type": "string", "default": "all"},
        },
        "required": ["text"],
        "additionalProperties": False,
    }
    assert not [finding for finding in result.lint if finding.blocking]
    assert result.security == []
    json.dumps(result.to_dict())  # the result goes to the audit log as it is


def test_candidate_test_files_are_low_risk():
    for test_file in CANDIDATES.glob("*/test_*.py"):
        findings = scan_security(test_file.read_text(encoding="utf-8"))
        assert [f for f in findings if f.risk != "LOW"] == [], test_file


# --- aliasing and evasion tricks ----------------------------------------------------------------------

TRICKS = [
    ("import subprocess as sp", "sp.run(['ls'])", "process", "subprocess.run"),
    ("from subprocess import Popen as P", "P(['ls'])", "process", "subprocess.Popen"),
    ("from os import system", "system('ls')", "process", "os.system"),
    ("from os import system as launch", "launch('ls')", "process", "os.system"),
    ("import os", "getattr(os, 'system')('ls')", "process", "os.system"),
    ("import os", "o = os\nrun = o.popen\nrun('ls')", "process", "os.popen"),
    ("", "__import__('os').system('ls')", "process", "os.system"),
    ("", "__import__('os').system('ls')", "dynamic-import", "__import__"),
    ("import importlib", "importlib.import_module('subprocess').run(['ls'])", "process", "subprocess.run"),
    ("import importlib as il", "mod = il.import_module(text)", "dynamic-import", "importlib"),
    ("import sys", "sys.modules['os'].system('ls')", "process", "os.system"),
    ("import os", "os.execv('/bin/ls', ['ls'])", "process", "os.execv"),
    ("import os", "os.spawnlp(os.P_WAIT, 'ls', 'ls')", "process", "os.spawnlp"),
    ("import pty", "pty.spawn('sh')", "process", "pty"),
    (
        "from multiprocessing import Process",
        "Process(target=print).start()",
        "process",
        "multiprocessing.Process",
    ),
    ("import posix", "posix.system('ls')", "process", "posix"),
    ("import socket as s", "s.create_connection(('example.org', 80))", "network", "socket.create_connection"),
    ("from urllib import request", "request.urlopen(text)", "network", "urllib.request.urlopen"),
    ("from http.client import HTTPSConnection", "HTTPSConnection('example.org')", "network", "http.client"),
    ("import httpx", "httpx.get(text)", "network", "httpx"),
    ("import aiohttp", "aiohttp.ClientSession()", "network", "aiohttp"),
    ("import smtplib, ftplib", "smtplib.SMTP('x'); ftplib.FTP('x')", "network", "smtplib"),
    ("import os", "key = os.environ['OPENAI_API_KEY']", "environment", "os.environ"),
    ("import os", "key = os.environ[text]", "environment", "os.environ"),
    ("from os import environ as e", "key = e.get('X')", "environment", "os.environ.get"),
    ("from os import getenv", "key = getenv('X')", "environment", "os.getenv"),
    ("import os", "os.putenv('X', '1')", "environment", "os.putenv"),
    ("", "eval(text)", "dynamic-code", "eval"),
    ("", "exec(text)", "dynamic-code", "exec"),
    ("", "code = compile(text, 'x', 'exec')", "dynamic-code", "compile"),
    ("", "__builtins__['eval'](text)", "dynamic-code", "eval"),
    ("import builtins", "getattr(builtins, 'ex' + 'ec')(text)", "introspection", "builtins"),
    ("import os", "getattr(os, 'sys' + 'tem')('ls')", "introspection", "attributes of os dynamically"),
    ("", "().__class__.__bases__[0].__subclasses__()", "introspection", "__subclasses__"),
    ("import os", "os.__dict__['system']('ls')", "process", "os.system"),
    ("import os", "vars(os)['popen']('ls')", "process", "os.popen"),
    ("import builtins", "builtins.__dict__['exec'](text)", "dynamic-code", "exec"),
    ("import ctypes", "ctypes.CDLL(None)", "native-code", "ctypes"),
    ("import cffi", "cffi.FFI()", "native-code", "cffi"),
    ("import pickle", "pickle.loads(text.encode())", "deserialization", "pickle"),
    ("from marshal import loads", "loads(text.encode())", "deserialization", "marshal.loads"),
]


@pytest.mark.parametrize(
    ("imports", "body", "rule", "fragment"), TRICKS, ids=[f"{i}-{t[3]}" for i, t in enumerate(TRICKS)]
)
def test_aliasing_tricks_are_caught(imports, body, rule, fragment):
    result = check_code(tool_source(body, imports=imports))

    assert result.ok, result.reason
    assert result.risk == "HIGH"
    matching = [f for f in result.security if f.rule == rule and fragment in f.message]
    assert matching, [(f.rule, f.message) for f in result.security]
    assert all(f.risk == "HIGH" for f in matching)


FILE_ACCESS = [
    # body, risk, fragment
    ("open('/etc/evorag-x', 'w').write(text)", "HIGH", "open on '/etc/evorag-x'"),
    ("open(text, mode='a')", "HIGH", "open on text"),
    ("open(text, 'r+')", "HIGH", "outside a temporary directory"),
    ("mode = 'w' if text else 'r'\nopen(text, mode)", "HIGH", "outside a temporary directory"),
    ("Path(text).write_text('x')", "HIGH", ".write_text() on Path(text)"),
    ("Path('/tmp/x').unlink()", "HIGH", ".unlink()"),
    ("shutil.rmtree(text)", "HIGH", "shutil.rmtree"),
    ("os.remove(text)", "HIGH", "os.remove"),
    ("os.rename(tempfile.mkdtemp(), '/etc/x')", "HIGH", "os.rename on '/etc/x'"),
    ("fd = os.open(text, os.O_WRONLY | os.O_CREAT)", "HIGH", "os.open"),
    (
        "d = tempfile.mkdtemp()\nopen(os.path.join(d, 'out.txt'), 'w').write(text)",
        "MEDIUM",
        "temporary directory",
    ),
    (
        "with tempfile.TemporaryDirectory() as d:\n    (Path(d) / 'x.txt').write_text(text)",
        "MEDIUM",
        "temporary directory",
    ),
    ("d = tempfile.mkdtemp()\nopen(f'{d}/out.txt', 'w')", "MEDIUM", "temporary directory"),
    ("fd, name = tempfile.mkstemp()\nshutil.copy(text, name)", "MEDIUM", "temporary directory"),
    # escaping the temporary directory is not a temporary write
    ("d = tempfile.mkdtemp()\nopen(os.path.join(d, '/etc/passwd'), 'w')", "HIGH", "outside"),
    ("d = tempfile.mkdtemp()\n(Path(d) / '/etc/passwd').write_text(text)", "HIGH", "outside"),
    ("d = tempfile.mkdtemp()\nopen(d + '/../../etc/x', 'w')", "HIGH", "outside"),
    ("d = tempfile.mkdtemp()\nd = '/etc'\nopen(d + '/x', 'w')", "HIGH", "outside"),
    ("d = tempfile.mkdtemp()\nd += '/../x'\nopen(d, 'w')", "HIGH", "outside"),
    ("d = tempfile.mkdtemp()\nd += '/sub'\nopen(d, 'w')", "MEDIUM", "temporary directory"),
    # reading is MEDIUM
    ("data = open(text).read()", "MEDIUM", "reads files (text)"),
    ("data = open(text, 'rb').read()", "MEDIUM", "reads files"),
    ("data = Path(text).read_text()", "MEDIUM", "read_text"),
    ("names = os.listdir(text)", "MEDIUM", "os.listdir"),
]
FILE_IMPORTS = "import os\nimport shutil\nimport tempfile\nfrom pathlib import Path"


@pytest.mark.parametrize(("body", "risk", "fragment"), FILE_ACCESS, ids=[row[0][:40] for row in FILE_ACCESS])
def test_file_access(body, risk, fragment):
    result = check_code(tool_source(body, imports=FILE_IMPORTS))

    assert result.ok, result.reason
    assert result.risk == risk, result.risk_reasons
    assert any(fragment in reason for reason in result.risk_reasons), result.risk_reasons


def test_threads_are_medium():
    result = check_code(tool_source("threading.Thread(target=print).start()", imports="import threading"))
    assert result.risk == "MEDIUM"
    assert result.risk_reasons == [
        "line 1: starts threads (threading)",
        "line 6: starts threads (threading.Thread)",
    ]


def test_harmless_code_is_low():
    source = tool_source(
        """
        words = re.findall(r"\\w+", text)
        encoded = json.dumps({"n": len(words), "q": quote(text), "root": math.sqrt(len(words))})
        assert Path(text).suffix is not None and os.path.join("a", "b") and os.sep
        """,
        imports="import json\nimport math\nimport os\nimport re\nfrom pathlib import Path\nfrom urllib.parse import quote",
    )
    result = check_code(source)
    assert result.ok, result.reason
    assert result.risk == "LOW"
    assert result.security == []


def test_findings_are_reported_once_per_line_and_rule():
    result = check_code(tool_source("os.system('a'); os.system('b')", imports="import os"))
    assert [(f.rule, f.line) for f in result.security] == [("process", 6)]


# --- the signature and its JSON schema ----------------------------------------------------------------


def test_json_schema_of_a_typed_function():
    source = '''
import typing as t
from typing import Annotated, Literal, Optional


def search_docs(
    query: str,
    limit: int = 10,
    threshold: float = 0.5,
    exact: bool = False,
    sources: list[str] | None = None,
    weights: dict[str, float] = {},
    kind: Literal["text", "code"] = "text",
    level: Literal[1, 2, 3] = 1,
    tags: t.List[str] = [],
    note: Optional[str] = None,
    pair: tuple[int, int] = (0, 1),
    count: "int" = 3,
    label: Annotated[str, "A label shown to the user"] = "",
    *,
    anything: t.Any = None,
) -> list[dict[str, str]]:
    """Search the indexed documentation."""
    return []
'''
    result = check_code(source)

    assert result.ok, result.reason
    schema = result.function.json_schema
    assert schema["required"] == ["query"]
    assert schema["additionalProperties"] is False
    assert schema["properties"] == {
        "query": {"type": "string"},
        "limit": {"type": "integer", "default": 10},
        "threshold": {"type": "number", "default": 0.5},
        "exact": {"type": "boolean", "default": False},
        "sources": {
            "anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}],
            "default": None,
        },
        "weights": {"type": "object", "additionalProperties": {"type": "number"}, "default": {}},
        "kind": {"enum": ["text", "code"], "type": "string", "default": "text"},
        "level": {"enum": [1, 2, 3], "type": "integer", "default": 1},
        "tags": {"type": "array", "items": {"type": "string"}, "default": []},
        "note": {"type": ["string", "null"], "default": None},
        "pair": {
            "type": "array",
            "prefixItems": [{"type": "integer"}, {"type": "integer"}],
            "minItems": 2,
            "maxItems": 2,
            "default": [0, 1],
        },
        "count": {"type": "integer", "default": 3},
        "label": {"type": "string", "description": "A label shown to the user", "default": ""},
        "anything": {"default": None},
    }
    assert result.function.returns == "list[dict[str, str]]"
    assert [p["required"] for p in result.function.parameters] == [True] + [False] * 13
    assert result.function.parameters[6]["default"] == "'text'"


def test_async_tool_is_accepted():
    result = check_code('async def fetch_count(n: int) -> int:\n    """Count."""\n    return n\n')
    assert result.ok and result.function.is_async


def test_private_helpers_and_classes_are_allowed():
    source = '''
class _Cache:
    pass


def _helper(x: int) -> int:
    return x


def double(x: int) -> int:
    """Double x."""
    return _helper(x) * 2
'''
    result = check_code(source)
    assert result.ok, result.reason
    assert result.function.name == "double"


INVALID = [
    (
        'def tool(path: Path) -> str:\n    """D."""\n    return ""\n',
        "unsupported type annotation 'Path'",
        "from pathlib import Path\n",
    ),
    ('def tool(m: dict[int, str]) -> str:\n    """D."""\n    return ""\n', "dictionary keys must be str", ""),
    (
        'def tool(s: set[str]) -> str:\n    """D."""\n    return ""\n',
        "unsupported type annotation 'set[str]'",
        "",
    ),
    ('def tool(*words: str) -> str:\n    """D."""\n    return ""\n', "takes *words", ""),
    ('def tool(a: int, **options: str) -> str:\n    """D."""\n    return ""\n', "takes **options", ""),
    ('def tool(a: int, /) -> str:\n    """D."""\n    return ""\n', "positional-only", ""),
    ('def tool(a: int):\n    """D."""\n    return ""\n', "has no return annotation", ""),
    ('def tool(a: int = len("x")) -> int:\n    """D."""\n    return a\n', "must be a JSON literal", ""),
    ('def tool(a: int) -> int:\n    """   """\n    return a\n', "has no docstring", ""),
    ('def Tool(a: int) -> int:\n    """D."""\n    return a\n', "snake_case", ""),
    ("def " + "t" * 65 + '(a: int) -> int:\n    """D."""\n    return a\n', "1-64 characters", ""),
    (
        '@functools.cache\ndef tool(a: int) -> int:\n    """D."""\n    return a\n',
        "decorated",
        "import functools\n",
    ),
    (
        'class Helper:\n    pass\n\n\ndef tool(a: int) -> int:\n    """D."""\n    return a\n',
        "public class 'Helper'",
        "",
    ),
    ('def _tool(a: int) -> int:\n    """D."""\n    return a\n', "no public function", ""),
    (
        'def tool(a: int) -> int:\n    """D."""\n    return a + undefined_thing\n',
        "undefined name 'undefined_thing'",
        "",
    ),
    ('def tool(a: int) -> int:\n    """D."""\n    return a\n', "star import from os", "from os import *\n"),
    ('def tool(a: "list[") -> int:\n    """D."""\n    return 1\n', "string annotation is not valid", ""),
]


@pytest.mark.parametrize(("source", "fragment", "imports"), INVALID, ids=[row[1] for row in INVALID])
def test_invalid_tools_are_refused_with_a_clear_reason(source, fragment, imports):
    result = check_code(imports + source)
    assert not result.ok
    assert fragment in result.reason, result.reason
    # module-level problems (lint, star imports) leave the signature readable; signature problems do not
    assert (result.function is None) is not fragment.startswith(("undefined", "star import"))


def test_unused_import_is_a_warning_not_a_block():
    result = check_code(tool_source("pass", imports="import json"))
    assert result.ok
    assert [(f.rule, f.blocking) for f in result.lint] == [("pyflakes:UnusedImport", False)]


def test_undefined_name_is_blocking_lint():
    result = check_code(tool_source("print(nowhere)"))
    assert not result.ok
    assert [(f.rule, f.line, f.blocking) for f in result.lint] == [("pyflakes:UndefinedName", 6, True)]
    assert result.reason == "undefined name 'nowhere' (line 6)"
    assert str(result.lint[0]) == "line 6: undefined name 'nowhere' [pyflakes:UndefinedName, error]"


def test_the_code_is_never_executed(tmp_path):
    marker = tmp_path / "executed"
    source = tool_source("pass", imports=f"open({str(marker)!r}, 'w').write('ran')\nraise SystemExit(3)")
    result = check_code(source)
    assert not marker.exists()
    assert result.ok
    assert result.risk == "HIGH"  # a top-level write outside a temporary directory


HOSTILE = [
    "x = 1\x00",
    "x = " + "(" * 5000 + ")" * 5000,
    "x = 1\n" * 100_000,
    "def f(a: int = " + "1+" * 2000 + '1) -> int:\n    """d"""\n    return a\n',
]


@pytest.mark.parametrize("source", HOSTILE, ids=["null byte", "parentheses", "too large", "deep expression"])
def test_hostile_sources_fail_cleanly(source):
    result = check_code(source)
    assert not result.ok
    assert result.reason


def test_max_risk():
    assert max_risk() == "LOW"
    assert max_risk("LOW", "MEDIUM") == "MEDIUM"
    assert max_risk("MEDIUM", "HIGH", "LOW") == "HIGH"
