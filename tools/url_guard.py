"""SSRF guard: decide whether evorag may fetch a URL.

By default only public http(s) addresses are allowed. Loopback, private, link-local, shared (CGNAT),
unique-local, multicast, reserved and unspecified addresses are refused, whether they are written as
an IP literal (in any spelling ``inet_aton`` accepts: ``2130706433``, ``0x7f000001``, ``0177.0.0.1``,
``127.1``), embedded in IPv6 (``::ffff:127.0.0.1``, 6to4, NAT64) or reached through DNS. A hostname is
refused when ANY of its DNS answers is refused, so a name answering with one public and one private
address cannot slip through. ``allow_private=True`` (``--allow-private``, ``EVORAG_ALLOW_PRIVATE``)
turns the address checks off for tests and intranet documentation.

Checking a name before connecting still leaves a window for DNS rebinding (the answer may change
between the check and the connection), so the crawler also checks the address it actually connects
to (see ``resolve_allowed``).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import SplitResult, urlsplit, urlunsplit

from evorag.errors import BlockedURLError, UserError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOWED_SCHEMES = frozenset({"http", "https"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_ALLOW_HINT = "pass --allow-private or set EVORAG_ALLOW_PRIVATE=true to allow"

# Anything inet_aton could read as an IPv4 address: digits, hex digits, 'x' and dots.
_IPV4_LIKE = re.compile(r"^[0-9a-fA-FxX.]+$")
# Characters that different URL parsers disagree about; refusing them closes parser-confusion tricks.
_AMBIGUOUS_CHARS = re.compile(r"[\x00-\x20\x7f\\]")

# One DNS label (LDH, plus '_' which real hosts use): 1-63 characters, no '-' at either end.
_HOST_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_SHARED_ADDRESS_SPACE = ipaddress.IPv4Network("100.64.0.0/10")


def ip_refusal_reason(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public address (``"loopback address"``, ...), or None when it is public."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            reason = ip_refusal_reason(embedded)
            return f"{reason} {embedded} embedded in IPv6" if reason else None
        if ip.is_site_local:
            return "site-local address"
    if ip.is_unspecified:
        return "unspecified address"
    if ip.is_loopback:
        return "loopback address"
    if ip.is_link_local:
        return "link-local address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED_ADDRESS_SPACE:
        return "shared (CGNAT) address"
    if ip.is_multicast:
        return "multicast address"
    if ip.is_private:
        # Covers 10/8, 172.16/12, 192.168/16, fc00::/7 and the documentation/benchmark ranges.
        return "private address"
    if ip.is_reserved or not ip.is_global:
        return "reserved address"
    return None


def is_ip_allowed(ip: str | IPAddress, allow_private: bool = False) -> bool:
    """True when evorag may connect to ``ip``. A string that is not an IP address is not allowed."""
    if allow_private:
        return True
    if isinstance(ip, str):
        try:
            ip = ipaddress.ip_address(ip.split("%", 1)[0])
        except ValueError:
            return False
    return ip_refusal_reason(ip) is None


def parse_ip_host(host: str) -> IPAddress | None:
    """The IP address a URL host denotes, reading IPv4 the way ``inet_aton`` (and browsers) do.

    Returns None for a hostname. ``127.1``, ``2130706433``, ``0x7f.0.0.1`` and ``0177.0.0.1`` all give
    ``127.0.0.1``.
    """
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            return None
    candidate = host.removesuffix(".")
    if candidate and _IPV4_LIKE.match(candidate):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(candidate))
        except OSError:
            return None
    return None


def check_url(url: str, *, allow_private: bool = False, resolve: bool = True) -> str:
    """Return ``url`` normalized (lower-case scheme and host, no default port, no fragment) if allowed.

    Raises:
        UserError: ``url`` is not a usable URL (no scheme or host, bad port, spaces or backslashes).
        BlockedURLError: the URL is refused: a scheme other than http(s), credentials in the URL, or
            (unless ``allow_private``) a host that is or resolves to a non-public address. With
            ``resolve=False`` hostnames are not looked up (the connection-time check covers them).
    """
    parts = _split(url)
    host = parts.hostname or ""
    if allow_private:
        return _normalized(parts)
    if parts.username is not None or parts.password is not None:
        raise BlockedURLError(
            f"refusing {url}: credentials (user@) in the URL are not allowed",
            hint="remove the user:password@ part",
        )
    ip = parse_ip_host(host)
    if ip is not None:
        reason = ip_refusal_reason(ip)
        if reason:
            raise BlockedURLError(f"refusing {url}: {reason} {ip}", hint=_ALLOW_HINT)
    else:
        bare = host.rstrip(".")
        if bare == "localhost" or bare.endswith(".localhost"):
            raise BlockedURLError(f"refusing {url}: localhost is a loopback name", hint=_ALLOW_HINT)
        if resolve:
            port = parts.port or _DEFAULT_PORTS[parts.scheme.lower()]
            for address in _resolve(host, port, url):
                reason = ip_refusal_reason(address)
                if reason:
                    raise BlockedURLError(
                        f"refusing {url}: {host} resolves to {reason} {address}", hint=_ALLOW_HINT
                    )
    return _normalized(parts, ip)


def check_address(host: str, address: str, *, allow_private: bool = False) -> None:
    """Refuse connecting to ``address``, the DNS answer for ``host`` about to be used for a connection.

    Raises:
        BlockedURLError: ``address`` is not public (and ``allow_private`` is off).
    """
    if allow_private:
        return
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        raise BlockedURLError(f"refusing {host}: it resolves to a non-IP address {address!r}") from None
    reason = ip_refusal_reason(ip)
    if reason:
        what = "is" if parse_ip_host(host) is not None else "resolves to"
        raise BlockedURLError(f"refusing {host}: it {what} {reason} {ip}", hint=_ALLOW_HINT)


def _split(url: str) -> SplitResult:
    if not isinstance(url, str) or not url.strip():
        raise UserError("empty URL", hint="give an http:// or https:// address")
    if _AMBIGUOUS_CHARS.search(url):
        raise UserError(
            f"not a valid URL: {url!r} contains spaces, control characters or backslashes",
            hint="percent-encode them",
        )
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise UserError(f"not a valid URL: {url!r} ({exc})") from None
    scheme = parts.scheme.lower()
    if not scheme:
        raise UserError(f"not a valid URL: {url!r} has no scheme", hint="start it with https://")
    if scheme not in ALLOWED_SCHEMES:
        raise BlockedURLError(
            f"refusing {url}: only http and https URLs can be crawled, not {scheme}:",
            hint="give an http:// or https:// address",
        )
    if not parts.hostname:
        raise UserError(f"not a valid URL: {url!r} has no host", hint="write it as https://host/path")
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        raise UserError(f"not a valid URL: {url!r} has an invalid port") from None
    if "[" in parts.netloc and parse_ip_host(parts.hostname) is None:
        raise UserError(f"not a valid URL: {url!r} has an invalid IPv6 address")
    if parse_ip_host(parts.hostname) is None:
        _check_host_name(parts.hostname, url)
    return parts


def _check_host_name(host: str, url: str) -> None:
    """Refuse a host that is no DNS name: each label 1-63 letters, digits, '-' or '_' (after IDNA), 253 in all.

    The resolver would otherwise fail on it with an exception of its own (a 64-character label is a
    UnicodeError from the IDNA codec), far from the user's input.
    """
    name = _idna(host).removesuffix(".")
    labels = name.split(".")
    if len(name) > 253 or not all(_HOST_LABEL.match(label) for label in labels):
        bad = next((label for label in labels if not _HOST_LABEL.match(label)), name)
        shown = bad if len(bad) <= 70 else bad[:67] + "..."
        raise UserError(
            f"not a valid URL: {url[:200]!r} has an invalid host name ({shown!r})",
            hint="a host name is dot-separated labels of 1-63 letters, digits or '-', 253 characters at most",
        )


def _normalized(parts: SplitResult, ip: IPAddress | None = None) -> str:
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    if ip is None:
        ip = parse_ip_host(host)
    if ip is not None:
        host = f"[{ip}]" if ip.version == 6 else str(ip)
    else:
        host = _idna(host)
    netloc = host
    if parts.port is not None and parts.port != _DEFAULT_PORTS[scheme]:
        netloc = f"{host}:{parts.port}"
    if parts.username is not None:
        userinfo = parts.username + (f":{parts.password}" if parts.password is not None else "")
        netloc = f"{userinfo}@{netloc}"
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))


def _idna(host: str) -> str:
    host = host.lower()
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        shown = host if len(host) <= 80 else host[:77] + "..."
        raise UserError(f"not a valid host name: {shown!r}",
                        hint="a host name is dot-separated labels of 1-63 characters") from None


def _resolve(host: str, port: int, url: str) -> list[IPAddress]:
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        # Unresolvable names are not a guard matter: the fetch reports "host not found".
        del exc
        return []
    except UnicodeError:  # the resolver's IDNA step refused the name
        raise UserError(f"not a valid URL: {url[:200]!r} has an invalid host name") from None
    addresses = []
    for *_, sockaddr in answers:
        try:
            addresses.append(ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0]))
        except ValueError:
            raise BlockedURLError(f"refusing {url}: {host} resolves to a non-IP address") from None
    return addresses


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address carried inside an IPv6 one (mapped, 6to4, NAT64, IPv4-compatible), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64 or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None
