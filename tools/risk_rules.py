"""The risk policy of candidate tools: one table of rules and reasons (this file is the whole policy).

LOW     the analyser proved the code pure: it uses only the allowlisted modules, names, builtins and
        methods below, no special (dunder) name, no attribute looked up by a name built at run time.
MEDIUM  it could not prove that (a method it cannot type, a module passed around as a value, files in a
        temporary directory, threads...), and it saw nothing that reaches a dangerous capability.
HIGH    it saw a dangerous capability (processes, files outside temp, network, native code, dynamic code,
        the environment, introspection that escapes, text addressed to an AI model), or an unknown import.

``evorag tools add --yes`` approves LOW only; MEDIUM and HIGH wait for a person. The analysis is static and
cannot see everything: the sandbox, not this table, is the security boundary.

How names are matched (see ``tools/name_resolver.py`` and ``tools/risk_table.py``): every reference is
resolved to a dotted path through imports, aliases and re-exports (``import shutil as s; s.os.system`` is
``os.system``); the row with the longest matching prefix decides (``os.path.join`` is LOW although ``os.path``
and ``os`` are HIGH). A path that matches no row is MEDIUM when its module appears in the table (a name
outside the module's allowlist) and HIGH when the module is unknown. A row of a whole module allows its public
functions and classes; its private names (``_x``) are MEDIUM and its sub-modules are judged as the modules
they are.
"""

from __future__ import annotations

import builtins
import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

Risk = Literal["LOW", "MEDIUM", "HIGH"]
RISK_ORDER: dict[str, int] = {"LOW": 0, "MEDIUM": 1, "HIGH": 2}


def _names(text: str) -> tuple[str, ...]:
    """Whitespace-separated names: keeps the long rows compact."""
    return tuple(text.split())


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    risk: Risk
    reason: str
    # Dotted prefixes ("os.environ" covers os.environ.get); a trailing '*' continues the last part ("os.exec*").
    names: tuple[str, ...] = ()
    tests_only: bool = False  # the row applies to test_*.py files only


_BUILTIN_EXCEPTIONS = " ".join(
    name for name, value in vars(builtins).items() if isinstance(value, type) and issubclass(value, BaseException)
)

RULES: tuple[Rule, ...] = (
    # --- The allowlist: what LOW code may use ---------------------------------------------------------------
    Rule("pure", "LOW", "side-effect-free module", _names("""
        re json math cmath statistics fractions decimal numbers random secrets itertools heapq bisect collections
        collections.abc enum copy datetime textwrap difflib unicodedata html html.parser hashlib hmac binascii zlib
        struct array colorsys keyword fnmatch ipaddress urllib.parse graphlib csv queue""")),
    Rule("pure", "LOW", "side-effect-free builtin", _names(f"""
        builtins.abs builtins.all builtins.any builtins.ascii builtins.bin builtins.bool builtins.bytearray
        builtins.bytes builtins.callable builtins.chr builtins.classmethod builtins.complex builtins.dict
        builtins.divmod builtins.enumerate builtins.filter builtins.float builtins.format builtins.frozenset
        builtins.hash builtins.hex builtins.id builtins.int builtins.isinstance builtins.issubclass builtins.iter
        builtins.len builtins.list builtins.map builtins.max builtins.min builtins.next builtins.object builtins.oct
        builtins.ord builtins.pow builtins.print builtins.property builtins.range builtins.repr builtins.reversed
        builtins.round builtins.set builtins.slice builtins.sorted builtins.staticmethod builtins.str builtins.sum
        builtins.super builtins.tuple builtins.type builtins.zip builtins.aiter builtins.anext builtins.memoryview
        builtins.True builtins.False builtins.None builtins.Ellipsis builtins.NotImplemented
        {" ".join(f"builtins.{name}" for name in _BUILTIN_EXCEPTIONS.split())}""")),
    Rule("pure", "LOW", "side-effect-free function, class or constant", _names("""
        typing.Any typing.Optional typing.Union typing.List typing.Dict typing.Tuple typing.Set typing.FrozenSet
        typing.Iterable typing.Iterator typing.Sequence typing.Mapping typing.MutableMapping typing.MutableSequence
        typing.Callable typing.Literal typing.Annotated typing.TypeVar typing.Generic typing.NamedTuple
        typing.TypedDict typing.Protocol typing.cast typing.overload typing.Final typing.ClassVar
        typing.TYPE_CHECKING typing.NoReturn typing.Never typing.Self typing.Type typing.Counter typing.DefaultDict
        typing.Deque typing.Generator typing.AsyncIterator typing.AsyncIterable typing.AsyncGenerator
        typing.Awaitable typing.Coroutine typing.Hashable typing.Sized typing.Collection typing.Container
        typing.Reversible typing.TypeAlias typing.TypeGuard typing.ParamSpec typing.Concatenate typing.Required
        typing.NotRequired typing.Unpack typing.LiteralString typing.assert_never typing.final
        typing.runtime_checkable typing.SupportsInt typing.SupportsFloat typing.SupportsIndex typing.AnyStr
        typing.Pattern typing.Match typing_extensions.Annotated typing_extensions.Literal typing_extensions.TypedDict
        typing_extensions.Protocol typing_extensions.Self typing_extensions.NotRequired typing_extensions.Required
        os.path.join os.path.basename os.path.dirname os.path.split os.path.splitext os.path.normpath
        os.path.normcase os.path.isabs os.path.commonprefix os.path.commonpath os.path.sep os.path.altsep
        os.path.extsep os.path.pathsep os.path.curdir os.path.pardir os.sep os.altsep os.extsep os.pathsep
        os.linesep os.curdir os.pardir os.fspath os.fsencode os.fsdecode os.name
        operator.add operator.sub operator.mul operator.truediv operator.floordiv operator.mod operator.pow
        operator.neg operator.pos operator.abs operator.and_ operator.or_ operator.xor operator.not_
        operator.invert operator.inv operator.lshift operator.rshift operator.eq operator.ne operator.lt operator.le
        operator.gt operator.ge operator.contains operator.countOf operator.indexOf operator.getitem
        operator.itemgetter operator.is_ operator.is_not operator.truth operator.concat operator.index
        operator.length_hint operator.matmul
        functools.reduce functools.partial functools.partialmethod functools.lru_cache functools.cache
        functools.cached_property functools.wraps functools.total_ordering functools.cmp_to_key
        functools.singledispatch functools.singledispatchmethod
        string.ascii_letters string.ascii_lowercase string.ascii_uppercase string.digits string.hexdigits
        string.octdigits string.punctuation string.printable string.whitespace string.capwords string.Template
        dataclasses.dataclass dataclasses.field dataclasses.fields dataclasses.asdict dataclasses.astuple
        dataclasses.replace dataclasses.is_dataclass dataclasses.FrozenInstanceError dataclasses.InitVar
        dataclasses.KW_ONLY dataclasses.MISSING
        abc.ABC abc.ABCMeta abc.abstractmethod
        contextlib.contextmanager contextlib.asynccontextmanager contextlib.suppress contextlib.nullcontext
        contextlib.ExitStack contextlib.AsyncExitStack contextlib.closing contextlib.redirect_stdout
        contextlib.redirect_stderr
        warnings.warn warnings.catch_warnings warnings.simplefilter warnings.filterwarnings
        pathlib.PurePath pathlib.PurePosixPath pathlib.PureWindowsPath pathlib.Path pathlib.PosixPath
        io.StringIO io.BytesIO
        time.time time.time_ns time.monotonic time.monotonic_ns time.perf_counter time.perf_counter_ns
        time.process_time time.sleep time.strftime time.strptime time.gmtime time.localtime time.mktime
        time.asctime time.ctime time.struct_time time.timezone time.altzone time.daylight time.tzname
        calendar.monthrange calendar.isleap calendar.leapdays calendar.weekday calendar.timegm calendar.month_name
        calendar.month_abbr calendar.day_name calendar.day_abbr
        uuid.UUID uuid.uuid3 uuid.uuid4 uuid.uuid5 uuid.NAMESPACE_DNS uuid.NAMESPACE_URL uuid.NAMESPACE_OID
        uuid.NAMESPACE_X500
        base64.b64encode base64.b64decode base64.urlsafe_b64encode base64.urlsafe_b64decode
        base64.standard_b64encode base64.standard_b64decode base64.b32encode base64.b32decode base64.b32hexencode
        base64.b32hexdecode base64.b16encode base64.b16decode base64.b85encode base64.b85decode base64.a85encode
        base64.a85decode base64.encodebytes base64.decodebytes
        codecs.encode codecs.decode
        asyncio.sleep asyncio.gather asyncio.wait_for asyncio.wait asyncio.as_completed asyncio.create_task
        asyncio.run asyncio.timeout asyncio.shield asyncio.Queue asyncio.LifoQueue asyncio.PriorityQueue
        asyncio.QueueEmpty asyncio.QueueFull asyncio.Lock asyncio.Event asyncio.Semaphore asyncio.BoundedSemaphore
        asyncio.Condition asyncio.TimeoutError asyncio.CancelledError asyncio.TaskGroup asyncio.iscoroutine
        sys.maxsize sys.maxunicode sys.version_info sys.hexversion sys.float_info sys.int_info sys.byteorder
        ast.literal_eval types.SimpleNamespace types.MappingProxyType
        logging.getLogger logging.debug logging.info logging.warning logging.error logging.exception
        logging.critical logging.DEBUG logging.INFO logging.WARNING logging.ERROR logging.CRITICAL
        zoneinfo.ZoneInfo gzip.compress gzip.decompress bz2.compress bz2.decompress lzma.compress lzma.decompress
        xml.etree.ElementTree.fromstring xml.etree.ElementTree.tostring xml.etree.ElementTree.XML
        xml.etree.ElementTree.Element xml.etree.ElementTree.SubElement xml.etree.ElementTree.ParseError
        shlex.split shlex.quote shlex.join pprint.pformat pprint.pprint pprint.pp http.HTTPStatus""")),
    Rule("pure", "LOW", "the candidate's own modules", _names("tool")),
    Rule("pure", "LOW", "pytest helper allowed in test files", _names("""
        pytest.raises pytest.approx pytest.param pytest.fixture pytest.warns pytest.fail pytest.mark.parametrize"""),
         tests_only=True),
    # --- Capabilities --------------------------------------------------------------------------------------
    Rule("process", "HIGH", "starts or controls processes", _names("""
        subprocess _posixsubprocess os.system os.popen os.exec* os.spawn* os.fork os.forkpty os.posix_spawn*
        os.kill os.killpg os.wait* os.abort os._exit pty multiprocessing concurrent.futures.process
        concurrent.futures.ProcessPoolExecutor asyncio.subprocess asyncio.create_subprocess_exec
        asyncio.create_subprocess_shell signal pexpect sh plumbum platform webbrowser""")),
    Rule("network", "HIGH", "uses the network", _names("""
        socket _socket ssl select selectors socketserver http urllib.request urllib.robotparser urllib3 requests
        httpx aiohttp ftplib poplib imaplib nntplib smtplib telnetlib xmlrpc websocket websockets paramiko grpc dns
        pycurl asyncio.open_connection asyncio.start_server asyncio.open_unix_connection asyncio.start_unix_server""")),
    Rule("event-loop", "HIGH", "reaches the asyncio event loop (connections, servers, processes)", _names("asyncio")),
    Rule("environment", "HIGH", "reads or changes environment variables", _names("""
        os.environ os.environb os.getenv os.getenvb os.putenv os.unsetenv dotenv getpass""")),
    Rule("native-code", "HIGH", "loads native code or maps memory", _names("ctypes _ctypes cffi mmap")),
    Rule("dynamic-code", "HIGH", "runs dynamically built code", _names("""
        builtins.eval builtins.exec builtins.compile builtins.breakpoint builtins.help builtins.__build_class__
        builtins code codeop runpy pydoc timeit profile cProfile trace pdb bdb doctest types ast unittest
        typing.get_type_hints typing.ForwardRef typing_extensions.get_type_hints typing_extensions.ForwardRef""")),
    Rule("dynamic-import", "HIGH", "imports modules dynamically", _names("""
        builtins.__import__ importlib imp pkgutil zipimport""")),
    Rule("deserialization", "HIGH", "deserializes objects unsafely", _names("""
        pickle _pickle cPickle marshal shelve dill cloudpickle jsonpickle copyreg""")),
    Rule("introspection", "HIGH", "reaches interpreter internals", _names("""
        sys inspect gc builtins.globals builtins.locals builtins.vars traceback tracemalloc faulthandler weakref
        atexit site sysconfig""")),
    Rule("dynamic-attribute", "HIGH", "looks up attributes by a name built at run time", _names("""
        builtins.getattr builtins.setattr builtins.delattr operator.attrgetter operator.methodcaller
        string.Formatter functools.update_wrapper""")),
    Rule("files", "HIGH", "reads or writes files outside a temporary directory", _names("""
        builtins.open io os.open os.remove os.unlink os.rmdir os.removedirs os.makedirs os.mkdir os.chmod os.chown
        os.lchown os.truncate os.mkfifo os.mknod os.utime os.chroot os.chdir os.rename os.renames os.replace
        os.symlink os.link os.listdir os.scandir os.walk os.fwalk os.stat os.lstat os.readlink os.access
        os.getcwd os.read os.write os.path shutil glob fileinput linecache filecmp tarfile zipfile gzip bz2 lzma
        zoneinfo codecs.open tempfile.gettempdir tempfile.gettempdirb""")),
    Rule("temp-files", "MEDIUM", "makes, reads or writes files in a temporary directory", _names("tempfile")),
    Rule("threads", "MEDIUM", "starts threads", _names("threading _thread concurrent asyncio.to_thread")),
    Rule("os", "HIGH", "uses the operating-system interface (processes, files, users, limits)", _names("""
        os posix nt pwd grp resource""")),
    Rule("logging", "HIGH", "configures logging (handlers write files and sockets, dictConfig builds named "
         "objects)", _names("logging")),
    Rule("test-runner", "HIGH", "reaches the test runner's internals (plugins, hooks, imports by name)", _names("""
        pytest _pytest pluggy py pytest_asyncio xdist""")),
    Rule("interactive", "MEDIUM", "uses an interactive builtin", _names("""
        builtins.input builtins.dir builtins.exit builtins.quit builtins.copyright builtins.credits builtins.license""")),
    Rule("probe-attribute", "MEDIUM", "tests for attributes by a name built at run time", _names("builtins.hasattr")),
    # --- Rules without names: what the analyser checks on the syntax tree ----------------------------------
    Rule("dunder", "HIGH", "uses a special name that leads to interpreter internals"),
    Rule("internals", "HIGH", "reads frame, code, traceback or generator internals"),
    Rule("gateway", "HIGH", "calls a method that hands out the event loop or stack frames"),
    Rule("module-patch", "HIGH", "changes an attribute of a module (monkey-patching)"),
    Rule("unknown-module", "HIGH", "uses a module outside the allowlist (unknown capabilities)"),
    Rule("instruction", "HIGH", "holds text addressed to an AI model (prompt injection)"),
    Rule("hidden-text", "HIGH", "holds invisible or bidirectional control characters (code may read differently)"),
    Rule("pytest-eval", "HIGH", "gives pytest a string condition, which pytest evaluates as code"),
    Rule("pytest-plugin", "HIGH", "defines pytest_plugins or a pytest_* hook (loads code into the test runner)"),
    Rule("runner-fixture", "HIGH", "asks for a pytest fixture that reaches the runner, the environment or imports"),
    Rule("unlisted-name", "MEDIUM", "uses a name outside the allowlist of its module"),
    Rule("private-name", "MEDIUM", "uses a private name of a module"),
    Rule("module-value", "MEDIUM", "passes a module around as a value (the analyser cannot follow it)"),
    Rule("untyped-attribute", "MEDIUM", "uses an attribute the analyser cannot prove pure"),
    Rule("runtime-format", "MEDIUM", "formats with a template built at run time (format fields read attributes)"),
    Rule("runtime-class", "MEDIUM", "builds a class at run time (type with three arguments)"),
    Rule("unknown-fixture", "MEDIUM", "asks for a pytest fixture outside the allowlist (tmp_path, tmp_path_factory)"),
    Rule("star-import", "MEDIUM", "star import (the names it binds cannot be tracked)"),
)  # fmt: skip

RULES_BY_ID: dict[str, Rule] = {}
for _rule in RULES:
    RULES_BY_ID.setdefault(_rule.id, _rule)

# pytest fixtures a test may ask for (LOW), and the ones that reach the runner (HIGH): monkeypatch sets the
# environment and imports modules named in strings, request/pytestconfig reach pytest itself. Any other
# fixture (capsys, caplog, tmpdir...) is MEDIUM: harmless as far as known, but not on the allowlist.
PURE_FIXTURES = frozenset(_names("tmp_path tmp_path_factory"))
RUNNER_FIXTURES = frozenset(_names("""
    monkeypatch request pytestconfig record_property record_xml_attribute record_testsuite_property testdir
    pytester"""))

# Special names that lead nowhere dangerous (``super().__init__()``, ``type(x).__name__``); every other __x__
# attribute, name or string constant (docstrings aside) is HIGH ("dunder").
HARMLESS_DUNDERS = frozenset(_names("""
    __init__ __post_init__ __repr__ __str__ __eq__ __ne__ __lt__ __le__ __gt__ __ge__ __hash__ __len__ __iter__
    __next__ __contains__ __getitem__ __setitem__ __delitem__ __bool__ __enter__ __exit__ __aenter__ __aexit__
    __name__ __qualname__ __doc__ __module__ __class__ __main__ __all__ __version__ __slots__ __file__"""))

# Values of these types are what pure code handles; their public methods and attributes are the methods the
# analyser accepts on a value it cannot type (plus the names the candidate defines itself).
PURE_TYPES = _names("""
    builtins.str builtins.bytes builtins.bytearray builtins.list builtins.tuple builtins.dict builtins.set
    builtins.frozenset builtins.int builtins.float builtins.complex builtins.bool builtins.range builtins.slice
    builtins.memoryview builtins.BaseException re.Pattern re.Match datetime.date datetime.datetime datetime.time
    datetime.timedelta datetime.timezone decimal.Decimal decimal.Context fractions.Fraction collections.Counter
    collections.deque collections.OrderedDict collections.defaultdict collections.ChainMap io.StringIO io.BytesIO
    pathlib.PurePosixPath random.Random difflib.SequenceMatcher textwrap.TextWrapper string.Template
    json.JSONEncoder json.JSONDecoder html.parser.HTMLParser xml.etree.ElementTree.Element ipaddress.IPv4Address
    ipaddress.IPv6Address ipaddress.IPv4Network ipaddress.IPv6Network asyncio.Queue asyncio.Lock asyncio.Event
    asyncio.Semaphore asyncio.Condition enum.Enum uuid.UUID""")
PURE_METHODS_EXTRA = frozenset(_names("""
    send throw close asend athrow aclose update digest hexdigest copy digest_size block_size result done cancel
    cancelled exception add_done_callback debug info warning error critical log writerow writerows fieldnames
    line_num dialect value type match mktemp getbasetemp group _replace _asdict _fields _make"""))
# "internals" (HIGH) are the attributes of frames, code objects, tracebacks, generators, coroutines, cells and
# functions that no pure type has (computed in tools/risk_table.py): gi_frame f_globals f_builtins f_back
# tb_frame co_code cr_frame ag_frame mro...
# Method names that hand out the event loop or frames, whatever the receiver (they are not pure methods).
GATEWAY_METHODS = frozenset(_names("get_loop _get_loop get_stack print_stack get_coro get_event_loop get_running_loop"))

# ``tmp_path.write_text(...)``: the I/O methods of pathlib.Path (computed in tools/risk_table.py as the
# methods Path has and PurePath has not, e.g. open read_text write_text unlink mkdir rename exists stat).
# ``replace`` counts as a file method only when called like Path.replace(target), not str.replace(old, new).

# --- Text addressed to an AI model --------------------------------------------------------------------------
_PRIVILEGED = "approve|reject|rollback|self_heal_system|evolve_rag_capability|crawl_and_index_documentation|cancel_job"
_AI = r"(?:ai|a\.i\.|assistant|language model|llm|chat ?bot|agent|model|gpt|chatgpt|claude|copilot|gemini)"
INSTRUCTION_PATTERNS: tuple[tuple[str, str], ...] = (
    ((r"\b(?:ignore|disregard|forget|override|bypass)\b.{0,40}\b(?:previous|prior|above|earlier|preceding|all|any"
      r"|your|the system)\b.{0,40}\b(?:instructions?|prompts?|rules|directions|guidelines|messages|policies)\b"),
     "tells the reader to ignore its instructions"),
    (rf"\b(?:you are|you're|act as|pretend to be|behave as|roleplay as)\b.{{0,20}}\b{_AI}s?\b",
     "addresses an AI model"),
    ((r"\b(?:dear|hey|hi|hello|attention|note to|instructions? (?:for|to)|message (?:for|to))\s+(?:the\s+|all\s+"
      rf"|any\s+)?{_AI}s?\b"), "addresses an AI model"),
    (rf"\b(?:as an? {_AI}|{_AI}s?)\b,?\s+(?:you\s+)?(?:must|should|shall|need to|have to|are required to)\b",
     "gives instructions to AI models"),
    (r"\b(?:from now on|starting now)\b,?\s+you\b|\byou (?:must|will|should) now\b", "gives the reader new orders"),
    ((r"</?\s*(?:system|assistant|human|tools?|tool_call|tool_result|tool_use|function|function_calls?"
      r"|function_results?|instructions?|im_start|im_end|antml:[a-z_]+)\b[^>]{0,40}>"), "holds a chat role or tool tag"),
    (r"<\|[a-z_]{2,30}\|>|\[/?(?:inst|sys)\]|<<\s*/?sys\s*>>", "holds a model control token"),
    (r"(?:^|\n)[ \t#>*-]*(?:system|assistant|developer)(?: prompt| message)?\s*:", "holds a chat role marker"),
    (rf"\b(?:call|invoke|run|execute|trigger|use)\b\W{{0,3}}(?:the\s+)?\W?(?:{_PRIVILEGED})\b",
     "asks the reader to call a privileged tool"),
    (r"\bapprove\b.{0,40}\b(?:all|every|each|any)\b.{0,30}\b(?:pending|approvals?|requests?|changes?|tools?)\b",
     "asks the reader to approve changes"),
    (r"\b(?:new|updated|real|hidden|secret|true)\s+(?:instructions?|system prompt|orders)\b",
     "announces new instructions"),
    (r"\b(?:system prompt|jailbreak|developer mode|do anything now)\b", "talks about the model's prompt"),
    ((r"\b(?:do not|don't|never)\s+(?:tell|inform|show|mention|reveal|ask)\b.{0,30}\b(?:user|human|operator"
      r"|anyone|approver|reviewer)\b"), "asks to hide something from the person"),
    (r"<!--|<\s*(?:script|iframe|img|object|embed|svg|style|link|meta|form|input|a\s+href)\b",
     "holds HTML meant for the reader"),
    (r"!\[[^\]]*\]\(|\]\(\s*(?:javascript|data|vbscript):", "holds a markdown image or script link"),
)  # fmt: skip
_INSTRUCTIONS = tuple((re.compile(pattern, re.IGNORECASE), why) for pattern, why in INSTRUCTION_PATTERNS)


def normalized_text(text: str) -> str:
    """``text`` as a reader sees it: NFKC, invisible format characters removed, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text)
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    return re.sub(r"[ \t\r\f\v]+", " ", text)


def instruction_like(text: str) -> str | None:
    """Why ``text`` reads like instructions to an AI model (the first matching pattern), else None.

    The answer never quotes the text: reasons travel to approval lists that models read too.
    """
    if not text:
        return None
    normalized = normalized_text(text)
    return next((why for pattern, why in _INSTRUCTIONS if pattern.search(normalized)), None)


def hidden_characters(text: str) -> str | None:
    """A description of the invisible or bidirectional control characters in ``text``: every format character
    (bidi overrides, zero-width spaces, Unicode tags) but a leading BOM and the joiner inside emoji (U+200D)."""
    found = sorted({f"U+{ord(ch):04X}" for ch in text.removeprefix("\ufeff")
                    if unicodedata.category(ch) == "Cf" and ch != "\u200d"})
    return ", ".join(found[:5]) if found else None


def max_risk(*risks: str) -> Risk:
    """The highest of ``risks`` (LOW when none); an unknown value counts as HIGH."""
    if not risks:
        return "LOW"
    return max(risks, key=lambda risk: RISK_ORDER.get(risk, 2))  # type: ignore[return-value]
