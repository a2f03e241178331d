"""Redis store URLs, parsed without quoting any piece that may be a password.

One server: ``redis://``, ``rediss://`` (TLS), ``unix://``. A Redis Cluster:
``redis+cluster://[user:password@]host:port[,host:port...][?options]`` (``rediss+cluster://``
for TLS), the nodes being where the client first asks for the cluster's layout. Sentinel:
``redis+sentinel://[user:password@]host:port[,host:port...]/SERVICE[/DB][?options]``, the
hosts being sentinels and ``SERVICE`` the master's name they monitor; the user and password
are the master's (``sentinel_password_env`` names the sentinels' own, if they have one).
Imports no Redis client.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

from ..errors import ConfigurationError

SINGLE_SCHEMES = ("redis", "rediss", "unix")
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
SENTINEL_SCHEMES = ("redis+sentinel",)
SCHEMES = (*SINGLE_SCHEMES, *CLUSTER_SCHEMES, *SENTINEL_SCHEMES)
_TLS_SCHEMES = frozenset({"rediss", "rediss+cluster"})
DEFAULT_PORT = 6379
DEFAULT_SENTINEL_PORT = 26379
DEFAULT_PREFIX = "pat:"
DEFAULT_TIMEOUT = 0.5
DEFAULT_MAX_CONNECTIONS = 50
DEFAULT_RETRY_AFTER = 1.0
MAX_PREFIX_LENGTH = 64
#: At most this many hosts in one URL (cluster seeds or sentinels).
MAX_HOSTS = 16
#: Option -> (lowest, highest) for the numeric options.
_FLOAT_OPTIONS = {
    "timeout": (0.001, 60.0),
    "connect_timeout": (0.001, 60.0),
    "retry_after": (0.001, 300.0),
}
_INT_OPTIONS = {"max_connections": (1, 10_000), "db": (0, 1_000_000)}
_STR_OPTIONS = ("prefix", "password_env", "ssl_ca_certs", "sentinel_password_env")
OPTIONS = frozenset((*_FLOAT_OPTIONS, *_INT_OPTIONS, *_STR_OPTIONS))
_DIGITS = re.compile(r"[0-9]{1,10}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
#: A Sentinel service (master) name, as sentinel.conf allows it in practice.
_SERVICE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


@dataclass(frozen=True, slots=True)
class RedisOptions:
    """A parsed store URL. The user name and passwords never appear in ``repr``."""

    scheme: str
    host: str = "localhost"
    port: int = DEFAULT_PORT
    path: str | None = None  # unix:// socket path
    db: int = 0
    username: str | None = field(default=None, repr=False)  # often a password, mistyped
    password: str | None = field(default=None, repr=False)
    prefix: str = DEFAULT_PREFIX
    timeout: float = DEFAULT_TIMEOUT
    connect_timeout: float = DEFAULT_TIMEOUT
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    retry_after: float = DEFAULT_RETRY_AFTER
    ssl_ca_certs: str | None = None
    #: Every host of the URL, in order (cluster seed nodes, sentinels; one for the others).
    nodes: tuple[tuple[str, int], ...] = ()
    #: redis+sentinel: the monitored master's name.
    service: str | None = None
    sentinel_password: str | None = field(default=None, repr=False)

    @property
    def topology(self) -> str:
        """``"single"``, ``"cluster"`` or ``"sentinel"``."""
        if self.scheme in CLUSTER_SCHEMES:
            return "cluster"
        return "sentinel" if self.scheme in SENTINEL_SCHEMES else "single"

    @property
    def tls(self) -> bool:
        return self.scheme in _TLS_SCHEMES

    @property
    def address(self) -> str:
        """Where the server is, without credentials: ``host:port/db``, ``unix:path/db``,
        ``host:port,host:port`` (cluster) or ``host:port,.../service/db`` (sentinel)."""
        if self.path is not None:
            return f"unix:{self.path}/{self.db}"
        hosts = ",".join(_hostport(host, port) for host, port in self.nodes or [self.node])
        if self.topology == "cluster":
            return hosts
        if self.topology == "sentinel":
            return f"{hosts}/{self.service}/{self.db}"
        return f"{hosts}/{self.db}"

    @property
    def node(self) -> tuple[str, int]:
        return self.host, self.port

    def pool_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for a redis-py (sync or asyncio) ``BlockingConnectionPool``."""
        kwargs = self.connection_kwargs()
        kwargs["db"] = self.db
        kwargs["max_connections"] = self.max_connections
        kwargs["timeout"] = self.timeout  # wait for a free pooled connection at most this long
        if self.path is not None:
            kwargs["path"] = self.path
        else:
            kwargs["host"] = self.host
            kwargs["port"] = self.port
        return kwargs

    def connection_kwargs(self) -> dict[str, Any]:
        """Credentials, timeouts and TLS: what every connection to a data node gets."""
        kwargs: dict[str, Any] = {
            "username": self.username,
            "password": self.password,
            "socket_timeout": self.timeout,
            "socket_connect_timeout": self.connect_timeout,
        }
        if self.tls:
            # Explicit: redis-py 5 checks the certificate but not the host name by default.
            kwargs["ssl_cert_reqs"] = "required"
            kwargs["ssl_check_hostname"] = True
        if self.ssl_ca_certs is not None:
            kwargs["ssl_ca_certs"] = self.ssl_ca_certs
        return kwargs


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_redis_url(url: str, *, setting: str = "replay_store") -> RedisOptions:
    """Validate a Redis store URL; every problem names ``setting`` and the option.

    No message quotes the URL or any piece of it, except known option names and the
    ``password_env`` variable name: a password holding an unencoded ``?``, ``#``, ``/`` or
    ``@`` would otherwise land (in part) in the query, fragment, path, host or port, and be
    echoed from there. Such a URL is refused with a message saying what to percent-encode.
    """

    def fail(message: str) -> ConfigurationError:
        return ConfigurationError(setting, message)

    scheme, userinfo, hostport, path, query_text = _split_redis_url(url, fail)
    query = _query(scheme, query_text, fail)
    opts: dict[str, Any] = {}
    for name, (low, high) in _FLOAT_OPTIONS.items():
        if name in query:
            try:
                seconds = float(query[name])
            except ValueError:
                seconds = math.nan
            if not low <= seconds <= high:
                raise fail(f"option {name!r} must be a number of seconds from {low} to {high}")
            opts[name] = seconds
    for name, (ilow, ihigh) in _INT_OPTIONS.items():
        if name in query:
            text = query[name]
            if not _DIGITS.fullmatch(text) or not ilow <= int(text) <= ihigh:
                raise fail(f"option {name!r} must be an integer from {ilow} to {ihigh}")
            opts[name] = int(text)
    if "timeout" in opts and "connect_timeout" not in opts:
        opts["connect_timeout"] = opts["timeout"]
    if "prefix" in query:
        prefix = query["prefix"]
        if len(prefix.encode()) > MAX_PREFIX_LENGTH:
            raise fail(f"option 'prefix' is longer than {MAX_PREFIX_LENGTH} bytes")
        opts["prefix"] = prefix
    if "ssl_ca_certs" in query:
        if scheme not in _TLS_SCHEMES:
            raise fail("option 'ssl_ca_certs' needs a rediss:// or rediss+cluster:// URL")
        opts["ssl_ca_certs"] = query["ssl_ca_certs"]
    if scheme == "unix":
        if not path:
            raise fail("a unix:// URL needs the socket path, e.g. unix:///run/redis.sock")
        if "," in hostport:
            raise fail("a unix:// URL names one socket")
        _host_and_port(hostport, fail)  # nothing to use, but a malformed one is refused
        opts["path"] = unquote(path)
    else:
        _hosts_and_path(scheme, hostport, path, "db" in query, opts, fail)

    password: str | None = None
    if userinfo is not None:
        username, colon, password_text = userinfo.partition(":")
        if username:
            opts["username"] = unquote(username)
        password = unquote(password_text) if colon else None
    if "password_env" in query:
        if password is not None:
            raise fail("give the password in the URL or as password_env, not both")
        password = _from_env(query, "password_env", fail)
    opts["password"] = password
    if "sentinel_password_env" in query:
        opts["sentinel_password"] = _from_env(query, "sentinel_password_env", fail)
    return RedisOptions(scheme=scheme, **opts)


def _query(
    scheme: str, text: str, fail: Callable[[str], ConfigurationError]
) -> dict[str, str]:
    query: dict[str, str] = {}
    for position, (name, value) in enumerate(parse_qsl(text, keep_blank_values=True), 1):
        if name not in OPTIONS:  # not quoted: it may be a piece of a password
            close = difflib.get_close_matches(name, OPTIONS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise fail(
                f"option {position} of the {scheme}:// URL is unknown{hint}; "
                f"known: {sorted(OPTIONS)}"
            )
        if name in query:
            raise fail(f"option {name!r} is given more than once")
        query[name] = value
    if "sentinel_password_env" in query and scheme not in SENTINEL_SCHEMES:
        raise fail("option 'sentinel_password_env' needs a redis+sentinel:// URL")
    if "db" in query and scheme in CLUSTER_SCHEMES:
        raise fail("a Redis Cluster has database 0 only: no option 'db'")
    return query


def _from_env(
    query: dict[str, str], option: str, fail: Callable[[str], ConfigurationError]
) -> str:
    var = query[option]
    if not _ENV_NAME.fullmatch(var):
        raise fail(f"option {option!r} must name an environment variable")
    value = os.environ.get(var)
    if value is None:
        raise fail(f"environment variable {var!r} named by {option} is not set")
    return value


def _hosts_and_path(
    scheme: str,
    hostport: str,
    path: str,
    db_option: bool,
    opts: dict[str, Any],
    fail: Callable[[str], ConfigurationError],
) -> None:
    """Fill in ``host``, ``port``, ``nodes`` and ``db`` (and ``service``) from the URL."""
    sentinel = scheme in SENTINEL_SCHEMES
    default_port = DEFAULT_SENTINEL_PORT if sentinel else DEFAULT_PORT
    pieces = hostport.split(",")
    if len(pieces) > 1 and scheme in SINGLE_SCHEMES:
        raise fail(
            "a redis:// URL names one host: several are redis+cluster:// (cluster nodes) or "
            "redis+sentinel:// (sentinels)"
        )
    if len(pieces) > MAX_HOSTS:
        raise fail(f"at most {MAX_HOSTS} hosts")
    nodes: list[tuple[str, int]] = []
    for piece in pieces:
        host, port = _host_and_port(piece, fail)
        if not host and len(pieces) > 1:
            raise fail("an empty host in the list of hosts")
        nodes.append((host or "localhost", port if port is not None else default_port))
    opts["host"], opts["port"] = nodes[0]
    opts["nodes"] = tuple(nodes)
    segments = path.strip("/").split("/") if path.strip("/") else []
    if sentinel:
        if not segments or not _SERVICE.fullmatch(unquote(segments[0])):
            raise fail(
                "a redis+sentinel:// URL names the master after the hosts: "
                "redis+sentinel://HOST:PORT,.../SERVICE[/DB]"
            )
        opts["service"] = unquote(segments.pop(0))
    if len(segments) > 1:
        raise fail("the path must be the database number, e.g. /0")
    if segments:
        if db_option:
            raise fail("give the database number in the path or as db=, not both")
        if not _DIGITS.fullmatch(segments[0]):
            raise fail("the path must be the database number, e.g. /0")
        opts["db"] = int(segments[0])
        if scheme in CLUSTER_SCHEMES and opts["db"] != 0:
            raise fail("a Redis Cluster has database 0 only")


def _split_redis_url(
    url: str, fail: Callable[[str], ConfigurationError]
) -> tuple[str, str | None, str, str, str]:
    """(scheme, user info or None, host[:port][,...], path, query) of a Redis URL.

    Split here rather than by ``urlsplit``: that ends the user info at the first ``/``, ``?``
    or ``#``, so an unencoded one in a password moves the rest of it into the path, query or
    fragment and the text before it into the host and port (``redis://:1234#pw@h`` is port
    1234 on localhost), or raises with a piece of it (``[`` and ``]``). A password can hold
    any of them only percent-encoded; then the split is unambiguous.
    """
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in SCHEMES:
        raise fail("a Redis store URL starts with its scheme and '://', e.g. redis://HOST:PORT/DB")
    if "#" in rest:
        raise fail(
            "a Redis store URL has no fragment: a '#' in the user name or password must be "
            "percent-encoded as %23"
        )
    end = next((i for i, char in enumerate(rest) if char in "/?"), len(rest))
    authority, tail = rest[:end], rest[end:]
    if "@" in tail:
        raise fail(
            "an '@' follows the host: the user name and password must be percent-encoded "
            "('/' as %2F, '?' as %3F, '#' as %23, '@' as %40), and so must any other '@' "
            "(in a socket path or an option)"
        )
    userinfo, at, hostport = authority.rpartition("@")
    path, _, query = tail.partition("?")
    return scheme, userinfo if at else None, hostport, path, query


def _host_and_port(
    hostport: str, fail: Callable[[str], ConfigurationError]
) -> tuple[str, int | None]:
    """The host (unquoted, lower case; "" when absent) and port (None when absent)."""
    if hostport.startswith("["):
        host, bracket, after = hostport[1:].partition("]")
        if not bracket or (after and not after.startswith(":")):
            raise fail("an IPv6 host is written in brackets, e.g. redis://[::1]:6379/0")
        try:
            ipaddress.IPv6Address(unquote(host))
        except ValueError:
            raise fail("the host in brackets must be an IPv6 address") from None
        port_text = after[1:] if after else ""
    else:
        host, _, port_text = hostport.partition(":")
        if "[" in host or "]" in host:
            raise fail("an IPv6 host is written in brackets, e.g. redis://[::1]:6379/0")
    port: int | None = None
    if port_text:
        if not _DIGITS.fullmatch(port_text) or int(port_text) > 65535:
            raise fail("the port must be a number from 0 to 65535")
        port = int(port_text)
    return unquote(host).lower(), port


__all__ = [
    "CLUSTER_SCHEMES",
    "OPTIONS",
    "SCHEMES",
    "SENTINEL_SCHEMES",
    "RedisOptions",
    "parse_redis_url",
]
