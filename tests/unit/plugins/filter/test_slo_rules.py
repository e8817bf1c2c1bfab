"""slo_rules: SLOs as data rendered into rules that Debian's real promtool checks and tests.

Every alert is fired by a `promtool test rules` case and left quiet by another, for an error SLO
and a latency SLO; the recording rules' values are checked the same way.
"""

import json
import subprocess

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.aistack.fleet.plugins.filter.slo_rules import slo_rules
from tests.unit.conftest import debian_tool

# Seed 004's three SLOs for the example app: 99.5 % available, 95 % of requests within 200 ms,
# at most 0.1 % errors.
SEED_004 = [
    {"name": "api_availability", "selector": 'job="app"', "objective": 0.995},
    {"name": "api_latency", "selector": 'job="app"', "objective": 0.95, "latency_threshold_ms": 200},
    {"name": "api_errors", "selector": 'job="app"', "objective": 0.999},
]


def promtool():
    return debian_tool("promtool", "prometheus")


def write_rules(directory, slos, annotations=True):
    rules = slo_rules(slos)
    if not annotations:
        # promtool compares annotations exactly; the cases below test expressions, `for` and labels.
        for group in rules["groups"]:
            for rule in group["rules"]:
                rule.pop("annotations", None)
    path = directory / "rules.yml"
    path.write_text(json.dumps(rules))  # JSON is YAML
    return path


def test_the_seed_slos_make_rules_promtool_accepts(tmp_path):
    path = write_rules(tmp_path, SEED_004)
    checked = subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # four recording rules and two alerts per SLO
    assert "SUCCESS: 18 rules found" in checked.stdout, checked.stdout


def test_four_lines_make_an_slo_with_its_windows_and_two_burn_rate_alerts():
    (group,) = slo_rules([{"name": "api", "selector": 'job="app"', "objective": 0.999}])["groups"]
    assert group["name"] == "slo_api"
    records = [rule for rule in group["rules"] if "record" in rule]
    assert [rule["record"] for rule in records] == [f"slo:sli_error:ratio_rate{w}" for w in ("5m", "30m", "1h", "6h")]
    assert records[0]["expr"] == (
        '(sum(rate(http_requests_total{job="app",status=~"5.."}[5m])) or vector(0))'
        ' / sum(rate(http_requests_total{job="app"}[5m]))'
    )
    alerts = [rule for rule in group["rules"] if "alert" in rule]
    assert [(a["expr"], a["for"], a["labels"]["window"]) for a in alerts] == [
        (
            'slo:sli_error:ratio_rate1h{slo="api"} > 0.0144 and slo:sli_error:ratio_rate5m{slo="api"} > 0.0144',
            "2m",
            "1h/5m",
        ),
        (
            'slo:sli_error:ratio_rate6h{slo="api"} > 0.006 and slo:sli_error:ratio_rate30m{slo="api"} > 0.006',
            "15m",
            "6h/30m",
        ),
    ]
    assert all(a["annotations"]["runbook_url"].endswith("docs/slo.md#slo-error-budget-burn") for a in alerts)


def run_case(tmp_path, slos, input_series, alerts=(), values=()):
    """One promtool test: the series over 70 minutes, the alerts expected at 65m (a list of
    label sets; none means none may fire), and recording rule values expected at 65m."""
    rules = write_rules(tmp_path, slos, annotations=False)
    test = {
        "rule_files": [str(rules)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": series, "values": values_} for series, values_ in input_series],
                "alert_rule_test": [
                    {
                        "eval_time": "65m",
                        "alertname": "SLOErrorBudgetBurn",
                        "exp_alerts": [{"exp_labels": labels} for labels in alerts],
                    }
                ],
                "promql_expr_test": [
                    {"expr": expr, "eval_time": "65m", "exp_samples": [{"labels": labels, "value": value}]}
                    for expr, labels, value in values
                ],
            }
        ],
    }
    path = tmp_path / "test.yml"
    path.write_text(json.dumps(test))
    result = subprocess.run([promtool(), "test", "rules", str(path)], capture_output=True, text=True, check=False)
    return result.returncode, result.stdout + result.stderr


def recorded(window, slo, ratio):
    """A recording rule's expected sample, in thousandths (exact, unlike the ratio's last bits)."""
    return f'round(slo:sli_error:ratio_rate{window}{{slo="{slo}"}} * 1000)', f'{{slo="{slo}"}}', round(ratio * 1000)


def errors_per_minute(ok, failed):
    return [
        ('http_requests_total{job="app",status="200"}', f"0+{ok}x70"),
        ('http_requests_total{job="app",status="500"}', f"0+{failed}x70"),
    ]


ERRORS_SLO = [{"name": "api_errors", "selector": 'job="app"', "objective": 0.999}]
PAGE_1H = {"slo": "api_errors", "severity": "page", "window": "1h/5m"}
PAGE_6H = {"slo": "api_errors", "severity": "page", "window": "6h/30m"}


@pytest.mark.parametrize(
    ("failed", "firing"),
    [
        # 2 % errors: above 14.4 x 0.1 % and 6 x 0.1 %, both pairs page
        (20, [PAGE_1H, PAGE_6H]),
        # 1 %: above 0.6 % but under 1.44 %, only the slow pair
        (10, [PAGE_6H]),
        # 0.5 %: under both
        (5, []),
    ],
)
def test_error_slo_alerts_fire_at_their_burn_rates_and_not_below(tmp_path, failed, firing):
    code, output = run_case(
        tmp_path,
        ERRORS_SLO,
        errors_per_minute(1000 - failed, failed),
        alerts=firing,
        values=[recorded("5m", "api_errors", failed / 1000)],
    )
    assert code == 0, output


def test_no_5xx_series_at_all_is_an_error_ratio_of_zero(tmp_path):
    code, output = run_case(
        tmp_path,
        ERRORS_SLO,
        [('http_requests_total{job="app",status="200"}', "0+1000x70")],
        values=[recorded("1h", "api_errors", 0)],
    )
    assert code == 0, output


LATENCY_SLO = [{"name": "api_latency", "selector": 'job="app"', "objective": 0.95, "latency_threshold_ms": 200}]


def latency_per_minute(total, fast):
    base = 'http_request_duration_seconds_{}{{job="app"{}}}'
    return [
        (base.format("bucket", ',le="0.2"'), f"0+{fast}x70"),
        (base.format("count", ""), f"0+{total}x70"),
    ]


@pytest.mark.parametrize(
    ("fast", "firing"),
    [
        # 80 % slower than 200 ms: above 14.4 x 5 % and 6 x 5 %
        (200, ["1h/5m", "6h/30m"]),
        # 40 % slow: above 30 %, under 72 %
        (600, ["6h/30m"]),
        # 10 % slow: under both
        (900, []),
    ],
)
def test_latency_slo_alerts_fire_at_their_burn_rates_and_not_below(tmp_path, fast, firing):
    code, output = run_case(
        tmp_path,
        LATENCY_SLO,
        latency_per_minute(1000, fast),
        alerts=[{"slo": "api_latency", "severity": "page", "window": window} for window in firing],
        values=[recorded("30m", "api_latency", 1 - fast / 1000)],
    )
    assert code == 0, output


def test_promtool_fails_a_case_whose_alert_does_not_fire(tmp_path):
    """The harness itself can fail: expecting the fast pair at 1 % errors is refused."""
    code, output = run_case(tmp_path, ERRORS_SLO, errors_per_minute(990, 10), alerts=[PAGE_1H, PAGE_6H])
    assert code != 0 and "SLOErrorBudgetBurn" in output, output


@pytest.mark.parametrize(
    ("slos", "message"),
    [
        ({"name": "api"}, "expects a list of SLOs"),
        ([{"name": "api", "objective": 1}], "objective must lie between 0 and 1"),
        ([{"name": "api", "objective": 0}], "objective must lie between 0 and 1"),
        ([{"name": "api", "objective": 99.5}], "objective must lie between 0 and 1"),
        ([{"name": "api", "objective": "high"}], "objective is the share of good requests"),
        ([{"name": "Api-1", "objective": 0.99}], "name must be lower case letters"),
        ([{"name": "api", "objective": 0.99}, {"name": "api", "objective": 0.9}], "two SLOs are named 'api'"),
        ([{"name": "api", "objective": 0.99, "selector": '{job="app"}'}], "without braces"),
        ([{"name": "api", "objective": 0.99, "latency_threshold_ms": 0}], "latency_threshold_ms must be above 0"),
        ([{"name": "api", "objective": 0.99, "latency_ms": 200}], "unknown keys ['latency_ms']"),
    ],
)
def test_bad_slos_are_refused_with_a_sentence(slos, message):
    with pytest.raises(AnsibleFilterError, match="slo_rules: .*" + message.replace("[", r"\[").replace("]", r"\]")):
        slo_rules(slos)
