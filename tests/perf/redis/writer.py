"""Measure a Redis failover as a client sees it: numbered writes through Sentinel, then a read-back.

The writer finds the master through Redis Sentinel, writes `SET <prefix><n> <n>` followed by
`WAIT <replicas> <ms>` at a fixed rate, and counts a write as acknowledged only when SET
answered OK and WAIT reported at least the replicas asked for. Any error or timeout fails
that write, closes the connection and rediscovers the master (each Sentinel is asked in
turn, the address it gives is checked with ROLE); the schedule goes on without bursting.
At the end every acknowledged key is read back from the current master: an acknowledged
write that is missing or holds another value is lost.

One JSON object goes to stdout (see README.md beside this file). The exit code is 0 whatever
the counts (the caller asserts on them); 2 for bad usage, 3 when no master could be found at
the start, 4 when no master could be found for the read-back (nothing can be said about
lost writes then). The password comes from the environment (REDIS_WRITER_PASSWORD) only and
is never printed. Python 3.11 standard library only: it runs with the host's /usr/bin/python3.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import secrets
import signal
import socket
import ssl
import sys
import time
from dataclasses import dataclass, field

PASSWORD_ENV = "REDIS_WRITER_PASSWORD"  # noqa: S105  (the name of the variable)
DEFAULT_SENTINEL_PORT = 26379
MGET_BATCH = 500
LOST_KEYS_SHOWN = 20
SLEEP_SLICE_S = 0.1

EXIT_USAGE = 2
EXIT_NO_MASTER = 3
EXIT_NO_READBACK = 4


def log(message: str) -> None:
    print(f"writer: {message}", file=sys.stderr, flush=True)


# --- a small RESP2 client ------------------------------------------------------------------


class RespError(Exception):
    """An error reply from the server (`-ERR ...`, `-NOREPLICAS ...`)."""

    @property
    def kind(self) -> str:
        return (str(self).split(" ", 1)[0] or "ERR").upper()


class ProtocolError(ConnectionError):
    """The server sent something that is not RESP2."""


def encode(args) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, bytes):
            data = arg
        elif isinstance(arg, str):
            data = arg.encode()
        elif isinstance(arg, int):
            data = str(arg).encode()
        else:
            raise TypeError(f"cannot send a {type(arg).__name__}")
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class Connection:
    """One RESP2 connection; every command has its own deadline (`timeout` seconds in total)."""

    def __init__(self, host: str, port: int, timeout: float, tls: ssl.SSLContext | None) -> None:
        self.address = f"{host}:{port}"
        self.timeout = timeout
        self._buffer = bytearray()
        self._deadline = 0.0
        sock = socket.create_connection((host, port), timeout=timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if tls is not None:
                # server_hostname is the address used, a name or an IP (checked against the IP SANs).
                sock = tls.wrap_socket(sock, server_hostname=host.strip("[]"))
        except BaseException:
            sock.close()
            raise
        self.sock = sock

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def call(self, *args, timeout: float | None = None):
        """Send one command and return its reply; an error reply raises RespError."""
        self._deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        self._settimeout()
        self.sock.sendall(encode(args))
        reply = self._read_reply()
        if isinstance(reply, RespError):
            raise reply
        return reply

    def _settimeout(self) -> None:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"{self.address}: no complete answer within the timeout")
        self.sock.settimeout(left)

    def _fill(self) -> None:
        self._settimeout()
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            raise TimeoutError(f"{self.address}: no complete answer within the timeout") from None
        if not data:
            raise ConnectionError(f"{self.address}: connection closed by the server")
        self._buffer += data

    def _line(self) -> bytes:
        while True:
            end = self._buffer.find(b"\r\n")
            if end >= 0:
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 2]
                return line
            self._fill()

    def _exact(self, size: int) -> bytes:
        while len(self._buffer) < size + 2:
            self._fill()
        data = bytes(self._buffer[:size])
        if self._buffer[size : size + 2] != b"\r\n":
            raise ProtocolError(f"{self.address}: bulk string not terminated by CRLF")
        del self._buffer[: size + 2]
        return data

    def _read_reply(self):
        line = self._line()
        if not line:
            raise ProtocolError(f"{self.address}: empty reply line")
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode(errors="replace")
        if kind == b"-":
            return RespError(rest.decode(errors="replace"))
        try:
            number = int(rest) if kind in (b":", b"$", b"*") else None
        except ValueError:
            raise ProtocolError(f"{self.address}: bad length or integer {rest[:40]!r}") from None
        if kind == b":":
            return number
        if kind == b"$":
            return None if number < 0 else self._exact(number)
        if kind == b"*":
            return None if number < 0 else [self._read_reply() for _element in range(number)]
        raise ProtocolError(f"{self.address}: unexpected reply type {kind!r}")


# --- Sentinel discovery --------------------------------------------------------------------


@dataclass
class Settings:
    sentinels: list[tuple[str, int]]
    master: str
    user: str | None
    password: str | None
    timeout: float
    tls: ssl.SSLContext | None


class NoMaster(Exception):
    """No Sentinel named a master that answered ROLE as a master."""


def open_connection(settings: Settings, host: str, port: int) -> Connection:
    conn = Connection(host, port, settings.timeout, settings.tls)
    try:
        if settings.password is not None:
            if settings.user:
                conn.call("AUTH", settings.user, settings.password)
            else:
                conn.call("AUTH", settings.password)
    except BaseException:
        conn.close()
        raise
    return conn


def describe(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text if isinstance(error, RespError) else f"{type(error).__name__}: {text}"


def discover(settings: Settings) -> tuple[Connection, str]:
    """One pass over the Sentinels: a connection to the verified master and its host:port."""
    reasons = []
    tried = set()
    for index, (host, port) in enumerate(list(settings.sentinels)):
        try:
            sentinel = open_connection(settings, host, port)
        except (OSError, RespError) as error:
            reasons.append(f"sentinel {host}:{port}: {describe(error)}")
            continue
        try:
            reply = sentinel.call("SENTINEL", "get-master-addr-by-name", settings.master)
        except (OSError, RespError) as error:
            reasons.append(f"sentinel {host}:{port}: {describe(error)}")
            continue
        finally:
            sentinel.close()
        if not isinstance(reply, list) or len(reply) != 2:
            reasons.append(f"sentinel {host}:{port}: does not know a master named {settings.master!r}")
            continue
        try:
            master_host, master_port = reply[0].decode(), int(reply[1])
        except (AttributeError, ValueError):
            reasons.append(f"sentinel {host}:{port}: unexpected answer {reply!r:.80}")
            continue
        address = f"[{master_host}]:{master_port}" if ":" in master_host else f"{master_host}:{master_port}"
        if address in tried:
            continue
        tried.add(address)
        try:
            conn = open_connection(settings, master_host, master_port)
        except (OSError, RespError) as error:
            reasons.append(f"master {address} (from sentinel {host}:{port}): {describe(error)}")
            continue
        try:
            role = conn.call("ROLE")
        except (OSError, RespError) as error:
            conn.close()
            reasons.append(f"master {address}: ROLE: {describe(error)}")
            continue
        if not isinstance(role, list) or not role or role[0] != b"master":
            conn.close()
            found = role[0].decode(errors="replace") if isinstance(role, list) and role else role
            reasons.append(f"master {address} (from sentinel {host}:{port}): ROLE says {found!r}, not master")
            continue
        if index:  # ask the Sentinel that answered first next time
            settings.sentinels.insert(0, settings.sentinels.pop(index))
        return conn, address
    raise NoMaster("; ".join(reasons) or "no sentinel answered")


def discover_until(settings: Settings, seconds: float, stop) -> tuple[Connection, str]:
    deadline = time.monotonic() + seconds
    while True:
        try:
            return discover(settings)
        except NoMaster:
            if time.monotonic() >= deadline or stop():
                raise
            time.sleep(0.2)


# --- the run -------------------------------------------------------------------------------


@dataclass
class Run:
    prefix: str
    rate: float
    replicas: int
    wait_ms: int
    attempted: int = 0
    acknowledged: list[int] = field(default_factory=list)
    ack_times: list[float] = field(default_factory=list)
    failed: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    first_failure_at: float | None = None
    recovered_at: float | None = None
    masters_seen: list[str] = field(default_factory=list)
    last_failure_at: float | None = None
    streak: int = 0  # failed writes since the last acknowledged one

    def saw_master(self, address: str) -> None:
        if not self.masters_seen or self.masters_seen[-1] != address:
            if self.masters_seen:
                log(f"master is now {address} (was {self.masters_seen[-1]})")
            self.masters_seen.append(address)

    def fail(self, number: int, at: float, kind: str, detail: str) -> None:
        if not self.streak:
            log(f"write {number} failed at {at:.3f} s: {detail}")
        self.streak += 1
        self.failed += 1
        self.errors[kind] = self.errors.get(kind, 0) + 1
        if self.first_failure_at is None:
            self.first_failure_at = at
        self.last_failure_at = at

    def acknowledge(self, number: int, at: float) -> None:
        if self.streak:
            log(f"write {number} acknowledged at {at:.3f} s after {self.streak} failed")
        self.streak = 0
        self.acknowledged.append(number)
        self.ack_times.append(at)
        if self.first_failure_at is not None and self.recovered_at is None:
            self.recovered_at = at

    def longest_outage(self, duration: float) -> tuple[float, float, float]:
        """(unavailable seconds, from, to): the longest gap between two consecutive acknowledged writes.

        The seconds are the gap minus the nominal interval between two writes. A run that ends
        without recovering counts the gap from its last acknowledged write to its end; a run
        without any acknowledged write was unavailable for all its duration.
        """
        interval = 1.0 / self.rate
        if not self.ack_times:
            return round(duration, 3), 0.0, round(duration, 3)
        points = list(self.ack_times)
        if self.last_failure_at is not None and self.last_failure_at > points[-1]:
            points.append(duration)
        gaps = list(zip(points, points[1:], strict=False)) or [(points[0], points[0] + interval)]
        earlier, later = max(gaps, key=lambda gap: gap[1] - gap[0])
        return round(max(0.0, later - earlier - interval), 3), round(earlier, 3), round(later, 3)


def error_kind(error: BaseException) -> str:
    if isinstance(error, RespError):
        return error.kind
    if isinstance(error, NoMaster):
        return "NO_MASTER"
    return type(error).__name__


def write_one(conn: Connection, run: Run, number: int, timeout: float) -> str | None:
    """SET then WAIT; None when acknowledged, else why not (an exception is raised on errors)."""
    reply = conn.call("SET", f"{run.prefix}{number}", number)
    if reply != "OK":
        return "SET_NOT_OK"
    # WAIT blocks for up to its own timeout: the socket waits that long plus --timeout.
    replicas = conn.call("WAIT", run.replicas, run.wait_ms, timeout=timeout + run.wait_ms / 1000)
    if not isinstance(replicas, int) or replicas < run.replicas:
        return "WAIT_SHORT"
    return None


def attempt(settings: Settings, run: Run, conn: Connection | None, number: int):
    """One write: (the connection to go on with or None, None when acknowledged or (kind, detail))."""
    try:
        if conn is None:
            conn, address = discover(settings)
            run.saw_master(address)
        problem = write_one(conn, run, number, settings.timeout)
        if problem is None:
            return conn, None
        outcome = (problem, problem)
    except (OSError, RespError, NoMaster) as error:
        outcome = (error_kind(error), describe(error))
    if conn is not None:
        conn.close()
    return None, outcome


def write_loop(settings: Settings, run: Run, conn: Connection | None, duration: float, stop) -> float:
    interval = 1.0 / run.rate
    start = time.monotonic()
    end = start + duration if duration > 0 else math.inf
    base, step = start, 0  # write slots at base + step * interval
    slot = start
    while not stop() and slot < end:
        while (left := slot - time.monotonic()) > 0 and not stop():
            time.sleep(min(left, SLEEP_SLICE_S))
        if stop():
            break
        run.attempted += 1
        began = time.monotonic() - start
        conn, outcome = attempt(settings, run, conn, run.attempted)
        if outcome is None:
            run.acknowledge(run.attempted, time.monotonic() - start)
        else:
            run.fail(run.attempted, began, *outcome)
        step += 1
        slot = base + step * interval
        if slot < (now := time.monotonic()):  # behind schedule: go on from now, no burst to catch up
            base, step, slot = now, 0, now
    if conn is not None:
        conn.close()
    return time.monotonic() - start


def read_back(conn: Connection, run: Run) -> tuple[int, list[str]]:
    lost = 0
    lost_keys: list[str] = []
    numbers = run.acknowledged
    for first in range(0, len(numbers), MGET_BATCH):
        batch = numbers[first : first + MGET_BATCH]
        values = conn.call("MGET", *(f"{run.prefix}{n}" for n in batch), timeout=max(conn.timeout, 5.0))
        if not isinstance(values, list) or len(values) != len(batch):
            raise ProtocolError(f"{conn.address}: MGET answered {len(values or [])} values for {len(batch)} keys")
        for number, value in zip(batch, values, strict=True):
            if value != str(number).encode():
                lost += 1
                if len(lost_keys) < LOST_KEYS_SHOWN:
                    lost_keys.append(f"{run.prefix}{number}")
    return lost, lost_keys


def clean_up(conn: Connection, run: Run) -> int:
    deleted = 0
    for first in range(1, run.attempted + 1, MGET_BATCH):
        keys = [f"{run.prefix}{n}" for n in range(first, min(first + MGET_BATCH, run.attempted + 1))]
        deleted += conn.call("DEL", *keys, timeout=max(conn.timeout, 5.0))
    return deleted


# --- arguments -----------------------------------------------------------------------------


def parse_address(text: str) -> tuple[str, int]:
    text = text.strip()
    if text.startswith("["):
        host, _bracket, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, _colon, port_text = text.partition(":")
    else:
        host, port_text = text, ""
    if not host:
        raise ValueError(f"no host in {text!r}")
    port = int(port_text) if port_text else DEFAULT_SENTINEL_PORT
    if not 0 < port < 65536:
        raise ValueError(f"bad port in {text!r}")
    return host, port


def sentinel_list(text: str) -> list[tuple[str, int]]:
    try:
        addresses = [parse_address(part) for part in text.split(",") if part.strip()]
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"--sentinels: {error}") from None
    if not addresses:
        raise argparse.ArgumentTypeError("--sentinels needs at least one host:port")
    return addresses


def positive(kind, name, allow_zero=False):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number, got {text!r}") from None
        if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
            raise argparse.ArgumentTypeError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {text}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Write numbered keys through Redis Sentinel at a fixed rate and count lost acknowledged writes.",
        epilog=f"The password is read from ${PASSWORD_ENV} (no AUTH when it is unset).",
    )
    parser.add_argument("--sentinels", required=True, type=sentinel_list, help="host:port,host:port,...")
    parser.add_argument("--master", required=True, help="the master name Sentinel monitors")
    parser.add_argument("--user", help="ACL user (AUTH user password) on the Sentinels and the master")
    parser.add_argument("--rate", type=positive(float, "--rate"), default=50.0, help="writes per second (50)")
    parser.add_argument(
        "--duration", type=positive(float, "--duration", True), default=60.0, help="seconds (60); 0: until signalled"
    )
    parser.add_argument("--prefix", help="key prefix (writer:<run id>:)")
    parser.add_argument("--replicas", type=positive(int, "--replicas", True), default=1, help="WAIT replicas (1)")
    parser.add_argument("--wait-timeout", type=positive(int, "--wait-timeout"), default=500, help="WAIT ms (500)")
    parser.add_argument("--timeout", type=positive(float, "--timeout"), default=0.5, help="per-command s (0.5)")
    parser.add_argument(
        "--startup-timeout", type=positive(float, "--startup-timeout", True), default=10.0, help="find the master (10)"
    )
    parser.add_argument(
        "--readback-timeout",
        type=positive(float, "--readback-timeout", True),
        default=30.0,
        help="find the master for the read-back (30)",
    )
    parser.add_argument("--tls", action="store_true", help="TLS to the Sentinels and the master")
    parser.add_argument("--ca-file", help="CA bundle that signs the servers (default: the system's)")
    parser.add_argument("--cert-file", help="client certificate (PEM)")
    parser.add_argument("--key-file", help="client key (PEM)")
    parser.add_argument("--cleanup", action="store_true", help="delete the run's keys at the end")
    return parser


def tls_context(args, parser) -> ssl.SSLContext | None:
    if not args.tls:
        if args.ca_file or args.cert_file or args.key_file:
            parser.error("--ca-file, --cert-file and --key-file need --tls")
        return None
    if args.key_file and not args.cert_file:
        parser.error("--key-file needs --cert-file")
    try:
        context = ssl.create_default_context(cafile=args.ca_file)  # verifies the certificate and the name
        if args.cert_file:
            context.load_cert_chain(args.cert_file, args.key_file)
    except (OSError, ssl.SSLError) as error:
        parser.error(f"TLS files: {error}")
    return context


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    password = os.environ.get(PASSWORD_ENV)
    if args.user and password is None:
        parser.error(f"--user needs the password in ${PASSWORD_ENV}")
    settings = Settings(args.sentinels, args.master, args.user, password, args.timeout, tls_context(args, parser))
    run_id = f"{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"
    prefix = args.prefix if args.prefix is not None else f"writer:{run_id}:"
    run = Run(prefix, args.rate, args.replicas, args.wait_timeout)

    stopping = []

    def on_signal(signum, _frame):
        stopping.append(signum)

    def stop() -> bool:
        return bool(stopping)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    try:
        conn, address = discover_until(settings, args.startup_timeout, stop)
    except NoMaster as error:
        log(f"no master {args.master!r} found: {error}")
        return EXIT_NO_MASTER
    run.saw_master(address)
    log(f"master {address}, writing {run.prefix}<n> at {args.rate:g}/s")

    duration = write_loop(settings, run, conn, args.duration, stop)
    stopping.clear()  # a signal stops the writes, not the read-back

    unavailable, outage_from, outage_to = run.longest_outage(duration)
    summary = {
        "attempted": run.attempted,
        "acknowledged": len(run.acknowledged),
        "failed": run.failed,
        "lost_acknowledged": None,
        "lost_keys": [],
        "unavailable_seconds": unavailable,
        "longest_outage": [outage_from, outage_to],
        "first_failure_at": None if run.first_failure_at is None else round(run.first_failure_at, 3),
        "recovered_at": None if run.recovered_at is None else round(run.recovered_at, 3),
        "masters_seen": run.masters_seen,
        "duration": round(duration, 3),
        "prefix": run.prefix,
        "rate": args.rate,
        "replicas": args.replicas,
        "errors": dict(sorted(run.errors.items())),
    }
    try:
        conn, address = discover_until(settings, args.readback_timeout, stop)
        run.saw_master(address)
        summary["readback_master"] = address
        try:
            summary["lost_acknowledged"], summary["lost_keys"] = read_back(conn, run)
            if args.cleanup:
                summary["deleted"] = clean_up(conn, run)
        finally:
            conn.close()
    except (NoMaster, OSError, RespError) as error:
        log(f"read-back impossible: {describe(error)}")
        summary["readback_error"] = describe(error)
        print(json.dumps(summary), flush=True)
        return EXIT_NO_READBACK
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
