# Copyright (c) aistack.fleet maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""HTTP probing for gates: many targets at once, each until N consecutive successes or a deadline.

Only the Python standard library speaks HTTP here (http.client and ssl), so the host a gate
runs on needs nothing installed; jmespath is needed only for JSON assertions.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import ssl
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

try:
    import jmespath
except ImportError:
    HAS_JMESPATH = False
    JMESPATH_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_JMESPATH = True
    JMESPATH_IMPORT_ERROR = None

MAX_BODY = 1024 * 1024
MIN_REQUEST_TIMEOUT = 0.1
MAX_NAMED_FAILURES = 10
USER_AGENT = "aistack.fleet-health-gate"


class ProbeConfigError(ValueError):
    """A target or TLS setting that cannot work; the message names what to fix."""


class JsonAssertion:
    """A JMESPath query on the response body and the value it must have.

    Without an expected value (None) the query's result must be true-ish, for example a
    comparison such as ``status == 'ready'`` or ``length(members) >= `2```.
    """

    def __init__(self, path, equals=None):
        self.path = path
        self.equals = equals
        try:
            self._expression = jmespath.compile(path)
        except jmespath.exceptions.ParseError as exc:
            reason = str(exc).splitlines()[0].rstrip(":")
            where = f"{path!r} at position {exc.lex_position}"
            raise ProbeConfigError(f"invalid JMESPath expression {where}: {reason}") from None

    def failure(self, document):
        """None when the document satisfies the assertion, else what was found instead."""
        actual = self._expression.search(document)
        if self.equals is not None:
            if actual == self.equals:
                return None
            return f"JSON {self.path} is {json.dumps(actual)}, expected {json.dumps(self.equals)}"
        if actual:
            return None
        return f"JSON {self.path} is {json.dumps(actual)}, expected a true value"


class Policy:
    """When a target passes: `successes` good answers in a row, all within `deadline` seconds,
    one request every `interval` seconds, each given at most `timeout` seconds."""

    def __init__(self, successes=1, deadline=60.0, interval=1.0, timeout=5.0):
        self.successes = successes
        self.deadline = deadline
        self.interval = interval
        self.timeout = timeout


class Target:
    """One URL to probe and what counts as a success for it."""

    def __init__(self, url, name=None, status_codes=(200,), assertions=(), headers=None):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ProbeConfigError(f"{url!r} is not an http:// or https:// URL with a host")
        try:
            port = parts.port
        except ValueError:
            raise ProbeConfigError(f"{url!r} has an invalid port") from None
        self.url = url
        self.name = name or url
        self.status_codes = tuple(status_codes)
        self.assertions = tuple(assertions)
        self.headers = dict(headers or {})
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = port
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


# The options of tls_context(), documented by the aistack.fleet.tls_client doc fragment.
TLS_ARGUMENT_SPEC = {
    "validate_certs": {"type": "bool", "default": True},
    "ca_path": {"type": "path"},
    "client_cert": {"type": "path"},
    "client_key": {"type": "path"},
}


def tls_context(validate_certs=True, ca_path=None, client_cert=None, client_key=None):
    """The TLS context for https targets: trust a CA bundle (or the system's), present a client cert."""
    try:
        context = ssl.create_default_context(cafile=ca_path)
        if not validate_certs:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if client_cert:
            context.load_cert_chain(client_cert, client_key)
    except (OSError, ssl.SSLError) as exc:
        raise ProbeConfigError(f"cannot load the TLS material: {exc}") from None
    return context


# How a failed request is told to the operator, most specific first.
_FAILURES = (
    (ssl.SSLCertVerificationError, lambda exc, timeout: f"TLS verification failed: {exc.verify_message}"),
    (ssl.SSLError, lambda exc, timeout: "TLS error: " + re.sub(r" \(_ssl\.c:\d+\)", "", str(exc.reason or exc))),
    (socket.timeout, lambda exc, timeout: f"timed out after {timeout:g}s"),
    (ConnectionRefusedError, lambda exc, timeout: "connection refused"),
    (socket.gaierror, lambda exc, timeout: f"name does not resolve: {exc.strerror}"),
    (http.client.HTTPException, lambda exc, timeout: f"bad HTTP response ({type(exc).__name__})"),
    (OSError, lambda exc, timeout: exc.strerror or str(exc)),
)


def describe_error(exc, timeout):
    """A short sentence for a failed request."""
    for kind, describe in _FAILURES:
        if isinstance(exc, kind):
            return describe(exc, timeout)
    return f"{type(exc).__name__}: {exc}"


def probe_once(target, timeout, context=None):
    """One GET of the target: {ok, status, error, latency_ms}; never raises for network trouble."""
    if target.https:
        conn = http.client.HTTPSConnection(target.host, target.port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(target.host, target.port, timeout=timeout)
    started = time.monotonic()
    status = None
    try:
        conn.request("GET", target.path, headers={"User-Agent": USER_AGENT, **target.headers})
        response = conn.getresponse()
        status = response.status
        body = response.read(MAX_BODY)
    except (OSError, http.client.HTTPException) as exc:
        error = describe_error(exc, timeout)
    else:
        error = _check_response(target, status, body)
    finally:
        conn.close()
    latency_ms = round((time.monotonic() - started) * 1000, 1)
    return {"ok": error is None, "status": status, "error": error, "latency_ms": latency_ms}


def _check_response(target, status, body):
    expected = ", ".join(str(code) for code in target.status_codes)
    if status not in target.status_codes:
        return f"HTTP {status}, expected {expected}"
    if not target.assertions:
        return None
    try:
        document = json.loads(body)
    except ValueError:
        return f"HTTP {status} but the body is not JSON"
    for assertion in target.assertions:
        failure = assertion.failure(document)
        if failure:
            return failure
    return None


def wait_for_target(target, policy, deadline_at, context=None):
    """Probe one target until it answers well `policy.successes` times in a row or time runs out."""
    report = {
        "name": target.name,
        "url": target.url,
        "passed": False,
        "attempts": 0,
        "consecutive_successes": 0,
        "last_status": None,
        "last_error": None,
        "latency_ms": None,
    }
    while True:
        remaining = deadline_at - time.monotonic()
        result = probe_once(target, max(MIN_REQUEST_TIMEOUT, min(policy.timeout, remaining)), context)
        report["attempts"] += 1
        report["consecutive_successes"] = report["consecutive_successes"] + 1 if result["ok"] else 0
        report["last_status"] = result["status"]
        report["last_error"] = result["error"]
        report["latency_ms"] = result["latency_ms"]
        if report["consecutive_successes"] >= policy.successes:
            report["passed"] = True
            return report
        if time.monotonic() + policy.interval >= deadline_at:
            return report
        time.sleep(policy.interval)


def probe_targets(targets, policy, context=None):
    """Probe every target concurrently (one thread each); the reports come in the targets' order."""
    deadline_at = time.monotonic() + policy.deadline
    with ThreadPoolExecutor(max_workers=max(1, len(targets))) as pool:
        futures = [pool.submit(wait_for_target, target, policy, deadline_at, context) for target in targets]
        return [future.result() for future in futures]


def summarize(reports, policy):
    """One or two sentences an operator can act on: who failed and how it last answered."""
    failed = [report for report in reports if not report["passed"]]
    in_a_row = "once" if policy.successes == 1 else f"{policy.successes} times in a row"
    if not failed:
        who = "the target" if len(reports) == 1 else f"all {len(reports)} targets"
        return f"{who} answered as expected {in_a_row}"
    details = []
    for report in failed[:MAX_NAMED_FAILURES]:
        label = report["name"] if report["name"] == report["url"] else f"{report['name']} ({report['url']})"
        last = report["last_error"] or f"only {report['consecutive_successes']} good answers in a row"
        details.append(f"{label}: {last} (after {report['attempts']} attempts)")
    if len(failed) > MAX_NAMED_FAILURES:
        details.append(f"and {len(failed) - MAX_NAMED_FAILURES} more (see targets)")
    return (
        f"{len(failed)} of {len(reports)} targets did not answer as expected {in_a_row} "
        f"within {policy.deadline:g}s: " + "; ".join(details)
    )
