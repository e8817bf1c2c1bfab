"""Readiness checks of the backing services that are configured (Redis, OpenSearch, MongoDB).

Each check is a plain, blocking network probe with a timeout and needs no client library:
Redis gets AUTH (when the URL has a password) and PING over RESP, OpenSearch gets
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
from collections.abc import Callable
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


def check_redis(url: str, timeout: float, ca_file: str | None = None) -> None:
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


CHECKS: dict[str, tuple[str, Callable[[str, float, str | None], None]]] = {
    "redis": ("redis_url", check_redis),
    "opensearch": ("opensearch_url", check_opensearch),
    "mongodb": ("mongodb_url", check_mongodb),
}


def _timed(check: Callable[[str, float, str | None], None], url: str, settings: Settings) -> dict:
    started = time.perf_counter()
    result: dict = {"ok": True}
    try:
        check(url, settings.ready_timeout, settings.ca_file)
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
