"""The SSRF guard: which URLs evorag may fetch. No network: DNS answers come from a patched resolver."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from evorag.tools.url_guard import check_address, check_url, is_ip_allowed, parse_ip_host

from evorag.errors import BlockedURLError, UserError

ALLOWED = "allowed"

# (url, expected): "allowed", or a fragment the refusal message must contain.
CASES = [
    ("https://docs.python.org/3/library/json.html", ALLOWED),
    ("http://example.com/", ALLOWED),
    ("https://example.com:8443/docs/", ALLOWED),
    ("http://8.8.8.8/", ALLOWED),
    ("http://[2606:4700:4700::1111]/", ALLOWED),
    ("http://1.1.1.1:8080/path?q=1", ALLOWED),
    ("http://127.0.0.1/", "loopback"),
    ("http://127.8.9.10:8000/", "loopback"),
    ("http://localhost/", "localhost"),
    ("http://LOCALHOST./admin", "localhost"),
    ("http://api.localhost/", "localhost"),
    ("http://2130706433/", "loopback"),  # decimal
    ("http://0x7f000001/", "loopback"),  # hex
    ("http://0x7f.0.0.1/", "loopback"),  # hex octet
    ("http://0177.0.0.1/", "loopback"),  # octal
    ("http://127.1/", "loopback"),  # short form
    ("http://127.0.1/", "loopback"),  # short form
    ("http://0/", "unspecified"),
    ("http://0.0.0.0:8080/", "unspecified"),
    ("http://[::]/", "unspecified"),
    ("http://[::1]/", "loopback"),
    ("http://[::ffff:127.0.0.1]/", "loopback"),  # IPv4-mapped IPv6
    ("http://[::ffff:7f00:1]/", "loopback"),
    ("http://[::ffff:10.0.0.1]/", "private"),
    ("http://[2002:a00:1::]/", "private"),  # 6to4 around 10.0.0.1
    ("http://[64:ff9b::a9fe:a9fe]/", "link-local"),  # NAT64 around 169.254.169.254
    ("http://10.0.0.1/", "private"),
    ("http://10.1/", "private"),
    ("http://172.16.5.4/", "private"),
    ("http://172.31.255.255/", "private"),
    ("http://192.168.1.1/", "private"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://[fe80::1]/", "link-local"),
    ("http://[fe80::1%25eth0]/", "link-local"),
    ("http://100.64.0.1/", "CGNAT"),
    ("http://100.127.255.254/", "CGNAT"),
    ("http://[fc00::1]/", "private"),
    ("http://[fd12:3456::1]/", "private"),
    ("http://224.0.0.251/", "multicast"),
    ("http://[ff02::1]/", "multicast"),
    ("http://240.0.0.1/", "address"),  # reserved
    ("http://255.255.255.255/", "address"),
    ("http://example.com@127.0.0.1/", "credentials"),  # userinfo trick
    ("http://user:pass@example.com/", "credentials"),
    ("file:///etc/passwd", "only http and https"),
    ("ftp://ftp.example.com/pub/", "only http and https"),
    ("javascript:alert(1)", "only http and https"),
    ("gopher://127.0.0.1:70/_GET", "only http and https"),
    ("data:text/html,<h1>hi</h1>", "only http and https"),
]


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 30
    assert sum(expected == ALLOWED for _, expected in CASES) >= 5


@pytest.mark.parametrize(("url", "expected"), CASES)
def test_guard_table(url: str, expected: str) -> None:
    if expected == ALLOWED:
        assert check_url(url, resolve=False).startswith(url.split(":", 1)[0])
        return
    with pytest.raises(BlockedURLError) as caught:
        check_url(url, resolve=False)
    message = str(caught.value)
    assert expected.lower() in message.lower()
    assert "\n" not in message


def test_refusal_message_names_the_url_and_the_way_out() -> None:
    with pytest.raises(BlockedURLError) as caught:
        check_url("http://127.0.0.1/")
    assert str(caught.value) == (
        "refusing http://127.0.0.1/: loopback address 127.0.0.1 "
        "(pass --allow-private or set EVORAG_ALLOW_PRIVATE=true to allow)"
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/",
        "http://localhost/",
        "http://10.0.0.1/",
        "http://[::1]/",
        "http://2130706433/",
    ],
)
def test_allow_private_allows_any_http_address(url: str) -> None:
    assert check_url(url, allow_private=True).startswith("http://")


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://10.0.0.1/", "gopher://localhost/"])
def test_allow_private_still_refuses_other_schemes(url: str) -> None:
    with pytest.raises(BlockedURLError):
        check_url(url, allow_private=True)


@pytest.mark.parametrize(
    "url",
    [
        "",
        "   ",
        "not a url",
        "example.com/docs",
        "http:///path",
        "http://[::1/",
        "http://host:99999/",
        "http://exa mple.com/",
        "http://evil.com\\@127.0.0.1/",
    ],
)
def test_malformed_urls_are_user_errors_not_blocks(url: str) -> None:
    with pytest.raises(UserError) as caught:
        check_url(url)
    assert not isinstance(caught.value, BlockedURLError)


def test_normalization() -> None:
    assert (
        check_url("HTTPS://Docs.Example.COM:443/a/b?x=1#frag", resolve=False)
        == "https://docs.example.com/a/b?x=1"
    )
    assert check_url("http://example.com", resolve=False) == "http://example.com/"
    assert check_url("http://example.com:8080/", resolve=False) == "http://example.com:8080/"
    assert check_url("http://0x7f000001:9000/x", allow_private=True) == "http://127.0.0.1:9000/x"
    assert check_url("http://münchen.example/", resolve=False) == "http://xn--mnchen-3ya.example/"


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Replace the system resolver with a table: no network in these tests."""
    table: dict[str, list[str]] = {}

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        results = []
        for address in table[host]:
            if ipaddress.ip_address(address).version == 6:
                results.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0)))
            else:
                results.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)))
        return results

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return table


def test_hostname_resolving_to_public_addresses_is_allowed(fake_dns: dict[str, list[str]]) -> None:
    fake_dns["docs.example.test"] = ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]
    assert check_url("https://docs.example.test/guide/") == "https://docs.example.test/guide/"


def test_hostname_with_any_private_answer_is_refused(fake_dns: dict[str, list[str]]) -> None:
    # A rebinding setup answers with a public address first and an internal one after it.
    fake_dns["rebind.example.test"] = ["93.184.216.34", "10.0.0.7"]
    with pytest.raises(
        BlockedURLError, match=r"rebind\.example\.test resolves to private address 10\.0\.0\.7"
    ):
        check_url("http://rebind.example.test/")


def test_hostname_resolving_to_loopback_is_refused(fake_dns: dict[str, list[str]]) -> None:
    fake_dns["intranet.example.test"] = ["127.0.0.1"]
    with pytest.raises(BlockedURLError, match="loopback"):
        check_url("http://intranet.example.test/")
    fake_dns["mapped.example.test"] = ["::ffff:192.168.0.10"]
    with pytest.raises(BlockedURLError, match="private"):
        check_url("http://mapped.example.test/")


def test_resolve_false_skips_dns(fake_dns: dict[str, list[str]]) -> None:
    fake_dns["intranet.example.test"] = ["127.0.0.1"]
    assert check_url("http://intranet.example.test/", resolve=False) == "http://intranet.example.test/"


def test_unresolvable_names_are_left_to_the_fetch(fake_dns: dict[str, list[str]]) -> None:
    assert check_url("http://nowhere.example.test/") == "http://nowhere.example.test/"


@pytest.mark.parametrize(
    ("ip", "allowed"),
    [
        ("8.8.8.8", True),
        ("2606:4700::1", True),
        ("127.0.0.1", False),
        ("10.2.3.4", False),
        ("::ffff:127.0.0.1", False),
        ("100.64.1.1", False),
        ("fe80::1%eth0", False),
        ("not-an-ip", False),
    ],
)
def test_is_ip_allowed(ip: str, allowed: bool) -> None:
    assert is_ip_allowed(ip, allow_private=False) is allowed
    assert is_ip_allowed(ip, allow_private=True) is True


def test_parse_ip_host_reads_inet_aton_spellings() -> None:
    for spelling in ("127.0.0.1", "2130706433", "0x7f000001", "0177.0.0.1", "127.1", "0x7f.1", "127.0.0.1."):
        assert parse_ip_host(spelling) == ipaddress.IPv4Address("127.0.0.1"), spelling
    assert parse_ip_host("[::1]") == ipaddress.IPv6Address("::1")
    assert parse_ip_host("example.com") is None
    assert parse_ip_host("cafe.be") is None  # all hex letters, still a name


def test_check_address_is_the_connection_time_check() -> None:
    check_address("docs.example.test", "93.184.216.34")
    check_address("docs.example.test", "127.0.0.1", allow_private=True)
    with pytest.raises(BlockedURLError, match="resolves to loopback address 127.0.0.1"):
        check_address("docs.example.test", "127.0.0.1")


# Host names no resolver accepts: each is a UserError from the guard, before any lookup (the IDNA codec
# used to raise UnicodeError from inside getaddrinfo for a 64-character label).
INVALID_HOST_NAMES = [
    "a" * 64 + ".com",  # a label over 63 characters
    ("a" * 60 + ".") * 5 + "com",  # a name over 253 characters
    "-leading.example.com",
    "trailing-.example.com",
    "a..b.example.com",  # an empty label
    "ex%61mple.com",
    "ü" * 70 + ".de",  # over 63 once IDNA-encoded
    "*.example.com",
]


@pytest.mark.parametrize("host", INVALID_HOST_NAMES)
@pytest.mark.parametrize("allow_private", [False, True])
def test_invalid_host_names_are_user_errors(host: str, allow_private: bool, monkeypatch) -> None:
    lookups: list[str] = []
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *args, **kwargs: lookups.append(host) or [])
    with pytest.raises(UserError, match="host name") as caught:
        check_url(f"http://{host}/docs", allow_private=allow_private)
    assert not isinstance(caught.value, BlockedURLError)
    assert lookups == []  # refused before any lookup


@pytest.mark.parametrize("host", ["a" * 63 + ".com", "my_host.example", "xn--bcher-kva.de", "bücher.de", "a.b.c.d.e"])
def test_valid_host_names_still_pass(host: str) -> None:
    assert check_url(f"http://{host}/", resolve=False).startswith("http://")


def test_a_64_character_label_in_crawl_is_one_line_and_exit_code_2(tmp_path) -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("EVORAG_") or k == "EVORAG_LLM_PROVIDER"}
    env.update(EVORAG_HOME=str(tmp_path / "home"), EVORAG_CONFIG=str(tmp_path / "none.toml"))
    for url in ("http://" + "a" * 64 + ".com/", "https://" + "ü" * 70 + ".de/"):
        result = subprocess.run([sys.executable, "-m", "evorag.cli", "crawl", url], env=env, capture_output=True,
                                text=True, timeout=120, check=False)
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        lines = result.stderr.strip().splitlines()
        assert lines[0].startswith("error: ") and "host name" in lines[0] and len(lines) <= 2, result.stderr
