"""Readiness checks of the backing services that are configured (Redis, OpenSearch, MongoDB).

Each check is a plain, blocking network probe with a timeout and needs no client library:
Redis gets AUTH (when the URL has a password) and PING over RESP; through Sentinel
(``redis+sentinel://`` or ``rediss+sentinel://``) the Sentinels are asked in turn for the
master's address, and the master must answer ROLE with ``master`` before PING. OpenSearch gets
``GET /_cluster/health`` and must be green or yellow, MongoDB gets a ``ping`` through pymongo
when it is installed and otherwise a TCP connection to any host of the seed list. Errors
name the host and port, never the URL, so that no password reaches a response or a log.
"""

import asyncio
import base64
import http.client
import json
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

from .settings import Settings


class CheckFailed(Exception):
    """A dependency answered wrongly or not at all; the message is safe to show."""


def _tls_context(ca_file: str | None) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_file)


def _redis_command(*words: str) -> bytes:
    parts = [f"*{len(words)}\r\n".encode()]
    for word in words:
        data = word.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


SENTINEL_SCHEMES = {"redis+sentinel": False, "rediss+sentinel": True}
SENTINEL_PORT = 26379
_MAX_BULK = 65536
_MAX_ITEMS = 1024


class Credentials(NamedTuple):
    """What AUTH sends: no password, no AUTH; no username, the default user."""

    username: str | None = None
    password: str | None = None


NO_CREDENTIALS = Credentials()


class SentinelURL(NamedTuple):
    tls: bool
    sentinels: list[tuple[str, int]]
    master_name: str
    credentials: Credentials


class _ErrorReply(str):
    """A RESP error reply (``-ERR ...``), kept apart from simple strings."""


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _read_reply(reader, where: str, depth: int = 0):
    """One RESP2 reply: str, int, None (null), list, or _ErrorReply; anything else fails the check."""
    line = reader.readline(_MAX_BULK)
    if not line:
        raise CheckFailed(f"{where} closed the connection")
    kind, rest = line[:1], line[1:].rstrip(b"\r\n")
    try:
        if kind == b"+":
            return rest.decode(errors="replace")
        if kind == b"-":
            return _ErrorReply(rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$" and -1 <= int(rest) <= _MAX_BULK:
            size = int(rest)
            if size < 0:
                return None
            data = reader.read(size + 2)
            if len(data) == size + 2 and data.endswith(b"\r\n"):
                return data[:-2].decode(errors="replace")
        if kind == b"*" and -1 <= int(rest) <= _MAX_ITEMS and depth < 4:
            count = int(rest)
            return None if count < 0 else [_read_reply(reader, where, depth + 1) for _element in range(count)]
    except ValueError:
        pass
    raise CheckFailed(f"{where} answered something that is not RESP")


@contextmanager
def _redis_session(host: str, port: int, timeout: float, context: ssl.SSLContext | None, where: str) -> Iterator:
    """call(*words) sends one command and returns its reply; OSError when unreachable.

    With a TLS context the certificate is checked against ``host``, which may be an IP address
    (Python then matches it against the certificate's IP SANs, not its DNS names)."""
    with socket.create_connection((host, port), timeout=timeout) as raw:
        sock = context.wrap_socket(raw, server_hostname=host) if context else raw
        with sock, sock.makefile("rb") as reader:

            def call(*words: str):
                sock.sendall(_redis_command(*words))
                return _read_reply(reader, where)

            yield call


def _redis_auth(call, where: str, credentials: Credentials) -> None:
    username, password = credentials
    if password is not None and call("AUTH", *([username] if username else []), password) != "OK":
        raise CheckFailed(f"{where} refused the credentials")


def _short(reply) -> str:
    return repr(str(reply)[:120])


def check_redis_master(
    host: str,
    port: int,
    timeout: float,
    context: ssl.SSLContext | None = None,
    credentials: Credentials = NO_CREDENTIALS,
) -> None:
    """The server at host:port (as a Sentinel named it) is reachable, accepts the credentials,
    is a master by its own ROLE and answers PING."""
    where = f"redis master at {_hostport(host, port)}"
    try:
        with _redis_session(host, port, timeout, context, where) as call:
            _redis_auth(call, where, credentials)
            role = call("ROLE")
            if isinstance(role, _ErrorReply):
                raise CheckFailed(f"{where} answered ROLE with the error {_short(role)}")
            first = role[0] if isinstance(role, list) and role else role
            if first != "master":
                what = "a replica" if first == "slave" else _short(first)
                raise CheckFailed(f"{where} is not a master: ROLE says {what}")
            reply = call("PING")
    except OSError as exc:
        raise CheckFailed(f"{where}: {exc.strerror or exc}") from None
    if reply != "PONG":
        raise CheckFailed(f"{where} answered PING with {_short(reply)}")


def parse_sentinel_url(url: str) -> SentinelURL:
    """The parts of a redis+sentinel:// or rediss+sentinel:// URL; a ValueError's message never
    contains the credentials."""
    scheme, _sep, rest = url.partition("://")
    if scheme.lower() not in SENTINEL_SCHEMES:
        raise ValueError("not a redis+sentinel:// or rediss+sentinel:// URL")
    rest = rest.split("#", 1)[0].split("?", 1)[0]
    netloc, _sep, path = rest.partition("/")
    userinfo, _sep, hosts = netloc.rpartition("@")
    user, has_password, secret = userinfo.partition(":")
    credentials = Credentials(unquote(user) or None, unquote(secret) if has_password else None)
    sentinels = []
    for number, item in enumerate(hosts.split(","), 1):
        try:
            seed = urlsplit("//" + item.strip())
            host, port = seed.hostname, seed.port or SENTINEL_PORT
        except ValueError:
            host = None
        if not host:  # not the text itself: a mistyped URL may have the password there
            raise ValueError(f"sentinel number {number} is not host[:port]")
        sentinels.append((host, port))
    name = unquote(path.split("/", 1)[0])
    if not name:
        raise ValueError("the master name is missing (the path of the URL)")
    return SentinelURL(SENTINEL_SCHEMES[scheme.lower()], sentinels, name, credentials)


def _ask_sentinels(target: SentinelURL, timeout: float, context: ssl.SSLContext | None) -> tuple[str, int, str]:
    """(master host, master port, the sentinel that named it) from the first Sentinel that knows."""
    failures, name = [], target.master_name
    for host, port in target.sentinels:
        where = f"sentinel at {_hostport(host, port)}"
        try:
            with _redis_session(host, port, timeout, context, where) as call:
                _redis_auth(call, where, target.credentials)
                reply = call("SENTINEL", "get-master-addr-by-name", name)
        except OSError as exc:
            failures.append(f"{where}: {exc.strerror or exc}")
            continue
        except CheckFailed as exc:
            failures.append(str(exc))
            continue
        if isinstance(reply, list) and len(reply) == 2 and all(isinstance(item, str) and item for item in reply):
            if reply[1].isdigit():
                return reply[0], int(reply[1]), _hostport(host, port)
            failures.append(f"{where} answered {_short(reply)}")
        elif reply is None:
            failures.append(f"{where} does not monitor a master named {name!r}")
        else:
            failures.append(f"{where} answered {_short(reply)}")
    raise CheckFailed(f"redis sentinel: no sentinel named the master {name!r} ({'; '.join(failures)})")


def _check_redis_sentinel(url: str, timeout: float, ca_file: str | None) -> dict:
    try:
        target = parse_sentinel_url(url)
    except ValueError as exc:
        raise CheckFailed(f"redis sentinel: APP_REDIS_URL: {exc}") from None
    context = _tls_context(ca_file) if target.tls else None
    host, port, sentinel = _ask_sentinels(target, timeout, context)
    try:
        check_redis_master(host, port, timeout, context, target.credentials)
    except CheckFailed as exc:
        raise CheckFailed(f"{exc} (named for {target.master_name!r} by sentinel at {sentinel})") from None
    return {"master": _hostport(host, port), "sentinel": sentinel}


def check_redis(url: str, timeout: float, ca_file: str | None = None) -> dict | None:
    """redis:// and rediss://: AUTH and PING; redis+sentinel:// and rediss+sentinel://: the master a
    Sentinel names, which must say it is a master; returns where it was reached."""
    if url.partition("://")[0].lower() in SENTINEL_SCHEMES:
        return _check_redis_sentinel(url, timeout, ca_file)
    _check_redis_plain(url, timeout, ca_file)
    return None


def _check_redis_plain(url: str, timeout: float, ca_file: str | None) -> None:
    parts = urlsplit(url)
    host, port = parts.hostname or "localhost", parts.port or 6379
    where = f"redis at {host}:{port}"
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            sock = _tls_context(ca_file).wrap_socket(raw, server_hostname=host) if parts.scheme == "rediss" else raw
            reader = sock.makefile("rb")
            if parts.password:
                auth = [unquote(parts.username)] if parts.username else []
                sock.sendall(_redis_command("AUTH", *auth, unquote(parts.password)))
                if not reader.readline().startswith(b"+OK"):
                    raise CheckFailed(f"{where} refused the credentials")
            sock.sendall(_redis_command("PING"))
            reply = reader.readline().strip()
    except OSError as exc:
        raise CheckFailed(f"{where}: {exc.strerror or exc}") from None
    if reply != b"+PONG":
        raise CheckFailed(f"{where} answered PING with {reply[:60].decode(errors='replace')!r}")


def check_opensearch(url: str, timeout: float, ca_file: str | None = None) -> None:
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = parts.port or 9200
    where = f"opensearch at {host}:{port}"
    headers = {"Accept": "application/json"}
    if parts.username:
        token = base64.b64encode(f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=_tls_context(ca_file))
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", parts.path.rstrip("/") + "/_cluster/health", headers=headers)
        response = conn.getresponse()
        body = response.read(65536)
    except OSError as exc:
        raise CheckFailed(f"{where}: {exc.strerror or exc}") from None
    finally:
        conn.close()
    if response.status != 200:
        raise CheckFailed(f"{where} answered HTTP {response.status}")
    try:
        status = json.loads(body).get("status")
    except (ValueError, AttributeError):
        raise CheckFailed(f"{where} answered something that is not cluster health") from None
    if status not in ("green", "yellow"):
        raise CheckFailed(f"{where} cluster status is {status}")


def _mongodb_seeds(url: str) -> list[tuple[str, int]]:
    rest = url.split("://", 1)[-1]
    netloc = rest.split("/", 1)[0].split("?", 1)[0].rsplit("@", 1)[-1]
    seeds = [urlsplit("//" + item) for item in netloc.split(",")]
    return [(seed.hostname or "localhost", seed.port or 27017) for seed in seeds]


def check_mongodb(url: str, timeout: float, ca_file: str | None = None) -> None:
    try:
        import pymongo  # noqa: PLC0415  (optional: a real ping when the driver is installed)
    except ImportError:
        pymongo = None
    if pymongo is not None:
        options = {"tlsCAFile": ca_file} if ca_file else {}
        client = pymongo.MongoClient(url, serverSelectionTimeoutMS=int(timeout * 1000), **options)
        try:
            client.admin.command("ping")
        except pymongo.errors.PyMongoError as exc:
            raise CheckFailed(f"mongodb: {type(exc).__name__}") from None
        finally:
            client.close()
        return
    if url.startswith("mongodb+srv://"):
        raise CheckFailed("mongodb: a mongodb+srv:// URL needs pymongo installed")
    errors = []
    for host, port in _mongodb_seeds(url):
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return
        except OSError as exc:
            errors.append(f"{host}:{port}: {exc.strerror or exc}")
    raise CheckFailed("mongodb: no seed host answers (" + "; ".join(errors) + ")")


# A check returns None or a dict of facts to add to its result (such as the Redis master reached).
CHECKS: dict[str, tuple[str, Callable[[str, float, str | None], dict | None]]] = {
    "redis": ("redis_url", check_redis),
    "opensearch": ("opensearch_url", check_opensearch),
    "mongodb": ("mongodb_url", check_mongodb),
}


def _timed(check: Callable[[str, float, str | None], dict | None], url: str, settings: Settings) -> dict:
    started = time.perf_counter()
    result: dict = {"ok": True}
    try:
        result.update(check(url, settings.ready_timeout, settings.ca_file) or {})
    except CheckFailed as exc:
        result = {"ok": False, "error": str(exc)}
    except Exception as exc:  # noqa: BLE001  (a readiness probe reports, it never crashes)
        result = {"ok": False, "error": f"{type(exc).__name__} while checking"}
    result["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return result


async def check_all(settings: Settings) -> dict[str, dict]:
    """Run the configured checks concurrently in threads; {} when nothing is configured."""
    configured = {
        name: (check, getattr(settings, attr)) for name, (attr, check) in CHECKS.items() if getattr(settings, attr)
    }
    results = await asyncio.gather(
        *(asyncio.to_thread(_timed, check, url, settings) for check, url in configured.values())
    )
    return dict(zip(configured, results, strict=True))
