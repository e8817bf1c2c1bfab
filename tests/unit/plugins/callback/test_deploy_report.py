"""The deploy_report callback, enabled in the real ansible-playbook, against hosts on this machine."""

import json
import os
import re
import stat
import struct
import subprocess
import sys
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest

from ansible_collections.aistack.fleet.plugins.callback import deploy_report
from tests.unit.conftest import REPO, ScriptedServer, debian_tool
from tests.unit.plugins.module_utils.test_slo import metrics_text

PLAYBOOKS = Path(__file__).resolve().parent / "playbooks"
INVENTORY = PLAYBOOKS / "fleet.ini"
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
# The same places conftest looks for the collection: the checkout's `.collections` link, or
# the ansible_collections tree the checkout sits in.
COLLECTIONS = next(
    candidate
    for candidate in (REPO / ".collections", REPO.parent.parent.parent)
    if (candidate / "ansible_collections" / "aistack" / "fleet" / "galaxy.yml").is_file()
)
PLAY_SECRET = "s3cr3t-play-var-4711"  # noqa: S105  (the value procedure.yml hides with no_log)
EXTRA_SECRET = "extra-var-token-0815"  # noqa: S105
STAMPED = re.compile(r"^(?P<stem>[a-z_]+)-(?P<stamp>\d{8}T\d{6}Z)(-\d+)?\.(?P<ext>json|md|html)$")
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)\s+skipped=(\d+)\s+"
                   r"rescued=(\d+)\s+ignored=(\d+)", re.M)  # fmt: skip
ZERO = dict.fromkeys(("ok", "changed", "failed", "unreachable", "skipped", "rescued", "ignored"), 0)
RECAP_FIELDS = ("ok", "changed", "unreachable", "failed", "skipped", "rescued", "ignored")
POOLS = {
    "pools": {
        "app": {
            "method": "least_conn",
            "max_fails": 3,
            "fail_timeout": "30s",
            "keepalive": 0,
            "members": [
                {"name": f"app{i}", "address": f"10.0.0.{i}:8000", "weight": 1, "backup": False, "label": None}
                for i in (1, 2, 3)
            ],
        }
    }
}


def ansible_playbook(workdir, *args, env=None, umask=None):
    """Run ansible-playbook in workdir with only this callback enabled; the CompletedProcess."""
    full_env = {key: value for key, value in os.environ.items() if not key.startswith(("ANSIBLE_", "AISTACK_"))}
    config = workdir / "empty.cfg"
    config.touch()
    full_env.update(
        {
            "ANSIBLE_CONFIG": str(config),
            "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS),
            "ANSIBLE_CALLBACKS_ENABLED": "aistack.fleet.deploy_report",
            "ANSIBLE_LOCAL_TEMP": str(workdir / ".ansible-tmp"),
            "ANSIBLE_REMOTE_TEMP": str(workdir / ".ansible-tmp"),
            "ANSIBLE_NOCOLOR": "1",
        }
    )
    full_env.update(env or {})
    argv = [str(ANSIBLE_PLAYBOOK), "-i", str(INVENTORY), *map(str, args)]
    if umask is not None:
        argv = ["sh", "-c", f'umask {umask:03o} && exec "$0" "$@"', *argv]
    return subprocess.run(argv, cwd=workdir, env=full_env, capture_output=True, text=True, timeout=300, check=False)


def reports(directory):
    """{file name: text} of a report directory."""
    return {path.name: path.read_text() for path in sorted(Path(directory).iterdir())}


def only_report(directory, stem):
    """The JSON document and Markdown text of the one report of this playbook in directory."""
    files = reports(directory)
    stamped = sorted(name for name in files if name.startswith(f"{stem}-"))
    assert [name.rsplit(".", 1)[1] for name in stamped] == ["html", "json", "md"], files.keys()
    _html_name, json_name, md_name = stamped
    return json.loads(files[json_name]), files[md_name]


# --- one gated procedure, run once for the tests below ------------------------------------------


@pytest.fixture(scope="module")
def procedure(tmp_path_factory):
    """procedure.yml against localhost and the 3+1 fake hosts: (process, report dir, document, markdown)."""
    workdir = tmp_path_factory.mktemp("procedure")
    lb_dir = workdir / "lb1"
    lb_dir.mkdir()
    (lb_dir / "pools.json").write_text(json.dumps(POOLS))
    healthy = ScriptedServer(lambda number: (200, {"status": "ok"}))
    broken = ScriptedServer(lambda number: (503, {"status": "starting"}))
    try:
        proc = ansible_playbook(
            workdir,
            PLAYBOOKS / "procedure.yml",
            "-e",
            f"healthy_url={healthy.url}/ready broken_url={broken.url}/ready lb_config_dir={lb_dir}",
            "-e",
            f"deploy_token={EXTRA_SECRET}",
            env={"AISTACK_DEPLOY_REPORT_DIR": str(workdir / "out" / "reports")},
        )
    finally:
        healthy.close()
        broken.close()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    directory = workdir / "out" / "reports"
    document, markdown = only_report(directory, "procedure")
    return proc, directory, document, markdown


def test_writes_a_stamped_pair_and_latest_copies_with_the_right_modes(procedure):
    _proc, directory, document, markdown = procedure
    files = reports(directory)
    assert set(files) - {"latest.json", "latest.md", "latest.html"} == {
        name for name in files if STAMPED.match(name) and STAMPED.match(name)["stem"] == "procedure"
    }
    assert len(files) == 6
    stamps = {STAMPED.match(name)["stamp"] for name in files if STAMPED.match(name)}
    assert stamps == {document["run"]["started"][:19].replace("-", "").replace(":", "") + "Z"}
    assert json.loads(files["latest.json"]) == document
    assert files["latest.md"] == markdown
    assert stat.S_IMODE(directory.stat().st_mode) == 0o755
    for name in files:
        assert stat.S_IMODE((directory / name).stat().st_mode) == 0o644, name


def test_run_summary_and_outcome(procedure):
    _proc, _directory, document, _markdown = procedure
    run = document["run"]
    assert document["schema_version"] == 1
    assert run["playbook"] == "procedure.yml"
    assert run["outcome"] == "rolled_back"
    assert "rescue section handled localhost: Wait until the canary answers" in run["outcome_reason"]
    assert run["rollback"]["rescued_tasks"] == ["localhost: Wait until the canary answers"]
    assert run["rollback"]["rollback_events"] == ["localhost: Report the rollback"]
    assert ISO.match(run["started"]) and ISO.match(run["ended"])
    assert run["started"] <= run["ended"]
    assert run["duration"] >= 0
    assert run["check_mode"] is False
    assert "extra_vars" not in json.dumps(run)


def test_each_serial_batch_is_a_batch_of_its_play(procedure):
    _proc, _directory, document, _markdown = procedure
    plays = document["plays"]
    assert [play["name"] for play in plays] == [
        "Check the service before the change",
        "Roll the change over the fleet one host at a time",
        "Gate the canary and roll back when it fails",
    ]
    rolling = plays[1]
    assert rolling["serial"] == [1]
    assert rolling["hosts_pattern"] == ["fleet"]
    assert rolling["hosts"] == ["app1", "app2", "app3"]
    assert [(batch["number"], batch["hosts"]) for batch in rolling["batches"]] == [
        (1, ["app1"]),
        (2, ["app2"]),
        (3, ["app3"]),
    ]
    for one, two in zip(rolling["batches"], rolling["batches"][1:], strict=False):
        assert one["ended"] <= two["started"]
    for play in (plays[0], plays[2]):
        assert play["serial"] is None
        assert [batch["hosts"] for batch in play["batches"]] == [["localhost"]]
    for play in plays:
        assert play["duration"] >= 0 and play["started"] <= play["ended"]
        assert all(batch["duration"] >= 0 for batch in play["batches"])
        assert sum(batch["duration"] for batch in play["batches"]) <= play["duration"] + 0.01
    assert plays[0]["ended"] <= plays[1]["started"] and plays[1]["ended"] <= plays[2]["started"]


def test_every_task_on_every_host_with_status_and_timing(procedure):
    _proc, _directory, document, _markdown = procedure
    hosts = document["hosts"]
    assert sorted(hosts) == ["app1", "app2", "app3", "localhost"]
    for number, host in enumerate(("app1", "app2", "app3"), start=1):
        tasks = hosts[host]["tasks"]
        assert [(task["name"], task["action"], task["status"], task["batch"]) for task in tasks] == [
            ("Drain this host on every load balancer", "aistack.fleet.lb_member", "changed", number),
            ("Record that this host is done", "ansible.builtin.set_fact", "ok", number),
        ]
    statuses = {task["name"]: task for task in hosts["localhost"]["tasks"]}
    assert statuses["Wait until the service answers"]["status"] == "ok"
    canary = statuses["Wait until the canary answers"]
    assert canary["status"] == "rescued"
    assert "HTTP 503, expected 200" in canary["msg"]
    assert statuses["Report the rollback"]["status"] == "ok"
    for name in ("Gate with a credential", "Use the secret", "Report a milestone that holds the secret"):
        assert statuses[name]["censored"] is True
        assert "msg" not in statuses[name]
    for host in hosts.values():
        for task in host["tasks"]:
            assert ISO.match(task["started"]) and ISO.match(task["ended"])
            assert task["started"] <= task["ended"]
            assert task["duration"] >= 0
    # the canary gate probed for at least its deadline
    assert canary["duration"] >= 0.5


def test_gates_list_every_verdict_with_its_evidence(procedure):
    _proc, _directory, document, _markdown = procedure
    passed, failed, hidden = document["gates"]
    assert (passed["host"], passed["module"], passed["verdict"], passed["passed"]) == (
        "localhost",
        "aistack.fleet.health_gate",
        "passed",
        True,
    )
    assert [(t["name"], t["passed"], t["last_status"], t["attempts"]) for t in passed["targets"]] == [
        ("service", True, 200, 2)
    ]
    assert passed["task_status"] == "ok"
    assert (failed["verdict"], failed["passed"], failed["task_status"]) == ("failed", False, "rescued")
    assert [(t["name"], t["passed"], t["last_status"]) for t in failed["targets"]] == [("canary", False, 503)]
    assert failed["targets"][0]["attempts"] >= 1
    assert "did not answer as expected" in failed["msg"]
    assert hidden["task"] == "Gate with a credential"
    assert (hidden["verdict"], hidden["censored"], hidden["task_status"]) == (None, True, "ok")
    assert "targets" not in hidden and "msg" not in hidden
    gate_times = [entry["time"] for entry in document["timeline"] if entry["event"] == "gate"]
    assert gate_times == [passed["time"], failed["time"], hidden["time"]]


def test_traffic_names_the_delegated_load_balancer_and_the_arguments(procedure):
    _proc, _directory, document, _markdown = procedure
    assert [
        (entry["host"], entry["lb"], entry["pool"], entry["member"], entry["state"], entry["weight"], entry["changed"])
        for entry in document["traffic"]
    ] == [
        ("app1", "lb1", "app", "app1", "drained", None, True),
        ("app2", "lb1", "app", "app2", "drained", None, True),
        ("app3", "lb1", "app", "app3", "drained", None, True),
    ]
    assert all(entry["reloaded"] is False and entry["task_status"] == "changed" for entry in document["traffic"])


def test_custom_events_go_to_the_timeline_as_they_are(procedure):
    _proc, _directory, document, _markdown = procedure
    timeline = document["timeline"]
    events = [entry for entry in timeline if entry["event"] == "custom"]
    assert [(entry["host"], entry["data"]) for entry in events] == [
        ("app1", {"kind": "host_done", "msg": "app1 runs the new release"}),
        ("app2", {"kind": "host_done", "msg": "app2 runs the new release"}),
        ("app3", {"kind": "host_done", "msg": "app3 runs the new release"}),
        ("localhost", {"kind": "rollback", "msg": "the canary failed its health gate"}),
    ]
    assert [entry["time"] for entry in timeline] == sorted(entry["time"] for entry in timeline)
    kinds = [entry["event"] for entry in timeline]
    assert kinds.count("play_start") == 3 and kinds.count("batch_start") == 3
    assert {"host": "localhost", "status": "rescued"}.items() <= next(
        entry for entry in timeline if entry["event"] == "task" and entry["task"] == "Wait until the canary answers"
    ).items()


def test_no_log_results_and_extra_vars_are_not_written(procedure):
    proc, directory, document, _markdown = procedure
    for name, text in reports(directory).items():
        assert PLAY_SECRET not in text, name
        assert EXTRA_SECRET not in text, name
        assert "Bearer" not in text, name
        assert "censored due to no_log" not in text and "has been hidden" not in text, name
    assert "credential" not in [entry.get("kind") for entry in document["timeline"]]
    # the secret was really used by those tasks: the playbook printed the rest of its output
    assert "Use the secret" in proc.stdout


def test_final_stats_match_the_play_recap(procedure):
    proc, _directory, document, markdown = procedure
    recap = {host: dict(zip(RECAP_FIELDS, map(int, rest), strict=True)) for host, *rest in RECAP.findall(proc.stdout)}
    assert recap["localhost"]["rescued"] == 1
    assert document["stats"] == recap
    for host, counts in recap.items():
        row = " | ".join(
            str(counts[name]) for name in ("ok", "changed", "failed", "unreachable", "skipped", "rescued", "ignored")
        )
        assert f"| {host} | {row} |" in markdown


def test_markdown_has_the_title_and_the_tables(procedure):
    _proc, _directory, document, markdown = procedure
    lines = markdown.splitlines()
    assert lines[0] == "# Deploy report: procedure.yml (rolled_back)"
    for header in (
        "| Field | Value |",
        "| Play | Hosts | Batches | Started (UTC) | Duration |",
        "| Batch | Hosts | Started (UTC) | Duration |",
        "| Time (UTC) | Host | Event | Detail |",
        "| Time (UTC) | Host | Gate | Task | Verdict | Key numbers |",
        "| Time (UTC) | Load balancer | Change | Changed | Task |",
        "| Host | ok | changed | failed | unreachable | skipped | rescued | ignored |",
    ):
        assert header in lines, header
    assert "| Outcome | **rolled_back**: " in markdown
    batches = lines[lines.index("| Batch | Hosts | Started (UTC) | Duration |") + 2 :]
    assert [row.split(" | ")[1] for row in batches[:3]] == ["app1", "app2", "app3"]
    assert not batches[3].startswith("|")
    gates = [line for line in lines if "| health_gate |" in line]
    assert len(gates) == 3
    assert "**passed**" in gates[0] and "service: ok, 2 attempts, last HTTP 200" in gates[0]
    assert "**failed**" in gates[1] and "canary: FAIL" in gates[1] and "last HTTP 503" in gates[1]
    assert "**hidden**" in gates[2]
    assert "| lb1 | pool app member app2 state=drained | yes |" in markdown
    timeline = lines[lines.index("| Time (UTC) | Host | Event | Detail |") + 2 :]
    timeline = timeline[: next(i for i, line in enumerate(timeline) if not line.startswith("|"))]
    assert len(timeline) == len(document["timeline"])
    assert any("| custom: rollback | the canary failed its health gate |" in row for row in timeline)
    assert all(row.count(" | ") == 3 for row in timeline)


# --- the outcome rule ---------------------------------------------------------------------------


def test_a_failure_after_a_rollback_is_a_failed_run(tmp_path):
    broken = ScriptedServer(lambda number: (503, {}))
    try:
        env = {"AISTACK_DEPLOY_REPORT_DIR": "r"}  # relative: to the working directory
        proc = ansible_playbook(tmp_path, PLAYBOOKS / "failing.yml", "-e", f"broken_url={broken.url}", env=env)
    finally:
        broken.close()
    assert proc.returncode == 2, proc.stdout + proc.stderr
    document, markdown = only_report(tmp_path / "r", "failing")
    assert document["run"]["outcome"] == "failed"
    assert document["run"]["outcome_reason"] == "failed or unreachable tasks on localhost"
    assert document["run"]["rollback"]["rescued_tasks"] == ["localhost: Wait until the service answers"]
    assert document["run"]["rollback"]["rollback_tasks"] == ["localhost: Roll back"]
    assert [task["status"] for task in document["hosts"]["localhost"]["tasks"]] == ["rescued", "ok", "failed"]
    assert document["hosts"]["localhost"]["tasks"][2]["msg"] == "the rollback did not bring the service back"
    assert document["gates"][0]["verdict"] == "failed"
    assert document["stats"]["localhost"]["failed"] == 1
    assert markdown.startswith("# Deploy report: failing.yml (failed)\n")


@pytest.mark.parametrize(
    ("extra", "outcome", "status"),
    [("run_rollback=false", "succeeded", "skipped"), ("run_rollback=true", "rolled_back", "ok")],
    ids=["rollback-skipped", "rollback-ran"],
)
def test_a_task_tagged_rollback_rolls_back_only_when_it_runs(tmp_path, extra, outcome, status):
    proc = ansible_playbook(tmp_path, PLAYBOOKS / "quiet.yml", "-e", extra)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    document, markdown = only_report(tmp_path / "deploy-reports", "quiet")  # the default, under the cwd
    assert document["run"]["outcome"] == outcome
    expected = ["localhost: Roll back on request"] if status == "ok" else []
    assert document["run"]["rollback"]["rollback_tasks"] == expected
    tasks = {task["name"]: task["status"] for task in document["hosts"]["localhost"]["tasks"]}
    assert tasks["Roll back on request"] == status
    # `debug: var=deploy_report_event` is an event too
    events = [entry["data"] for entry in document["timeline"] if entry["event"] == "custom"]
    assert events == [{"kind": "version", "version": "1.2.3"}]
    assert document["gates"] == [] and document["traffic"] == []
    assert "No gate ran." in markdown and "## Traffic" not in markdown


# --- options --------------------------------------------------------------------------------------


def test_ini_report_dir_is_relative_to_the_config_file_and_modes_ignore_the_umask(tmp_path):
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    config = config_dir / "ansible.cfg"
    config.write_text("[aistack_deploy_report]\nreport_dir = nested/reports\ntimeline_tasks = all\n")
    proc = ansible_playbook(tmp_path, PLAYBOOKS / "quiet.yml", env={"ANSIBLE_CONFIG": str(config)}, umask=0o077)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    directory = config_dir / "nested" / "reports"
    document, _markdown = only_report(directory, "quiet")
    assert stat.S_IMODE(directory.stat().st_mode) == 0o755
    assert {stat.S_IMODE(path.stat().st_mode) for path in directory.iterdir()} == {0o644}
    assert not (tmp_path / "deploy-reports").exists()
    # timeline_tasks = all: ok and skipped results are in the timeline too
    statuses = [(entry["task"], entry["status"]) for entry in document["timeline"] if entry["event"] == "task"]
    assert statuses == [
        ("Say hello", "ok"),
        ("Roll back on request", "skipped"),
        ("Report the deployed version", "ok"),
    ]


def test_every_playbook_of_a_run_gets_its_own_report_and_latest_is_the_last(tmp_path):
    proc = ansible_playbook(
        tmp_path,
        PLAYBOOKS / "quiet.yml",
        PLAYBOOKS / "quiet.yml",
        env={"AISTACK_DEPLOY_REPORT_DIR": str(tmp_path / "r"), "AISTACK_DEPLOY_REPORT_TIMELINE_TASKS": "none"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    files = reports(tmp_path / "r")
    assert len([name for name in files if STAMPED.match(name)]) == 6, files.keys()
    documents = [json.loads(text) for name, text in files.items() if STAMPED.match(name) and name.endswith(".json")]
    first, second = sorted(documents, key=lambda document: document["run"]["started"])
    assert first["run"]["ended"] <= second["run"]["started"]
    assert json.loads(files["latest.json"]) == second
    # each report counts its own playbook, not the sum Ansible shows after the second one
    assert first["stats"] == second["stats"] == {"localhost": {**ZERO, "ok": 2, "skipped": 1}}
    assert "localhost : ok=4 " in " ".join(proc.stdout.split())
    assert all(entry["event"] != "task" for entry in second["timeline"])


def test_an_unwritable_report_dir_warns_and_keeps_the_run_going(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    env = {"AISTACK_DEPLOY_REPORT_DIR": str(tmp_path / "file")}
    proc = ansible_playbook(tmp_path, PLAYBOOKS / "quiet.yml", env=env)
    assert proc.returncode == 0
    assert "deploy_report: could not write the report" in proc.stdout + proc.stderr


# --- helpers ----------------------------------------------------------------------------------


def test_markdown_cells_stay_on_one_line_and_escape_pipes():
    assert deploy_report.cell("a | b\nc") == "a \\| b c"
    assert deploy_report.cell(None) == ""
    assert deploy_report.cell({"b": 1}) == '{"b": 1}'
    assert deploy_report.cell("x" * 300, 20) == "x" * 17 + "..."


def test_custom_events_are_found_where_tasks_put_them():
    event = {"kind": "switch", "pool": "app"}
    assert deploy_report.custom_events({"deploy_report_event": event}) == [event]
    assert deploy_report.custom_events({"ansible_facts": {"deploy_report_event": event}}) == [event]
    assert deploy_report.custom_events({"msg": {"deploy_report_event": [event, "not a dict"]}}) == [event]
    assert deploy_report.custom_events({"msg": "deploy_report_event"}) == []
    assert deploy_report.custom_events({"stdout": json.dumps({"deploy_report_event": event})}) == []


def test_durations_read_well():
    assert deploy_report.human_duration(3.31) == "3.3 s"
    assert deploy_report.human_duration(123) == "2 min 03 s"
    assert deploy_report.human_duration(3723) == "1 h 02 min 03 s"


# --- slo_gate, by action name only (the module is not needed) ------------------------------------


class FakeHost:
    def __init__(self, name):
        self.name = name

    def get_name(self):
        return self.name


class FakeTask:
    def __init__(self, action, name, uuid, no_log=False):
        self.action = self.resolved_action = action
        self.name, self._uuid, self.no_log = name, uuid, no_log
        self._parent, self.tags, self.delegate_to, self.args = None, [], None, {}

    def get_name(self):
        return self.name


class FakeResult:
    def __init__(self, host, task, result):
        self.host, self.task, self.result, self.task_fields, self.task_name = host, task, result, {}, task.name


class FakeStats:
    processed = {"localhost": 1}

    @staticmethod
    def summarize(host):
        return {"ok": 1, "failures": 0, "unreachable": 0, "changed": 0, "skipped": 0, "rescued": 0, "ignored": 0}


SLO_RESULT = {
    "changed": False,
    "verdict": "rollback",
    "reasons": ["canary error ratio 48.00% (120 of 250 requests) is above the maximum of 5.00%"],
    "msg": "rollback: canary error ratio 48.00% (120 of 250 requests) is above the maximum of 5.00%",
    "evidence": {
        "mode": "compare",
        "source": "metrics",
        "groups": {"canary": {"requests": 250, "errors": 120, "error_ratio": 0.48, "p95_ms": 4.8, "p99_ms": 4.96}},
    },
}


@pytest.mark.parametrize("action", ["aistack.fleet.slo_gate", "slo_gate"])
def test_slo_gate_verdicts_and_evidence_are_taken_by_action_name(action):
    report = deploy_report.Report("canary.yml", ["rollback"], "changed")
    task = FakeTask(action, "Judge the canary", "uuid-1")
    report.task_result(FakeResult(FakeHost("localhost"), task, dict(SLO_RESULT)), "ok")
    hidden = FakeTask(action, "Judge with a token", "uuid-2", no_log=True)
    censored = {"changed": False, "_ansible_no_log": True, "censored": "the output has been hidden"}
    report.task_result(FakeResult(FakeHost("localhost"), hidden, censored), "ok")
    report.finish(FakeStats, {})
    document = report.document()
    judged, secret = document["gates"]
    assert judged["module"] == "aistack.fleet.slo_gate"
    assert (judged["verdict"], judged["task_status"]) == ("rollback", "ok")
    assert judged["evidence"] == SLO_RESULT["evidence"]
    assert judged["reasons"] == SLO_RESULT["reasons"] and judged["msg"] == SLO_RESULT["msg"]
    assert (secret["verdict"], secret["censored"]) == (None, True) and "evidence" not in secret
    markdown = deploy_report.markdown(document)
    row = next(line for line in markdown.splitlines() if "| Judge the canary |" in line)
    assert "| slo_gate | Judge the canary | **rollback** |" in row
    assert "canary: requests=250, errors=120, error_ratio=0.48, p95_ms=4.8, p99_ms=4.96" in row
    assert "| Gates | 2 (0 passed, promoted or allowed) |" in markdown


# --- the page: one self-contained HTML file, opened in headless Chromium ---------------------------


def metrics_server(requests_per_scrape, seconds, errors_per_scrape=0, errors_from=1):
    """A /metrics endpoint whose counters grow by these numbers at every scrape, as a service's do;
    errors from the errors_from-th scrape on."""

    def script(number):
        series = {("GET", "/v1/infer", "200"): [seconds] * (number * requests_per_scrape)}
        failing = max(0, number - errors_from + 1)
        if errors_per_scrape and failing:
            series["GET", "/v1/infer", "500"] = [seconds] * (failing * errors_per_scrape)
        return 200, metrics_text(series).encode()

    return ScriptedServer(script)


@pytest.fixture(scope="module")
def canary_page(tmp_path_factory):
    """canary.yml, two slo_gate stages sampled directly: (document, the page's path)."""
    workdir = tmp_path_factory.mktemp("canary")
    servers = {
        "baseline_url": metrics_server(200, 0.008),
        "good_url": metrics_server(30, 0.009),
        # Healthy for its first three scrapes, then one request in five fails.
        "bad_url": metrics_server(24, 0.009, errors_per_scrape=6, errors_from=4),
    }
    try:
        proc = ansible_playbook(
            workdir,
            PLAYBOOKS / "canary.yml",
            "-e",
            " ".join(f"{name}={server.url}/metrics" for name, server in servers.items()),
            env={"AISTACK_DEPLOY_REPORT_DIR": str(workdir / "reports")},
        )
    finally:
        for server in servers.values():
            server.close()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    document, _markdown = only_report(workdir / "reports", "canary")
    assert [gate["verdict"] for gate in document["gates"]] == ["promote", "rollback"]
    return document, workdir / "reports" / "latest.html"


class Elements(HTMLParser):
    """Every start tag of a page, as (tag, {attribute: value}), and the text of its table cells."""

    def __init__(self, text):
        super().__init__()
        self.tags, self.cells, self._in_cell = [], [], False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_cell = tag == "td"
        if self._in_cell:
            self.cells.append("")

    def handle_data(self, data):
        if self._in_cell:
            self.cells[-1] += data

    def find(self, tag, css=None):
        return [
            attrs for name, attrs in self.tags if name == tag and (css is None or css in attrs.get("class", "").split())
        ]


def test_the_page_is_one_file_that_fetches_nothing(canary_page):
    _document, page = canary_page
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>")
    elements = Elements(text)
    assert [name for name, attrs in elements.tags if "src" in attrs or "href" in attrs] == []
    assert elements.find("script") == [] and elements.find("link") == []
    assert "url(" not in text and "@import" not in text
    assert stat.S_IMODE(page.stat().st_mode) == 0o644


def png_pixels(path):
    """(width, height, rows of RGB(A) byte strings) of an 8-bit, non-interlaced PNG such as Chromium writes."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, chunks = 8, {}
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        chunks.setdefault(kind, []).append(data[position + 8 : position + 8 + length])
        position += 12 + length
    width, height, depth, color, _compression, _filter, interlace = struct.unpack(">IIBBBBB", chunks[b"IHDR"][0])
    assert (depth, interlace) == (8, 0) and color in (2, 6)
    channels = 3 if color == 2 else 4
    raw = zlib.decompress(b"".join(chunks[b"IDAT"]))
    stride, rows, previous = width * channels, [], bytearray(width * channels)
    for row in range(height):
        kind, line = raw[row * (stride + 1)], bytearray(raw[row * (stride + 1) + 1 : (row + 1) * (stride + 1)])
        for index in range(stride):
            left = line[index - channels] if index >= channels else 0
            up, corner = previous[index], previous[index - channels] if index >= channels else 0
            if kind == 1:
                line[index] = (line[index] + left) & 0xFF
            elif kind == 2:  # noqa: PLR2004
                line[index] = (line[index] + up) & 0xFF
            elif kind == 3:  # noqa: PLR2004
                line[index] = (line[index] + (left + up) // 2) & 0xFF
            elif kind == 4:  # noqa: PLR2004
                guess = left + up - corner
                nearest = min((abs(guess - left), 0, left), (abs(guess - up), 1, up), (abs(guess - corner), 2, corner))
                line[index] = (line[index] + nearest[2]) & 0xFF
        rows.append(bytes(line))
        previous = line
    return width, height, channels, rows


def count_color(image, rgb, tolerance=24):
    width, _height, channels, rows = image
    return sum(
        1
        for row in rows
        for column in range(width)
        if all(abs(row[column * channels + k] - rgb[k]) <= tolerance for k in range(3))
    )


def test_the_page_in_headless_chromium_has_the_charts_and_the_events(canary_page, tmp_path):
    """Chromium opens the page as a person would; the test reads the DOM it built and looks at the
    screenshot's pixels, and keeps the screenshot in tests/output/ for people to look at."""
    chromium = debian_tool("chromium", "chromium")
    document, page = canary_page
    flags = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path}",
    ]
    dom = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120, check=True)
    elements = Elements(dom.stdout)
    charts = elements.find("svg", "chart")
    assert [chart["id"] for chart in charts] == ["chart-error_ratio", "chart-p95_ms"]
    gates = document["gates"]
    series = [len(gate["evidence"]["series"]) for gate in gates]
    assert all(count >= 3 for count in series), series  # noqa: PLR2004
    # Per chart: a shaded window per gate with its verdict, a line per group per gate with one
    # point per scrape after the first, and each gate's threshold.
    assert [stage["data-verdict"] for stage in elements.find("rect", "stage")] == ["promote", "rollback"] * 2
    for group in ("canary", "baseline"):
        assert [int(line["data-points"]) for line in elements.find("polyline", group)] == series * 2
    thresholds = [float(line["data-value"]) for line in elements.find("line", "threshold")]
    assert (
        thresholds
        == [gates[0]["evidence"]["thresholds"]["max_error_ratio"]] * 2
        + [gates[0]["evidence"]["thresholds"]["max_p95_ms"]] * 2
    )
    # The bad canary's last point is above the error threshold, the good one's below.
    assert gates[1]["evidence"]["series"][-1]["canary"]["error_ratio"] > thresholds[0] > 0
    assert gates[0]["evidence"]["series"][-1]["canary"]["error_ratio"] == 0
    # Every event of the timeline is a row of the events table, the gates and the rollback among them.
    rows = elements.find("tr", "event")
    assert len(rows) == len(document["timeline"])
    assert len(elements.find("tr", "event-gate")) == 2 and len(elements.find("tr", "event-custom")) == 1
    assert any(cell.startswith("canary rolled back: rollback") for cell in elements.cells)
    assert len(elements.find("rect", "mark-gate")) == 2
    # What a person sees: the screenshot has the canary's, the baseline's and the threshold's colours.
    output = REPO / "tests" / "output"
    output.mkdir(parents=True, exist_ok=True)
    screenshot = output / "deploy-report-canary.png"
    screenshot.unlink(missing_ok=True)
    subprocess.run(
        [*flags, f"--screenshot={screenshot}", "--window-size=1100,1500", page.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    image = png_pixels(screenshot)
    for name, color in (*deploy_report.SERIES_COLORS.items(), ("threshold", deploy_report.THRESHOLD_COLOR)):
        rgb = bytes.fromhex(color[1:])
        assert count_color(image, rgb) > 100, f"no {name} line ({color}) in {screenshot}"  # noqa: PLR2004
