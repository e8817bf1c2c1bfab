# Copyright (c) aistack.fleet maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""SLO maths for gates: durations, the Prometheus text format, counter and histogram deltas,
percentiles from histogram buckets, the canary verdict and the error-budget policy.

Also the direct sampling of ``/metrics`` URLs (no Prometheus needed). Only the Python
standard library is used, so the host a gate runs on needs nothing installed.
"""

from __future__ import annotations

import http.client
import math
import re
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

from ansible_collections.aistack.fleet.plugins.module_utils.http_probe import describe_error

USER_AGENT = "aistack.fleet-slo-gate"
MAX_BODY = 64 * 1024 * 1024
MAX_WORKERS = 32
QUANTILES = (("p50_ms", 0.5), ("p95_ms", 0.95), ("p99_ms", 0.99))

# The seeds' thresholds: seed 000 section 3.2 (canary at most 2x the stable error ratio and
# at most 5 %), seed 004 (p95 at most 500 ms, latency regression at most 10 % over the
# baseline) and seed 000 section 5.4 (error budget states, block above 75 % consumed).
BUDGET_STATES = (
    (0.5, "HEALTHY", "safe to deploy"),
    (0.75, "WARNING", "slow down deployments"),
    (1.0, "CRITICAL", "freeze non-critical deployments"),
    (math.inf, "EXHAUSTED", "emergency freeze, focus on reliability"),
)


class SloConfigError(ValueError):
    """A setting that cannot work; the message names what to fix."""


class MetricsFormatError(ValueError):
    """A /metrics answer that is not in the Prometheus text format."""


# --- durations --------------------------------------------------------------------------------

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")


def parse_duration(value, name="duration"):
    """Seconds from a number of seconds or a duration such as 30s, 5m, 1h30m, 30d or 500ms."""
    seconds = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and value.strip():
        text = value.strip().lower()
        try:
            seconds = float(text)
        except ValueError:
            position, seconds = 0, 0.0
            while seconds is not None and position < len(text):
                match = _DURATION_PART.match(text, position)
                if match:
                    seconds += float(match.group(1)) * _UNITS[match.group(2)]
                    position = match.end()
                else:
                    seconds = None
    if seconds is None or not math.isfinite(seconds):
        raise SloConfigError(f"{name} must be a duration such as 30s, 5m or 30d, got {value!r}")
    return seconds


def format_duration(seconds):
    """A Prometheus range duration for a number of seconds: 30d, 5m, 90s, 1500ms."""
    milliseconds = int(round(seconds * 1000))
    if milliseconds % 1000:
        return f"{milliseconds}ms"
    whole = milliseconds // 1000
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"


# --- the Prometheus text format ---------------------------------------------------------------

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}


def _skip_blanks(line, position):
    while position < len(line) and line[position] in " \t":
        position += 1
    return position


def _read_quoted(line, position, number, name):
    """A label value from just after its opening quote: (value, position after the closing quote)."""
    chars = []
    while position < len(line):
        char = line[position]
        if char == "\\" and position + 1 < len(line):
            following = line[position + 1]
            chars.append(_ESCAPES.get(following, "\\" + following))
            position += 2
        elif char == '"':
            return "".join(chars), position + 1
        else:
            chars.append(char)
            position += 1
    raise MetricsFormatError(f"line {number}: the value of label {name} is not closed")


def _parse_labels(line, position, number):
    """Labels from just after '{' to just after '}': (labels, position)."""
    labels = {}
    while True:
        position = _skip_blanks(line, position)
        if line.startswith("}", position):
            return labels, position + 1
        match = _LABEL_NAME.match(line, position)
        if not match:
            raise MetricsFormatError(f"line {number}: expected a label name at column {position + 1}")
        name = match.group(0)
        position = _skip_blanks(line, match.end())
        if line.startswith("=", position):
            position = _skip_blanks(line, position + 1)
        if not line.startswith('"', position):
            raise MetricsFormatError(f'line {number}: expected ="value" after label {name}')
        labels[name], position = _read_quoted(line, position + 1, number, name)
        position = _skip_blanks(line, position)
        if line.startswith(",", position):
            position += 1
        elif not line.startswith("}", position):
            raise MetricsFormatError(f"line {number}: expected , or }} after label {name}")


def parse_metrics(text):
    """Every sample of a Prometheus (or OpenMetrics) text exposition: a list of (name, labels, value).

    Comments (HELP, TYPE, EOF) are skipped, label values are unescaped, timestamps and
    exemplars are dropped.
    """
    samples = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _NAME.match(line)
        if not match:
            raise MetricsFormatError(f"line {number}: expected a metric name, got {line[:40]!r}")
        name = match.group(0)
        position = match.end()
        labels = {}
        if line.startswith("{", position):
            labels, position = _parse_labels(line, position + 1, number)
        rest = line[position:].split(" # ", 1)[0].split()
        if not rest or len(rest) > 2:
            raise MetricsFormatError(f"line {number}: expected a value (and maybe a timestamp) after {name}")
        try:
            value = float(rest[0])
        except ValueError:
            raise MetricsFormatError(f"line {number}: {rest[0]!r} is not a number") from None
        samples.append((name, labels, value))
    return samples


# --- what the gate takes from one scrape --------------------------------------------------------


class MetricNames:
    """Which families to read and which requests to count.

    `requests` is the counter's sample name (http_requests_total), `duration` the histogram's
    base name (http_request_duration_seconds). Requests whose path is in `ignore_paths` are
    left out; when `methods` is given only those methods are counted.
    """

    def __init__(self, requests="http_requests_total", duration="http_request_duration_seconds", **filters):
        self.requests = requests
        base = requests[: -len("_total")] if requests.endswith("_total") else requests
        self.requests_created = base + "_created"
        self.duration = duration
        self.ignore_paths = frozenset(filters.get("ignore_paths") or ())
        self.methods = frozenset(method.upper() for method in (filters.get("methods") or ()))

    def counts(self, labels):
        if labels.get("path") in self.ignore_paths:
            return False
        return not self.methods or labels.get("method", "").upper() in self.methods


def _key(labels, drop=()):
    return tuple(sorted((name, value) for name, value in labels.items() if name not in drop))


def snapshot(samples, names):
    """The counter series and histogram series of interest from parsed samples.

    {"requests": {series: value}, "requests_created": {series: ts},
     "histograms": {series: {"buckets": {le: count}, "count": n, "created": ts}}}
    """
    requests, created, histograms = {}, {}, {}

    def histogram(labels):
        return histograms.setdefault(_key(labels, ("le",)), {"buckets": {}, "count": None, "created": None})

    for name, labels, value in samples:
        if not names.counts(labels):
            continue
        if name == names.requests:
            requests[_key(labels)] = value
        elif name == names.requests_created:
            created[_key(labels)] = value
        elif name == names.duration + "_bucket" and "le" in labels:
            try:
                bound = float(labels["le"])
            except ValueError:
                continue
            histogram(labels)["buckets"][bound] = value
        elif name == names.duration + "_count":
            histogram(labels)["count"] = value
        elif name == names.duration + "_created":
            histogram(labels)["created"] = value
    return {"requests": requests, "requests_created": created, "histograms": histograms}


# --- deltas between two scrapes ---------------------------------------------------------------


def is_error(series):
    """A 5xx status label."""
    status = dict(series).get("status", "")
    return len(status) == 3 and status.startswith("5") and status.isdigit()


class Totals:
    """What happened in a window, summed over series and targets."""

    def __init__(self):
        self.requests = 0.0
        self.errors = 0.0
        self.buckets = {}
        self.samples = 0.0
        self.resets = 0

    def add(self, other):
        self.requests += other.requests
        self.errors += other.errors
        self.samples += other.samples
        self.resets += other.resets
        for bound, count in other.buckets.items():
            self.buckets[bound] = self.buckets.get(bound, 0.0) + count
        return self

    def percentiles(self):
        """{"p50_ms": .., "p95_ms": .., "p99_ms": ..} from the buckets; None without observations."""
        result = {}
        for field, quantile in QUANTILES:
            seconds = histogram_quantile(quantile, self.buckets)
            result[field] = None if seconds is None else round(seconds * 1000, 3)
        return result


def delta(before, after):
    """Totals between two snapshots of one process, handling counter resets.

    A series whose value went down, or whose _created timestamp changed, belongs to a process
    that restarted in between: its increase is its new value (it counted from zero). A series
    that is new counts from zero too; one that vanished counts nothing.
    """
    totals = Totals()
    for series, value in after["requests"].items():
        old = before["requests"].get(series)
        old_created = before["requests_created"].get(series)
        new_created = after["requests_created"].get(series)
        reset = old is not None and (value < old or (old_created is not None and old_created != new_created))
        if old is None or reset:
            increase = value
            totals.resets += reset
        else:
            increase = value - old
        totals.requests += increase
        if is_error(series):
            totals.errors += increase
    for series, new in after["histograms"].items():
        old = before["histograms"].get(series)
        new_count = new["count"] if new["count"] is not None else new["buckets"].get(math.inf, 0.0)
        if old is not None:
            old_count = old["count"] if old["count"] is not None else old["buckets"].get(math.inf, 0.0)
            went_down = new_count < old_count or any(
                count < old["buckets"].get(bound, 0.0) for bound, count in new["buckets"].items()
            )
            restarted = old["created"] is not None and old["created"] != new["created"]
            if went_down or restarted:
                totals.resets += 1
                old = None
        totals.samples += new_count - (old_count if old is not None else 0.0)
        for bound, count in new["buckets"].items():
            previous = old["buckets"].get(bound, 0.0) if old is not None else 0.0
            totals.buckets[bound] = totals.buckets.get(bound, 0.0) + count - previous
    return totals


# --- percentiles --------------------------------------------------------------------------------


def histogram_quantile(quantile, buckets):
    """The quantile (0..1) of a histogram given as {upper bound: cumulative count}, like PromQL.

    Linear interpolation inside the bucket the rank falls in, the first bucket starting at 0
    (when its bound is positive). A rank in the +Inf bucket gives the highest finite bound.
    None when there is no +Inf bucket, no finite bucket or no observation.
    """
    bounds = sorted(buckets)
    if math.inf not in buckets or len(bounds) < 2:
        return None
    counts, highest = [], 0.0
    for bound in bounds:  # cumulative counts never decrease; repair rounding noise like PromQL
        highest = max(highest, buckets[bound])
        counts.append(highest)
    if counts[-1] <= 0:
        return None
    rank = quantile * counts[-1]
    index = next((i for i, count in enumerate(counts[:-1]) if count >= rank), len(bounds) - 1)
    if index == len(bounds) - 1:
        return bounds[-2]
    upper = bounds[index]
    if index == 0 and upper <= 0:
        return upper
    lower, below = (0.0, 0.0) if index == 0 else (bounds[index - 1], counts[index - 1])
    inside = counts[index] - below
    return upper if inside <= 0 else lower + (upper - lower) * (rank - below) / inside


# --- reading /metrics ---------------------------------------------------------------------------


def metrics_url(url):
    """The /metrics URL of a target: http(s) URLs without a path get /metrics added."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SloConfigError(f"{url!r} is not an http:// or https:// URL with a host")
    try:
        parts.port  # noqa: B018  (raises ValueError for a bad port)
    except ValueError:
        raise SloConfigError(f"{url!r} has an invalid port") from None
    if parts.path in ("", "/"):
        return url.rstrip("/") + "/metrics" if not parts.query else url
    return url


class HttpError(Exception):
    """A request that got no answer; the message says why."""


def http_get(url, timeout, context=None, headers=None):
    """GET a URL with the standard library: (status, body bytes); raises HttpError without an answer."""
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"User-Agent": USER_AGENT, **(headers or {})})
        response = conn.getresponse()
        return response.status, response.read(MAX_BODY)
    except (OSError, http.client.HTTPException) as exc:
        raise HttpError(describe_error(exc, timeout)) from None
    finally:
        conn.close()


class Scraper:
    """Reads the /metrics URLs of targets: which families (`names`), and how (timeout, TLS, headers)."""

    ACCEPT = "text/plain;version=0.0.4;q=1,*/*;q=0.1"

    def __init__(self, names, timeout=10.0, context=None, headers=None):
        self.names = names
        self.timeout = timeout
        self.context = context
        self.headers = {"Accept": self.ACCEPT, **(headers or {})}

    def scrape(self, url):
        """One snapshot of a /metrics URL; raises HttpError or MetricsFormatError."""
        status, body = http_get(url, self.timeout, self.context, self.headers)
        if status != 200:
            raise HttpError(f"HTTP {status}, expected 200")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise MetricsFormatError("the answer is not UTF-8 text") from None
        return snapshot(parse_metrics(text), self.names)

    def _outcome(self, url):
        try:
            return self.scrape(url), None
        except (HttpError, MetricsFormatError) as exc:
            return None, str(exc)

    def sample(self, urls, window, interval=None, stop=None, observe=None):
        """Scrape every URL at the start, every `interval` seconds and at the end of `window` seconds.

        All URLs are scraped at the same moments (one thread each). Returns {url: report} with
        "totals" (a Totals summed over consecutive good scrapes, None with fewer than two),
        "scrapes", "failed_scrapes" and "error" (the last failure, or None). With `stop`, a
        function of the reports so far, sampling ends at the first scrape before the end of
        the window after which it returns True. `self.elapsed` is then the seconds sampled (the
        whole window otherwise). With `observe`, a function of the seconds since the start and
        the reports so far, it is called after every scrape but the first.
        """
        urls = list(dict.fromkeys(urls))
        step = interval if interval and interval < window else window
        offsets, moment = [], 0.0
        while moment < window - 1e-9:
            offsets.append(moment)
            moment += step
        offsets.append(window)
        history = {url: [] for url in urls}
        started = time.monotonic()
        self.elapsed = window
        with ThreadPoolExecutor(max_workers=max(1, min(MAX_WORKERS, len(urls)))) as pool:
            for number, offset in enumerate(offsets):
                pause = started + offset - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                outcomes = list(pool.map(self._outcome, urls))
                for index, url in enumerate(urls):
                    history[url].append(outcomes[index])
                if observe is not None and number > 0:
                    observe(round(time.monotonic() - started, 1), _sum_all(history))
                if stop is not None and 0 < number < len(offsets) - 1 and stop(_sum_all(history)):
                    self.elapsed = round(time.monotonic() - started, 1)
                    break
        return _sum_all(history)


def _sum_all(history):
    return {url: _sum_history(outcomes) for url, outcomes in history.items()}


def _sum_history(outcomes):
    good = [snap for snap, error in outcomes if snap is not None]
    errors = [error for snap, error in outcomes if error is not None]
    totals = None
    if len(good) >= 2:
        totals = Totals()
        for index in range(1, len(good)):
            totals.add(delta(good[index - 1], good[index]))
    return {
        "totals": totals,
        "scrapes": len(good),
        "failed_scrapes": len(errors),
        "error": errors[-1] if errors else None,
    }


# --- evidence and the verdict -------------------------------------------------------------------


def as_count(value):
    """Counts as int when whole (direct sampling), else rounded (Prometheus' increase())."""
    if value is None:
        return None
    rounded = round(value, 3)
    return int(rounded) if rounded == int(rounded) else rounded


def group_stats(requests, errors, samples, percentiles):
    """The evidence of one group: requests, errors, error_ratio, samples, p50/p95/p99 in ms."""
    requests = max(0.0, requests or 0.0)
    errors = min(requests, max(0.0, errors or 0.0))
    stats = {
        "requests": as_count(requests),
        "errors": as_count(errors),
        "error_ratio": round(errors / requests, 6) if requests > 0 else None,
        "samples": as_count(max(0.0, samples or 0.0)),
    }
    for field, _quantile in QUANTILES:
        value = percentiles.get(field)
        stats[field] = None if value is None or math.isnan(value) else round(value, 3)
    return stats


def merge_reports(urls, reports):
    """A group's evidence from its targets' sampling reports: (stats, why it is incomplete or None).

    The targets' totals are summed; "targets" lists each one with its own numbers.
    """
    totals, targets, problems = Totals(), [], []
    for url in urls:
        report = reports[url]
        part = report["totals"]
        if part is None:
            problems.append(f"{url} could not be scraped twice ({report['error']})")
        else:
            totals.add(part)
        targets.append(
            {
                "url": url,
                "requests": None if part is None else as_count(part.requests),
                "errors": None if part is None else as_count(part.errors),
                "resets": None if part is None else part.resets,
                "scrapes": report["scrapes"],
                "failed_scrapes": report["failed_scrapes"],
                "error": report["error"],
            }
        )
    stats = group_stats(totals.requests, totals.errors, totals.samples, totals.percentiles())
    stats["targets"] = targets
    return stats, "; ".join(problems) or None


class Thresholds:
    """The compare-mode thresholds (see docs/slo_gate.md for the exact rules)."""

    FIELDS = (
        "min_samples",
        "max_error_ratio",
        "max_error_ratio_vs_baseline",
        "baseline_error_ratio_floor",
        "max_p95_ms",
        "max_latency_regression",
        "min_latency_regression_ms",
    )

    def __init__(self, **values):
        for field in self.FIELDS:
            setattr(self, field, values[field])

    def as_dict(self):
        return {field: getattr(self, field) for field in self.FIELDS}

    def check(self):
        """Refuse values that cannot work, naming the option."""
        if self.min_samples < 1:
            raise SloConfigError(f"min_samples must be at least 1, got {self.min_samples}")
        for field in ("max_error_ratio", "baseline_error_ratio_floor"):
            value = getattr(self, field)
            if not 0 <= value <= 1:
                raise SloConfigError(f"{field} is a ratio between 0 and 1 (0.05 means 5 %), got {value:g}")
        if self.max_error_ratio_vs_baseline <= 0:
            raise SloConfigError(
                f"max_error_ratio_vs_baseline must be above 0 (2.0 means twice the baseline), "
                f"got {self.max_error_ratio_vs_baseline:g}"
            )
        if self.max_p95_ms <= 0:
            raise SloConfigError(f"max_p95_ms must be above 0, got {self.max_p95_ms:g}")
        if self.max_latency_regression < 0:
            raise SloConfigError(
                f"max_latency_regression must not be negative (0.10 means 10 %), got {self.max_latency_regression:g}"
            )
        if self.min_latency_regression_ms < 0:
            value = self.min_latency_regression_ms
            raise SloConfigError(f"min_latency_regression_ms must not be negative, got {value:g}")


def _pct(ratio):
    return f"{ratio * 100:.2f}%"


def _ms(value):
    return f"{value:.1f} ms"


def _count(value):
    return str(value) if isinstance(value, int) else f"{value:.1f}"


FAIL, HOLD, PASS = "rollback", "hold", "promote"


def judge(canary, baseline, thresholds, window_label, incomplete=None):
    """The verdict on a canary (and its baseline): (verdict, reasons).

    `canary` and `baseline` are group_stats() dicts (baseline None when there is none);
    `incomplete` maps a group name to why its data is partial (a target could not be
    scraped). Rollback beats hold, hold beats promote; every reason is a sentence with numbers.
    """
    incomplete = incomplete or {}
    t = thresholds
    if canary["requests"] < t.min_samples:
        reasons = [
            f"canary served {_count(canary['requests'])} requests in the last {window_label}, fewer than "
            f"min_samples {t.min_samples}: not enough to judge"
        ]
        if "canary" in incomplete:
            reasons.append(f"canary data is incomplete: {incomplete['canary']}")
        return HOLD, reasons
    findings = _absolute(canary, t)
    if "canary" in incomplete:
        findings.append((HOLD, f"canary data is incomplete: {incomplete['canary']}"))
    if baseline is not None:
        findings.extend(_relative(canary, baseline, t, window_label))
        if "baseline" in incomplete:
            findings.append((HOLD, f"baseline data is incomplete: {incomplete['baseline']}"))
    for verdict in (FAIL, HOLD, PASS):
        reasons = [sentence for kind, sentence in findings if kind == verdict]
        if reasons:
            return verdict, reasons
    return PASS, []


def _absolute(canary, t):
    """The canary's own thresholds: error ratio and p95."""
    findings = []
    ratio = canary["error_ratio"]
    share = f"{_pct(ratio)} ({_count(canary['errors'])} of {_count(canary['requests'])} requests)"
    if ratio > t.max_error_ratio:
        findings.append((FAIL, f"canary error ratio {share} is above the maximum of {_pct(t.max_error_ratio)}"))
    else:
        findings.append((PASS, f"canary error ratio {share} is within the maximum of {_pct(t.max_error_ratio)}"))
    p95 = canary["p95_ms"]
    if p95 is None:
        findings.append((HOLD, "canary has no latency observations (no histogram buckets): p95 cannot be checked"))
    elif p95 > t.max_p95_ms:
        findings.append((FAIL, f"canary p95 latency {_ms(p95)} is above the maximum of {_ms(t.max_p95_ms)}"))
    else:
        findings.append((PASS, f"canary p95 latency {_ms(p95)} is within the maximum of {_ms(t.max_p95_ms)}"))
    return findings


def _relative(canary, baseline, t, window_label):
    """The rules against the baseline: error ratio relative to it, p95 regression over it."""
    if baseline["requests"] < t.min_samples:
        sentence = (
            f"baseline served {_count(baseline['requests'])} requests in the last {window_label}, fewer than "
            f"min_samples {t.min_samples}: the canary cannot be compared with it"
        )
        return [(HOLD, sentence)]
    findings = []
    ratio, base_ratio = canary["error_ratio"], baseline["error_ratio"]
    reference = max(base_ratio, t.baseline_error_ratio_floor)
    limit = t.max_error_ratio_vs_baseline * reference
    basis = f"{t.max_error_ratio_vs_baseline:g}x the baseline's {_pct(base_ratio)}"
    if reference > base_ratio:
        basis = f"{t.max_error_ratio_vs_baseline:g}x the floor of {_pct(reference)} (baseline {_pct(base_ratio)})"
    if ratio > limit:
        findings.append((FAIL, f"canary error ratio {_pct(ratio)} is above {basis} = {_pct(limit)}"))
    else:
        findings.append((PASS, f"canary error ratio {_pct(ratio)} is within {basis} = {_pct(limit)}"))
    p95, base_p95 = canary["p95_ms"], baseline["p95_ms"]
    if p95 is None:
        return findings  # held by the absolute rules already
    if base_p95 is None:
        findings.append((HOLD, "baseline has no latency observations: the latency regression cannot be checked"))
        return findings
    allowed = max(base_p95 * (1 + t.max_latency_regression), base_p95 + t.min_latency_regression_ms)
    growth = (p95 - base_p95) / base_p95 if base_p95 > 0 else (math.inf if p95 > 0 else 0.0)
    slower = f"{growth * 100:+.1f}%" if math.isfinite(growth) else "slower"
    sentence = (
        f"canary p95 latency {_ms(p95)} is {slower} against the baseline's {_ms(base_p95)} "
        f"(allowed: +{t.max_latency_regression * 100:g}% and at least +{t.min_latency_regression_ms:g} ms, "
        f"i.e. up to {_ms(allowed)})"
    )
    findings.append((FAIL if p95 > allowed else PASS, sentence))
    return findings


# --- the error budget (seed 000, section 5.4) -----------------------------------------------------


def budget_state(consumed):
    """(state, policy) for a consumed fraction of the error budget."""
    for limit, state, policy in BUDGET_STATES:
        if consumed < limit:
            return state, policy
    return BUDGET_STATES[-1][1], BUDGET_STATES[-1][2]


class BudgetPolicy:
    """The error-budget policy: an SLO target over a window, and how much of the budget may go."""

    def __init__(self, slo_target=0.999, window_seconds=30 * 86400, max_consumed=0.75, window_label="30d"):
        self.slo_target = slo_target
        self.window_seconds = window_seconds
        self.max_consumed = max_consumed
        self.window_label = window_label

    def judge(self, requests, errors):
        """(verdict, reasons, evidence) for the counts over the window.

        consumed = (errors / requests) / (1 - slo_target); the verdict is "block" when consumed
        is above max_consumed, "hold" without any request, else "allow".
        """
        requests = max(0.0, requests or 0.0)
        errors = min(requests, max(0.0, errors or 0.0))
        budget = round(1 - self.slo_target, 12)  # 1 - 0.999 is 0.0010000000000000009 in floats
        budget_seconds = self.window_seconds * budget
        evidence = {
            "slo_target": self.slo_target,
            "error_budget": round(budget, 9),
            "window": self.window_label,
            "window_seconds": self.window_seconds,
            "requests": as_count(requests),
            "errors": as_count(errors),
            "max_consumed": self.max_consumed,
            "budget_seconds": round(budget_seconds, 3),
        }
        if requests <= 0:
            for field in ("error_ratio", "availability", "consumed", "consumed_pct", "remaining_pct"):
                evidence[field] = None
            evidence.update(consumed_seconds=None, remaining_seconds=None, state=None, policy=None)
            reason = f"no requests were counted over the last {self.window_label}: the error budget cannot be computed"
            return "hold", [reason], evidence
        ratio = errors / requests
        consumed = round(ratio / budget, 9)  # so that exactly 75 % is 75 %, not 74.99999999999999 %
        state, policy = budget_state(consumed)
        evidence.update(
            error_ratio=round(ratio, 9),
            availability=round(1 - ratio, 9),
            consumed=round(consumed, 6),
            consumed_pct=round(consumed * 100, 3),
            remaining_pct=round((1 - consumed) * 100, 3),
            consumed_seconds=round(budget_seconds * consumed, 3),
            remaining_seconds=round(budget_seconds * (1 - consumed), 3),
            state=state,
            policy=policy,
        )
        facts = (
            f"{consumed * 100:.1f}% of the error budget is consumed ({_count(as_count(errors))} errors in "
            f"{_count(as_count(requests))} requests over {self.window_label}: error ratio {ratio * 100:.4f}% "
            f"against a budget of {budget * 100:.4g}% for an SLO of {self.slo_target * 100:.4g}%); "
            f"state {state}: {policy}"
        )
        allowed = f"{self.max_consumed * 100:g}% allowed"
        if consumed > self.max_consumed:
            return "block", [f"{facts}; above the {allowed}, so changes are blocked"], evidence
        return "allow", [f"{facts}; within the {allowed}"], evidence
