"""Drive a real HTTP(S) service with wrk and report exact counts as one JSON summary.

Two wrk processes run at once for the same duration:

* mixed traffic (mixed.lua): GET /v1/infer, POST /v1/infer and GET /version in a fixed
  rotation, paced to about --rate requests/s over --connections connections;
* --streams connections that loop over GET /v1/stream?seconds=S&interval=I (stream.lua),
  each stream checked for its final `done` event and its number of ticks.

The summary (see README.md beside this file) is written to --output and printed. The exit
code is 0 whatever the counts (the caller asserts on them); it is non-zero only when the run
could not happen: 2 for bad arguments, 3 when wrk is missing, 4 when the target cannot be
reached (or never got ready) or wrk failed. Python 3.11 standard library only.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import math
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
MARKER = "AISTACK_LOAD_JSON "

MAX_DURATION_S = 3600
MAX_RATE = 5000
MAX_CONNECTIONS = 64
MAX_STREAMS = 64
# wrk 4.x allocates its latency histogram as 8 bytes per microsecond of --timeout (a
# 4000 s timeout asks for 32 GB and aborts), so the timeouts, and with them the stream
# length (stream timeout: max(2 S, S + 10)), stay at most 600 s.
MAX_TIMEOUT_S = 600
MAX_STREAM_SECONDS = 300

EXIT_USAGE = 2
EXIT_NO_WRK = 3
EXIT_RUN = 4

OK_CLASSES = ("2xx", "3xx")
STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx", "other")
ERROR_KINDS = ("connect", "read", "write", "status", "timeout")


class LoadError(Exception):
    """The run could not happen; carries the exit code and one clear sentence."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


# --- arguments ---------------------------------------------------------------------------


def _bounded(kind, low, high, name):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number, got {text!r}") from None
        if not math.isfinite(value) or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{name} must be between {low:g} and {high:g}, got {text}")
        return value

    return parse


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="load.py",
        description="Drive a service with wrk (mixed requests plus SSE streams) and report exact counts as JSON.",
    )
    parser.add_argument("--url", required=True, help="base URL, e.g. https://127.0.0.1:8443 (TLS is not verified)")
    parser.add_argument(
        "--duration", type=_bounded(int, 1, MAX_DURATION_S, "--duration"), default=60, help="seconds (1-3600)"
    )
    parser.add_argument(
        "--rate",
        type=_bounded(float, 0.1, MAX_RATE, "--rate"),
        default=120.0,
        help="mixed requests per second, in total (0.1-5000)",
    )
    parser.add_argument(
        "--connections",
        type=_bounded(int, 1, MAX_CONNECTIONS, "--connections"),
        default=8,
        help="connections (one wrk thread each) for the mixed traffic; at most the rate",
    )
    parser.add_argument(
        "--streams", type=_bounded(int, 0, MAX_STREAMS, "--streams"), default=3, help="stream connections (0: none)"
    )
    parser.add_argument(
        "--stream-seconds",
        type=_bounded(float, 0.01, MAX_STREAM_SECONDS, "--stream-seconds"),
        default=12.0,
        help="length of each stream, seconds (at most 300)",
    )
    parser.add_argument(
        "--stream-interval",
        type=_bounded(float, 0.01, 60, "--stream-interval"),
        default=0.5,
        help="seconds between two tick events",
    )
    parser.add_argument(
        "--timeout",
        type=_bounded(int, 1, MAX_TIMEOUT_S, "--timeout"),
        default=10,
        help="seconds after which a mixed answer counts as a timeout (wrk --timeout)",
    )
    parser.add_argument("--host-header", help="Host header to send (TLS SNI stays the URL's host)")
    parser.add_argument("--output", help="write the JSON summary to this file too")
    parser.add_argument(
        "--close",
        action="store_true",
        help="one connection per request (Connection: close) instead of keep-alive connections",
    )
    parser.add_argument(
        "--wait-ready",
        type=_bounded(float, 0, MAX_DURATION_S, "--wait-ready"),
        default=0.0,
        help="first poll GET /version until it answers 200, for up to this many seconds",
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a target that is not a loopback address (refused by default: load goes to local test services)",
    )
    parser.add_argument("--wrk", default="wrk", help="the wrk binary (default: wrk on PATH)")
    return parser.parse_args(argv)


def check_url(url: str, allow_remote: bool) -> urllib.parse.SplitResult:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise LoadError(EXIT_USAGE, f"--url must be http(s)://HOST[:PORT][/PREFIX], got {url!r}")
    if parts.query or parts.fragment:
        raise LoadError(EXIT_USAGE, f"--url takes no query or fragment, got {url!r}")
    try:
        port = parts.port
    except ValueError:
        raise LoadError(EXIT_USAGE, f"--url has a bad port: {url!r}") from None
    if not allow_remote:
        try:
            infos = socket.getaddrinfo(parts.hostname, port or 443, type=socket.SOCK_STREAM)
        except OSError as error:
            raise LoadError(EXIT_RUN, f"cannot resolve {parts.hostname}: {error}") from None
        remote = sorted({info[4][0] for info in infos if not ipaddress.ip_address(info[4][0]).is_loopback})
        if remote:
            raise LoadError(
                EXIT_USAGE,
                f"{parts.hostname} resolves to non-loopback {', '.join(remote)}; pass --allow-remote for a test host",
            )
    return parts


def expected_events(seconds: float, interval: float) -> int:
    """Tick events per stream, as the app counts them: max(1, round(seconds / interval))."""
    return max(1, round(seconds / interval))


def number_text(value: float) -> str:
    """A number as short text for a query string: 12.0 -> '12', 0.5 -> '0.5'."""
    return f"{value:g}" if value == float(f"{value:g}") else repr(value)


# --- readiness -----------------------------------------------------------------------------


def wait_ready(base: str, host_header: str | None, seconds: float) -> None:
    """Poll GET /version until it answers 200, for up to `seconds`; raise LoadError if never."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # like wrk: the load tool does not verify the certificate
    headers = {"Host": host_header} if host_header else {}
    deadline = time.monotonic() + seconds
    last = "no answer"
    while True:
        request = urllib.request.Request(base + "/version", headers=headers)  # noqa: S310 (http(s) checked above)
        try:
            with urllib.request.urlopen(request, timeout=2, context=context) as answer:  # noqa: S310
                if answer.status == 200:
                    return
                last = f"HTTP {answer.status}"
        except urllib.error.HTTPError as error:
            last = f"HTTP {error.code}"
        except (OSError, ValueError) as error:
            last = str(getattr(error, "reason", error))
        if time.monotonic() >= deadline:
            raise LoadError(EXIT_RUN, f"{base}/version did not answer 200 within {seconds:g} s (last: {last})")
        time.sleep(0.25)


# --- running wrk ---------------------------------------------------------------------------


def wrk_command(wrk, script, url, *, connections, duration, timeout_s, host_header, close, script_args):
    command = [wrk, "-t", str(connections), "-c", str(connections), "-d", f"{duration}s"]
    command += ["--timeout", f"{timeout_s}s", "-s", str(script)]
    if host_header:
        command += ["-H", f"Host: {host_header}"]
    if close:
        command += ["-H", "Connection: close"]
    return [*command, url, "--", *map(str, script_args)]


def parse_marker(stdout: str) -> dict | None:
    for line in stdout.splitlines():
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER) :])
    return None


def run_wrk(commands: dict[str, list[str]], limit_s: float) -> dict[str, dict]:
    """Start every command at once, wait for all (at most limit_s), return name -> JSON."""
    procs = {}
    # The scripts `require "load_common"` from their own directory.
    environment = {**os.environ, "LUA_PATH": f"{HERE}/?.lua;;"}
    try:
        for name, command in commands.items():
            procs[name] = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment
            )
    except OSError as error:
        for proc in procs.values():
            proc.kill()
            proc.wait()
        raise LoadError(EXIT_NO_WRK, f"cannot run wrk: {error}") from None

    # SIGINT or SIGTERM ends the run early: wrk stops on SIGINT and still reports, so the
    # summary covers the run up to then (a caller stops the load when its procedure is done).
    def stop_early(_signum, _frame):
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stop_early)

    deadline = time.monotonic() + limit_s
    outputs, problems, stopped = {}, [], set()
    for name, proc in procs.items():
        try:
            stdout, stderr = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
            problems.append(f"{name}: wrk did not stop within {limit_s:.0f} s and was killed")
            continue
        result = parse_marker(stdout)
        if name in stopped:
            continue
        if proc.returncode != 0 or result is None:
            message = " ".join(stderr.split()) or " ".join(stdout.split())[-300:] or "no output"
            problems.append(f"wrk ({name}) exited {proc.returncode}: {message}")
            # The other wrk has no reason to go on: the run failed already.
            for other_name, other in procs.items():
                if other.poll() is None:
                    other.kill()
                    stopped.add(other_name)
            continue
        outputs[name] = result
    if problems:
        raise LoadError(EXIT_RUN, problems[0] if len(problems) == 1 else "; ".join(problems))
    return outputs


# --- the summary -----------------------------------------------------------------------------


def failed_count(part: dict) -> int:
    """Failed exchanges of one wrk run, each counted once (see README.md, "What counts as failed").

    * completed responses whose status is not 2xx/3xx (counted by the script; wrk's own
      errors.status is the same responses, so it is not added again);
    * 2xx/3xx responses slower than the timeout (wrk's errors.timeout counts every slow
      response, but the slow ones with a bad status are already in the line above);
    * every socket error wrk saw (connect, read, write): each is one connection attempt or
      exchange that produced no response at all, so it cannot overlap the two lines above.
    """
    bad_status = sum(count for cls, count in part["status"].items() if cls not in OK_CLASSES)
    errors = part["errors"]
    return bad_status + part.get("slow_ok", 0) + errors["connect"] + errors["read"] + errors["write"]


def empty_part() -> dict:
    return {
        "requests": 0,
        "duration_us": 0,
        "bytes": 0,
        "errors": dict.fromkeys(ERROR_KINDS, 0),
        "latency_ms": {"p50": 0, "p90": 0, "p99": 0, "max": 0, "mean": 0},
        "status": dict.fromkeys(STATUS_CLASSES, 0),
        "versions": {},
        "sent": 0,
        "slow": 0,
        "slow_ok": 0,
        "in_flight": 0,
        "threads": 0,
    }


def normalise(part: dict) -> dict:
    """Fill what a run without any answer leaves out (empty Lua tables are not printed)."""
    full = empty_part()
    full.update(part)
    full["errors"] = {**dict.fromkeys(ERROR_KINDS, 0), **part.get("errors", {})}
    full["status"] = {**dict.fromkeys(STATUS_CLASSES, 0), **part.get("status", {})}
    return full


def summarise(args, url: str, mixed: dict, streams: dict, connections: int) -> dict:
    duration_s = max(mixed["duration_us"], streams["duration_us"]) / 1e6 or float(args.duration)
    mixed_s = mixed["duration_us"] / 1e6 or duration_s

    mixed.update(
        connections=connections,
        target_rps=args.rate,
        rps=round(mixed["requests"] / mixed_s, 2),
        failed=failed_count(mixed),
    )
    streams.update(
        connections=args.streams,
        seconds=args.stream_seconds,
        interval=args.stream_interval,
        expected_events=expected_events(args.stream_seconds, args.stream_interval),
        failed=failed_count(streams),
    )
    streams.setdefault("streams_completed", 0)
    streams.setdefault("streams_truncated", 0)
    streams.setdefault("streams_broken", 0)

    both = (mixed, streams)
    requests = sum(part["requests"] for part in both)
    totals = {
        "requests": requests,
        "sent": sum(part["sent"] if isinstance(part["sent"], int) else sum(part["sent"].values()) for part in both),
        "failed": mixed["failed"] + streams["failed"],
        "resets": sum(part["errors"]["read"] for part in both),
        "timeouts": sum(part["errors"]["timeout"] for part in both),
        "connect_errors": sum(part["errors"]["connect"] for part in both),
        "write_errors": sum(part["errors"]["write"] for part in both),
        "status_errors": sum(part["errors"]["status"] for part in both),
        "lost_requests": mixed.get("lost", 0),
        "truncated_streams": streams["streams_truncated"] + streams["streams_broken"],
        "completed_streams": streams["streams_completed"],
        "rps": round(requests / duration_s, 2),
    }
    return {
        "url": url,
        "duration_s": round(duration_s, 3),
        "mixed": mixed,
        "streams": streams,
        "totals": totals,
        "latency_ms": mixed["latency_ms"],
    }


def run(args: argparse.Namespace) -> dict:
    parts = check_url(args.url, args.allow_remote)
    base = urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
    prefix = parts.path.rstrip("/")
    wrk = shutil.which(args.wrk)
    if wrk is None:
        raise LoadError(EXIT_NO_WRK, f"wrk not found ({args.wrk!r}): install it, e.g. `apt-get install wrk`")

    if args.wait_ready > 0:
        wait_ready(base, args.host_header, args.wait_ready)

    # One connection per wrk thread (see mixed.lua), never more connections than requests/s.
    connections = max(1, min(args.connections, math.ceil(args.rate)))
    period_ms = connections * 1000 / args.rate
    commands = {
        "mixed": wrk_command(
            wrk,
            HERE / "mixed.lua",
            base,
            connections=connections,
            duration=args.duration,
            timeout_s=args.timeout,
            host_header=args.host_header,
            close=args.close,
            script_args=[f"{period_ms:.3f}", args.timeout * 1000, connections, prefix],
        )
    }
    stream_timeout_s = math.ceil(max(2 * args.stream_seconds, args.stream_seconds + 10))
    if args.streams:
        commands["streams"] = wrk_command(
            wrk,
            HERE / "stream.lua",
            base,
            connections=args.streams,
            duration=args.duration,
            timeout_s=stream_timeout_s,
            host_header=args.host_header,
            close=args.close,
            script_args=[
                number_text(args.stream_seconds),
                number_text(args.stream_interval),
                expected_events(args.stream_seconds, args.stream_interval),
                stream_timeout_s * 1000,
                prefix,
            ],
        )
    # wrk stops by itself after --duration; the limit only guards against a wrk that hangs.
    outputs = run_wrk(commands, limit_s=args.duration + 30)
    mixed = normalise(outputs["mixed"])
    streams = normalise(outputs.get("streams", {}))
    return summarise(args, args.url, mixed, streams, connections)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        summary = run(args)
    except LoadError as error:
        print(f"load.py: {error}", file=sys.stderr)
        return error.code
    text = json.dumps(summary, indent=2, sort_keys=True)
    if args.output:
        output = Path(args.output)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
