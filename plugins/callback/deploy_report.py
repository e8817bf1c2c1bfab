# Copyright (c) aistack.fleet maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
name: deploy_report
type: notification
short_description: Write a JSON, a Markdown and an HTML timeline of every playbook run
version_added: 0.1.0
description:
  - Records, for every playbook run, the plays and their C(serial) batches, every task on every
    host with its status and timing, the verdicts and evidence of the P(aistack.fleet.health_gate#module)
    and C(aistack.fleet.slo_gate) gates, the traffic changes made with P(aistack.fleet.lb_member#module),
    the custom milestones a playbook reports, and the final statistics per host.
  - When the playbook ends it writes C(<playbook stem>-<UTC start, YYYYmmddTHHMMSSZ>.json), C(.md)
    and C(.html) into O(report_dir), and the same content as C(latest.json), C(latest.md) and
    C(latest.html).
  - The HTML file is one self-contained page (inline styles and SVG, no script, nothing fetched)
    with the run, a timeline of plays, batches and events, and for the compare-mode
    C(aistack.fleet.slo_gate) verdicts charts of the canary's and the baseline's error ratio and
    p95 latency over time, each gate's window shaded with its verdict and its thresholds drawn in.
  - The outcome of the run is V(failed) when any host ended with a failed or unreachable task,
    otherwise V(rolled_back) when a C(rescue) section handled a failure, a task tagged with one of
    O(rollback_tags) ran, or a custom event of kind V(rollback) was reported, otherwise V(succeeded).
  - A task result can add its own milestone to the timeline with a dictionary under the key
    C(deploy_report_event), at the top of the result (C(ansible.builtin.debug) with C(var)), in
    C(ansible_facts) (C(ansible.builtin.set_fact)) or in C(msg) (C(ansible.builtin.debug) with C(msg)).
  - Extra variables are never written. Results hidden by C(no_log) are not copied, and the
    arguments of C(no_log) tasks are never written.
  - The report is written when the playbook ends; a run that is interrupted leaves no report.
author:
  - aistack.fleet maintainers (@aistack)
requirements:
  - Enabled in the configuration, for example C(callbacks_enabled = aistack.fleet.deploy_report)
    in the C([defaults]) section of C(ansible.cfg), or C(ANSIBLE_CALLBACKS_ENABLED=aistack.fleet.deploy_report).
options:
  report_dir:
    description:
      - The directory the reports are written to. It is created (mode C(0755)) when missing;
        the reports are written with mode C(0644).
      - A relative path is relative to the current working directory, or to the directory of the
        configuration file when it is set there.
    type: path
    default: ./deploy-reports
    env:
      - name: AISTACK_DEPLOY_REPORT_DIR
    ini:
      - section: aistack_deploy_report
        key: report_dir
  rollback_tags:
    description:
      - Tasks with any of these tags mark the run as rolled back when they run (are not skipped).
    type: list
    elements: str
    default: [rollback]
    env:
      - name: AISTACK_DEPLOY_REPORT_ROLLBACK_TAGS
    ini:
      - section: aistack_deploy_report
        key: rollback_tags
  timeline_tasks:
    description:
      - Which task results appear in the timeline, besides plays, batches, gates, traffic changes
        and custom events. Every task result is listed per host in any case.
      - V(changed) lists changed, failed, rescued and unreachable results; V(failed) only failed,
        rescued and unreachable ones; V(all) every result; V(none) no task result.
    type: str
    choices: [all, changed, failed, none]
    default: changed
    env:
      - name: AISTACK_DEPLOY_REPORT_TIMELINE_TASKS
    ini:
      - section: aistack_deploy_report
        key: timeline_tasks
"""

EXAMPLES = r"""
# ansible.cfg
# [defaults]
# callbacks_enabled = aistack.fleet.deploy_report
#
# [aistack_deploy_report]
# report_dir = /var/log/aistack/deploy-reports

# A milestone of a playbook, written to the timeline as it is:
- name: Record the switch to green
  ansible.builtin.set_fact:
    deploy_report_event:
      kind: switch
      pool: app
      active_label: green
"""

import datetime  # noqa: E402
import html  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402

from ansible import context  # noqa: E402
from ansible.module_utils.common.text.converters import to_bytes  # noqa: E402
from ansible.playbook.block import Block  # noqa: E402
from ansible.plugins.callback import CallbackBase  # noqa: E402
from ansible.release import __version__ as ansible_version  # noqa: E402

HEALTH_GATE = "aistack.fleet.health_gate"
SLO_GATE = "aistack.fleet.slo_gate"
LB_MEMBER = "aistack.fleet.lb_member"
GATES = {HEALTH_GATE: HEALTH_GATE, "health_gate": HEALTH_GATE, SLO_GATE: SLO_GATE, "slo_gate": SLO_GATE}
TRAFFIC = {LB_MEMBER, "lb_member"}
TRAFFIC_ARGS = ("pool", "member", "state", "weight", "backup", "active_label", "label_weights")
EVENT_KEY = "deploy_report_event"
SCHEMA_VERSION = 1
SLO_GROUP_KEYS = ("requests", "errors", "error_ratio", "p95_ms", "p99_ms")
SLO_BUDGET_KEYS = ("consumed_pct", "remaining_pct", "state")
PASSING_VERDICTS = {"passed", "promote", "allow"}
CELL_LIMIT = 240
TIMELINE_STATUSES = {
    "all": {"ok", "changed", "failed", "rescued", "unreachable", "skipped"},
    "changed": {"changed", "failed", "rescued", "unreachable"},
    "failed": {"failed", "rescued", "unreachable"},
    "none": set(),
}
STATS_KEYS = (
    ("ok", "ok"),
    ("changed", "changed"),
    ("failed", "failures"),
    ("unreachable", "unreachable"),
    ("skipped", "skipped"),
    ("rescued", "rescued"),
    ("ignored", "ignored"),
)


class Clock:
    """Wall-clock instants for the report, monotonic seconds for the durations."""

    def __init__(self):
        self.wall = time.time()
        self.mono = time.monotonic()

    @property
    def iso(self):
        return iso8601(self.wall)

    def seconds_since(self, start):
        return round(max(0.0, self.mono - start.mono), 3)


def iso8601(timestamp):
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def stamp(timestamp):
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).strftime("%Y%m%dT%H%M%SZ")


def is_censored(result, task_fields=None, task=None):
    """Whether no_log hid this result (or would have): nothing of it may be copied."""
    if not isinstance(result, dict):
        return False
    if result.get("_ansible_no_log") or "censored" in result:
        return True
    if task_fields and task_fields.get("no_log") is True:
        return True
    return task is not None and task.no_log is True


def canonical_action(task):
    """The task's action as written, and resolved to a FQCN when Ansible did."""
    return {name for name in (getattr(task, "resolved_action", None), task.action) if name}


def custom_events(result):
    """The dictionaries under `deploy_report_event` at the top of a result, in ansible_facts or in msg."""
    found = []
    for source in (result, result.get("ansible_facts"), result.get("msg")):
        if not isinstance(source, dict) or EVENT_KEY not in source:
            continue
        value = source[EVENT_KEY]
        for event in value if isinstance(value, list) else [value]:
            if isinstance(event, dict):
                found.append(event)
    return found


def rescued_by_block(task):
    """Whether a failure of this task is handled by the rescue section of an enclosing block."""
    current, parent = task, getattr(task, "_parent", None)
    while parent is not None:
        if isinstance(parent, Block) and parent.rescue and any(child._uuid == current._uuid for child in parent.block):
            return True
        current, parent = parent, getattr(parent, "_parent", None)
    return False


def human_duration(seconds):
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {rest:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min {rest:02d} s"


def one_line(value, limit=CELL_LIMIT):
    """A value as one line of text (JSON when it is no string), cut to a readable length."""
    if value is None:
        return ""
    if not isinstance(value, str):
        value = json.dumps(value, sort_keys=True, default=str)
    text = " ".join(value.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def cell(value, limit=CELL_LIMIT):
    """One Markdown table cell: a single line, pipes escaped, cut to a readable length."""
    return one_line(value, limit).replace("\\", "\\\\").replace("|", "\\|")


def compact(data, limit=6):
    """A few `key=value` pairs of the scalar values of a dictionary, two levels deep."""
    pairs = []
    if not isinstance(data, dict):
        return ""
    for key, value in data.items():
        if isinstance(value, dict):
            pairs.extend(
                f"{key}.{sub}={sub_value}"
                for sub, sub_value in value.items()
                if isinstance(sub_value, (str, int, float, bool)) or sub_value is None
            )
        elif isinstance(value, (str, int, float, bool)) or value is None:
            pairs.append(f"{key}={value}")
    return ", ".join(pairs[:limit]) + (", ..." if len(pairs) > limit else "")


class Report:
    """What one playbook run did, gathered from the callback events."""

    def __init__(self, playbook_path, rollback_tags, timeline_tasks):
        self.started = Clock()
        self.ended = None
        self.playbook_path = playbook_path
        self.playbook = os.path.basename(playbook_path)
        self.rollback_tags = set(rollback_tags)
        self.timeline_statuses = TIMELINE_STATUSES.get(timeline_tasks, TIMELINE_STATUSES["changed"])
        self.plays = []
        self.play_uuid = None
        self.hosts = {}
        self.gates = []
        self.traffic = []
        self.timeline = []
        self.stats = {}
        self.task_started = {}
        self.host_started = {}
        self.items_seen = set()
        self.pending = {}
        self.rescues = []
        self.rollback_tasks = []
        self.rollback_events = []

    # --- plays and batches ---------------------------------------------------------------------

    @property
    def play(self):
        return self.plays[-1] if self.plays else None

    @property
    def batch(self):
        return self.play["batches"][-1] if self.play and self.play["batches"] else None

    def close_batch(self, now):
        batch = self.batch
        if batch is not None and batch["ended"] is None:
            batch["ended"] = now.iso
            batch["duration"] = now.seconds_since(batch.pop("_clock"))
            if self.play["serial"]:
                self.add_timeline(now, None, "batch_end", f"{self.play['name']}: batch {batch['number']} done")

    def close_play(self, now):
        play = self.play
        if play is not None and play["ended"] is None:
            self.close_batch(now)
            play["ended"] = now.iso
            play["duration"] = now.seconds_since(play.pop("_clock"))
            self.add_timeline(now, None, "play_end", play["name"])

    def play_start(self, play, batch_hosts, all_hosts):
        now = Clock()
        if play._uuid != self.play_uuid:
            self.close_play(now)
            self.play_uuid = play._uuid
            serial = list(play.serial or [])
            self.plays.append(
                {
                    "name": play.get_name(),
                    "hosts_pattern": list(play.hosts) if isinstance(play.hosts, list) else [play.hosts],
                    "hosts": list(all_hosts),
                    "serial": serial or None,
                    "started": now.iso,
                    "ended": None,
                    "duration": None,
                    "batches": [],
                    "_clock": now,
                }
            )
            self.add_timeline(now, None, "play_start", f"{self.play['name']} on {', '.join(all_hosts) or 'no host'}")
        else:
            self.close_batch(now)
        for host in batch_hosts:
            if host not in self.play["hosts"]:
                self.play["hosts"].append(host)
        self.play["batches"].append(
            {
                "number": len(self.play["batches"]) + 1,
                "hosts": list(batch_hosts),
                "started": now.iso,
                "ended": None,
                "duration": None,
                "_clock": now,
            }
        )
        if self.play["serial"]:
            detail = f"{self.play['name']}: batch {self.batch['number']} on {', '.join(batch_hosts) or 'no host'}"
            self.add_timeline(now, None, "batch_start", detail)

    # --- tasks ---------------------------------------------------------------------------------

    def task_start(self, task, handler):
        self.task_started[task._uuid] = (Clock(), handler)

    def host_start(self, host, task):
        self.host_started[(host, task._uuid)] = Clock()

    def add_timeline(self, now, host, event, detail, **extra):
        entry = {"time": now.iso, "host": host, "event": event, "detail": detail}
        entry.update(extra)
        self.timeline.append(entry)
        return entry

    def task_result(self, result, status, ignored=False):
        """A task's final result for one host."""
        now = Clock()
        host = result.host.get_name()
        task = result.task
        res = result.result
        key = (host, task._uuid)
        censored = is_censored(res, result.task_fields, task)
        if status == "failed" and not ignored and rescued_by_block(task):
            status = "rescued"
        entry = self.task_entry(result, status, now)
        if ignored:
            entry["ignored"] = True
        if censored:
            entry["censored"] = True
        elif status in {"failed", "rescued", "unreachable"} and res.get("msg"):
            entry["msg"] = res["msg"]
        self.hosts.setdefault(host, {"tasks": []})["tasks"].append(entry)

        if status != "skipped" and self.rollback_tags & set(task.tags or []):
            self.rollback_tasks.append(f"{host}: {entry['name']}")
        if status == "rescued":
            self.rescues.append(f"{host}: {entry['name']}")

        if key in self.items_seen:
            self.items_seen.discard(key)
        elif censored:
            self.extract_censored(result, now)
        elif status != "skipped":
            self.extract_final(result, now)
        for pending in self.pending.pop(key, []):
            pending["task_status"] = status

        if status in self.timeline_statuses:
            detail = entry["name"] + (" (ignored)" if ignored else "")
            detail += f": {cell(entry['msg'], 160)}" if "msg" in entry else ""
            self.add_timeline(now, host, "task", detail, status=status, task=entry["name"])

    def extract_final(self, result, now):
        """Gates, traffic and events of a final result whose loop items (if any) were not reported one by one."""
        res = result.result
        if not isinstance(res.get("results"), list):
            self.extract(result, res, now)
            return
        for item in res["results"]:
            if isinstance(item, dict) and not is_censored(item) and not item.get("skipped"):
                self.extract(result, item, now, delegated=None)

    def task_entry(self, result, status, now):
        """The per-host record of a task: where it ran, how it ended, when and how long."""
        host = result.host.get_name()
        task = result.task
        started = self.host_started.pop((host, task._uuid), None)
        task_clock, handler = self.task_started.get(task._uuid, (now, False))
        started = started or task_clock
        entry = {
            "play": self.play["name"] if self.play else None,
            "batch": self.batch["number"] if self.batch else None,
            "name": result.task_name or task.get_name(),
            "action": task.action,
            "status": status,
            "changed": bool(result.result.get("changed")),
            "started": started.iso,
            "ended": now.iso,
            "duration": now.seconds_since(started),
        }
        delegated = self.delegated_host(result)
        if delegated and delegated != host:
            entry["delegated_to"] = delegated
        if handler:
            entry["handler"] = True
        return entry

    def item_result(self, result):
        """One loop item: gates, traffic and custom events are taken from items, as they are delegated one by one."""
        host = result.host.get_name()
        key = (host, result.task._uuid)
        self.items_seen.add(key)
        if is_censored(result.result, result.task_fields, result.task):
            self.extract_censored(result, Clock())
            return
        self.extract(result, result.result, Clock())

    def extract_censored(self, result, now):
        """A gate or traffic change whose result no_log hid: listed, with nothing of its result or arguments."""
        origin = self.origin(result, now, self.delegated_host(result))
        actions = canonical_action(result.task)
        module = next((GATES[action] for action in actions if action in GATES), None)
        if module is not None:
            entry = dict(origin, module=module, verdict=None, censored=True, task_status=None)
            self.gates.append(entry)
            detail = f"{module.rsplit('.', 1)[-1]} (result hidden by no_log): {origin['task']}"
        elif actions & TRAFFIC:
            lb = origin["delegated_to"] or origin["host"]
            entry = dict(origin, lb=lb, changed=bool(result.result.get("changed")), censored=True, task_status=None)
            self.traffic.append(entry)
            detail = f"{lb}: change hidden by no_log"
        else:
            return
        self.pending.setdefault((origin["host"], result.task._uuid), []).append(entry)
        event = "gate" if module else "traffic"
        self.timeline.append({"time": origin["time"], "host": origin["host"], "event": event, "detail": detail})

    @staticmethod
    def origin(result, now, delegated):
        """Where and when a gate, traffic change or event happened."""
        host = result.host.get_name()
        return {
            "time": now.iso,
            "host": host,
            "delegated_to": delegated if delegated and delegated != host else None,
            "task": result.task_name or result.task.get_name(),
        }

    @staticmethod
    def delegated_host(result):
        delegate = result.task_fields.get("delegate_to") if result.task_fields else None
        if delegate is None:
            delegate = result.task.delegate_to
        if isinstance(delegate, str) and "{{" not in delegate and "{%" not in delegate:
            return delegate
        return None

    def extract(self, result, res, now, delegated=False):
        """Gates, traffic changes and custom events in a result that no_log did not hide."""
        host = result.host.get_name()
        task = result.task
        if delegated is False:
            delegated = self.delegated_host(result)
        origin = self.origin(result, now, delegated)
        entry = None
        for action in canonical_action(task):
            if action in GATES:
                entry = self.gate(GATES[action], origin, res)
                break
            if action in TRAFFIC:
                entry = self.lb_change(origin, res, result.task.args)
                break
        if entry is not None:
            self.pending.setdefault((host, task._uuid), []).append(entry)
        for event in custom_events(res):
            kind = event.get("kind")
            if kind == "rollback":
                self.rollback_events.append(f"{host}: {origin['task']}")
            detail = event.get("msg") or event.get("message") or event.get("detail")
            if not isinstance(detail, str):
                detail = json.dumps(event, sort_keys=True, default=str)
            self.add_timeline(now, host, "custom", detail, kind=kind, task=origin["task"], data=event)

    def gate(self, module, origin, res):
        """A gate's verdict and evidence."""
        failed = bool(res.get("failed"))
        entry = dict(origin, module=module)
        if module == HEALTH_GATE:
            passed = res.get("passed")
            entry["passed"] = passed
            entry["verdict"] = {True: "passed", False: "failed"}.get(passed, "error" if failed else None)
            entry["msg"] = res.get("msg")
            entry["targets"] = res.get("targets") or []
        else:
            verdict = res.get("verdict")
            entry["verdict"] = verdict if verdict is not None else ("error" if failed else None)
            entry["msg"] = res.get("msg")
            entry["evidence"] = res.get("evidence")
            entry["reasons"] = res.get("reasons") or []
        entry["task_status"] = "failed" if failed else "ok"
        self.gates.append(entry)
        detail = f"{module.rsplit('.', 1)[-1]} {entry['verdict']}: {origin['task']}"
        self.timeline.append({"time": origin["time"], "host": origin["host"], "event": "gate", "detail": detail})
        self.timeline[-1]["verdict"] = entry["verdict"]
        return entry

    def lb_change(self, origin, res, task_args):
        """A change of the backends of a load balancer, with the arguments it was given."""
        invocation = res.get("invocation") if isinstance(res.get("invocation"), dict) else {}
        args = invocation.get("module_args") if isinstance(invocation.get("module_args"), dict) else None
        if args is None:
            args = {
                name: value
                for name, value in (task_args or {}).items()
                if not (isinstance(value, str) and ("{{" in value or "{%" in value))
            }
        entry = dict(origin, lb=origin["delegated_to"] or origin["host"])
        for name in TRAFFIC_ARGS:
            entry[name] = args.get(name)
        entry["changed"] = bool(res.get("changed"))
        entry["reloaded"] = res.get("reloaded")
        entry["task_status"] = "failed" if res.get("failed") else "ok"
        if res.get("failed") and res.get("msg"):
            entry["msg"] = res["msg"]
        self.traffic.append(entry)
        detail = f"{entry['lb']}: {traffic_change(entry)}"
        self.timeline.append({"time": origin["time"], "host": origin["host"], "event": "traffic", "detail": detail})
        self.timeline[-1]["lb"] = entry["lb"]
        return entry

    # --- the end -------------------------------------------------------------------------------

    def finish(self, stats, before):
        """Close the run. Ansible counts over every playbook of one command: `before` holds the
        counts at the end of the previous playbook, and the counts now are returned for the next."""
        now = Clock()
        self.close_play(now)
        self.ended = now
        totals = {}
        for host in sorted(stats.processed):
            summary = stats.summarize(host)
            totals[host] = {name: summary.get(key, 0) for name, key in STATS_KEYS}
            earlier = before.get(host, {})
            counts = {name: totals[host][name] - earlier.get(name, 0) for name, _key in STATS_KEYS}
            if any(counts.values()) or host in self.hosts:
                self.stats[host] = counts
                self.hosts.setdefault(host, {"tasks": []})
        return totals

    def outcome(self):
        broken = sorted(host for host, counts in self.stats.items() if counts["failed"] or counts["unreachable"])
        if broken:
            return "failed", f"failed or unreachable tasks on {', '.join(broken)}"
        reasons = []
        if self.rescues:
            reasons.append("a rescue section handled " + "; ".join(self.rescues))
        if self.rollback_tasks:
            reasons.append("rollback tasks ran (" + "; ".join(self.rollback_tasks) + ")")
        if self.rollback_events:
            reasons.append("rollback events were reported by " + "; ".join(self.rollback_events))
        if reasons:
            return "rolled_back", ", ".join(reasons)
        return "succeeded", "every host finished without failures"

    def document(self):
        outcome, reason = self.outcome()
        cli = getattr(context, "CLIARGS", None) or {}
        run = {
            "playbook": self.playbook,
            "playbook_path": self.playbook_path,
            "started": self.started.iso,
            "ended": self.ended.iso,
            "duration": self.ended.seconds_since(self.started),
            "outcome": outcome,
            "outcome_reason": reason,
            "rollback": {
                "rescued_tasks": self.rescues,
                "rollback_tasks": self.rollback_tasks,
                "rollback_events": self.rollback_events,
            },
            "check_mode": bool(cli.get("check", False)),
            "diff_mode": bool(cli.get("diff", False)),
            "limit": cli.get("subset"),
            "tags": sorted(cli.get("tags") or []),
            "skip_tags": sorted(cli.get("skip_tags") or []),
            "ansible_version": ansible_version,
        }
        return {
            "schema_version": SCHEMA_VERSION,
            "generator": "aistack.fleet.deploy_report",
            "run": run,
            "plays": self.plays,
            "hosts": {host: self.hosts[host] for host in sorted(self.hosts)},
            "gates": self.gates,
            "traffic": self.traffic,
            "timeline": self.timeline,
            "stats": self.stats,
        }


def traffic_change(entry):
    if entry.get("censored"):
        return "(hidden by no_log)"
    parts = [f"pool {entry['pool']}"] if entry.get("pool") else []
    if entry.get("member"):
        parts.append(f"member {entry['member']}")
    for name in ("state", "weight", "backup", "active_label", "label_weights"):
        if entry.get(name) is not None:
            parts.append(f"{name}={cell(entry[name], 60)}")
    return " ".join(parts) or "render"


def gate_numbers(gate):
    """The key numbers of a gate verdict, for a Markdown cell."""
    if gate.get("censored"):
        return f"(hidden by no_log; task {gate.get('task_status')})"
    if gate["module"] == HEALTH_GATE:
        targets = []
        for target in gate.get("targets") or []:
            if not isinstance(target, dict):
                continue
            verdict = "ok" if target.get("passed") else "FAIL"
            targets.append(
                f"{target.get('name') or target.get('url')}: {verdict}, {target.get('attempts')} attempts, "
                f"last HTTP {target.get('last_status')}"
            )
        return "; ".join(targets)
    evidence = gate.get("evidence") if isinstance(gate.get("evidence"), dict) else {}
    parts = []
    for group, figures in sorted((evidence.get("groups") or {}).items()):
        if isinstance(figures, dict):
            numbers = ", ".join(f"{key}={figures[key]}" for key in SLO_GROUP_KEYS if figures.get(key) is not None)
            parts.append(f"{group}: {numbers}")
    if isinstance(evidence.get("budget"), dict):
        budget = evidence["budget"]
        parts.append("budget: " + ", ".join(f"{key}={budget[key]}" for key in SLO_BUDGET_KEYS if key in budget))
    if not parts and evidence:
        parts.append(compact(evidence))
    parts.extend(str(reason) for reason in gate.get("reasons") or [])
    return "; ".join(part for part in parts if part)


def markdown(document):
    run = document["run"]
    lines = [f"# Deploy report: {run['playbook']} ({run['outcome']})", ""]
    gates = document["gates"]
    passed = sum(1 for gate in gates if gate["verdict"] in PASSING_VERDICTS)
    lines += [
        "| Field | Value |",
        "|---|---|",
        f"| Playbook | `{cell(run['playbook'])}` |",
        f"| Outcome | **{run['outcome']}**: {cell(run['outcome_reason'])} |",
        f"| Started (UTC) | {run['started']} |",
        f"| Ended (UTC) | {run['ended']} |",
        f"| Duration | {human_duration(run['duration'])} |",
        f"| Check mode | {'yes' if run['check_mode'] else 'no'} |",
        f"| Limit | {cell(run['limit']) or 'none'} |",
        f"| Plays | {len(document['plays'])} |",
        f"| Hosts | {len(document['stats'])} |",
        f"| Gates | {len(gates)} ({passed} passed, promoted or allowed) |",
        f"| Traffic changes | {len(document['traffic'])} |",
        "",
        "## Plays",
        "",
        "| Play | Hosts | Batches | Started (UTC) | Duration |",
        "|---|---|---|---|---|",
    ]
    for play in document["plays"]:
        lines.append(
            f"| {cell(play['name'])} | {cell(', '.join(play['hosts']))} | {len(play['batches'])} | "
            f"{play['started']} | {human_duration(play['duration'])} |"
        )
    for play in document["plays"]:
        if not play["serial"]:
            continue
        lines += [
            "",
            f"### Batches of {cell(play['name'])} (serial {cell(play['serial'])})",
            "",
            "| Batch | Hosts | Started (UTC) | Duration |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {batch['number']} | {cell(', '.join(batch['hosts']))} | {batch['started']} | "
            f"{human_duration(batch['duration'])} |"
            for batch in play["batches"]
        ]
    lines += ["", "## Timeline", "", "| Time (UTC) | Host | Event | Detail |", "|---|---|---|---|"]
    for entry in document["timeline"]:
        event = entry["event"]
        if event == "task":
            event = f"task {entry['status']}"
        elif event == "custom" and entry.get("kind"):
            event = f"custom: {entry['kind']}"
        lines.append(f"| {entry['time'][11:]} | {cell(entry['host'])} | {cell(event)} | {cell(entry['detail'])} |")
    lines += ["", "## Gates", ""]
    if gates:
        lines += ["| Time (UTC) | Host | Gate | Task | Verdict | Key numbers |", "|---|---|---|---|---|---|"]
        for gate in gates:
            host = gate["host"] + (f" -> {gate['delegated_to']}" if gate.get("delegated_to") else "")
            verdict = gate["verdict"] or ("hidden" if gate.get("censored") else "unknown")
            lines.append(
                f"| {gate['time'][11:]} | {cell(host)} | {gate['module'].rsplit('.', 1)[-1]} | {cell(gate['task'])} | "
                f"**{cell(verdict)}** | {cell(gate_numbers(gate) or gate.get('msg'), 400)} |"
            )
    else:
        lines.append("No gate ran.")
    if document["traffic"]:
        lines += [
            "",
            "## Traffic",
            "",
            "| Time (UTC) | Load balancer | Change | Changed | Task |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {entry['time'][11:]} | {cell(entry['lb'])} | {cell(traffic_change(entry))} | "
            f"{'yes' if entry['changed'] else 'no'} | {cell(entry['task'])} |"
            for entry in document["traffic"]
        ]
    lines += [
        "",
        "## Final stats",
        "",
        "| Host | ok | changed | failed | unreachable | skipped | rescued | ignored |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for host, counts in document["stats"].items():
        lines.append(f"| {cell(host)} | " + " | ".join(str(counts[name]) for name, _key in STATS_KEYS) + " |")
    return "\n".join(lines) + "\n"


# --- the page: one self-contained HTML file (inline CSS and SVG, no script, no external asset) ---

PAGE_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1040px; color: #1d1d1f; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; }
table { border-collapse: collapse; width: 100%; margin: 8px 0; font-size: 13px; }
th, td { border: 1px solid #d0d0d5; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #f2f2f5; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.outcome { display: inline-block; padding: 2px 10px; border-radius: 10px; color: #fff; font-weight: 600; }
.succeeded { background: #1a7f37; } .rolled_back { background: #b35900; } .failed { background: #c00000; }
.verdict-pass { color: #1a7f37; font-weight: 600; } .verdict-fail { color: #c00000; font-weight: 600; }
svg { display: block; margin: 6px 0 2px; } svg text { font: 11px system-ui, sans-serif; fill: #333; }
.legend span { display: inline-block; margin-right: 14px; font-size: 12px; }
.legend i { display: inline-block; width: 18px; height: 3px; vertical-align: middle; margin-right: 4px; }
"""
# Canary and baseline series, the thresholds, and the verdict colours of the timeline's markers.
SERIES_COLORS = {"canary": "#e66100", "baseline": "#1f5fbf"}
THRESHOLD_COLOR = "#c00000"
MARK_COLORS = {"pass": "#1a7f37", "fail": "#c00000", "traffic": "#6f42c1", "custom": "#0a7c86", "task": "#8a8a8a"}
CHARTS = (
    ("error_ratio", "Error ratio", "max_error_ratio", lambda value: f"{value * 100:.2f} %"),
    ("p95_ms", "p95 latency", "max_p95_ms", lambda value: f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"),
)
# The charts' size and margins, in pixels.
CHART_WIDTH = 1000
CHART_HEIGHT = 230
CHART_LEFT = 64
CHART_RIGHT = 16
CHART_TOP = 24
CHART_BOTTOM = 30


def seconds_of(iso, origin):
    """Seconds from origin (a datetime) to an ISO 8601 time of the report."""
    moment = datetime.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.UTC)
    return (moment - origin).total_seconds()


def time_ticks(duration):
    """Round seconds for a time axis of this length: at most seven marks, 0 included."""
    steps = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)
    step = next((step for step in steps if duration / step <= 6), 3600 * -(-duration // 21600))
    return [step * number for number in range(int(duration // step) + 1)]


def html_text(value, limit=CELL_LIMIT):
    """A table cell's text: one line, cut to a readable length, escaped."""
    return html.escape(one_line(value, limit))


def html_table(head, rows, numeric=()):
    """A table of escaped cells; rows are (css class, [cells]) with cells already escaped."""
    out = ["<table><tr>" + "".join(f"<th>{html.escape(name)}</th>" for name in head) + "</tr>"]
    for css, cells in rows:
        tds = "".join(
            f"<td{' class=num' if index in numeric else ''}>{value}</td>" for index, value in enumerate(cells)
        )
        out.append(f'<tr class="{css}">{tds}</tr>')
    return "\n".join(out) + "</table>"


def gate_windows(document, origin):
    """The compare-mode slo_gate verdicts as chart windows: start, end, verdict, thresholds, points.

    A point is (seconds since the run began, {group: numbers}); evidence.series gives one per
    scrape, otherwise (Prometheus) the window's result is one point at its end.
    """
    windows = []
    for gate in document["gates"]:
        evidence = gate.get("evidence") if isinstance(gate.get("evidence"), dict) else {}
        if gate["module"] != SLO_GATE or evidence.get("mode") != "compare":
            continue
        if not isinstance(evidence.get("groups"), dict):
            continue
        end = seconds_of(gate["time"], origin)
        length = evidence.get("decided_after") or evidence.get("window_seconds") or 0
        start = max(0.0, end - float(length))
        series = [point for point in evidence.get("series") or [] if isinstance(point, dict)]
        if series:
            points = [(start + float(point.get("seconds") or 0), point) for point in series]
        else:
            points = [(end, evidence["groups"])]
        windows.append(
            {"start": start, "end": end, "verdict": gate.get("verdict"), "task": gate.get("task"),
             "thresholds": evidence.get("thresholds") or {}, "points": points}
        )  # fmt: skip
    return windows


def svg_chart(chart, windows, duration):
    """One chart (of CHARTS) over the whole run: a line per group per gate window, its threshold dashed."""
    key, title, limit_key, label = chart
    width = CHART_WIDTH - CHART_LEFT - CHART_RIGHT
    height = CHART_HEIGHT - CHART_TOP - CHART_BOTTOM
    values = [
        numbers[group][key]
        for window in windows
        for _moment, numbers in window["points"]
        for group in SERIES_COLORS
        if isinstance(numbers.get(group), dict) and isinstance(numbers[group].get(key), (int, float))
    ]
    limits = [
        window["thresholds"][limit_key]
        for window in windows
        if isinstance(window["thresholds"].get(limit_key), (int, float))
    ]
    top = max(values + limits + [0.0]) * 1.15 or 1.0

    def x(moment):
        return CHART_LEFT + width * min(max(moment, 0.0), duration) / duration

    def y(value):
        return CHART_TOP + height * (1 - min(value, top) / top)

    parts = [
        f'<svg class="chart" id="chart-{key}" width="{CHART_WIDTH}" height="{CHART_HEIGHT}" '
        f'viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}" role="img" aria-label="{html.escape(title)} over time">',
        f'<text x="{CHART_LEFT}" y="14" font-weight="600">{html.escape(title)}</text>',
        f'<rect x="{CHART_LEFT}" y="{CHART_TOP}" width="{width}" height="{height}" fill="#fafafa" stroke="#c8c8cc"/>',
    ]
    for step in range(5):
        value = top * step / 4
        parts.append(
            f'<text x="{CHART_LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end">{html.escape(label(value))}</text>'
        )
    parts.extend(
        f'<text x="{x(moment):.1f}" y="{CHART_HEIGHT - 10}" text-anchor="middle">{moment:g} s</text>'
        for moment in time_ticks(duration)
    )
    for number, window in enumerate(windows, 1):
        verdict = window["verdict"] or "none"
        tone = "pass" if verdict in PASSING_VERDICTS else "fail"
        left, right = x(window["start"]), max(x(window["end"]), x(window["start"]) + 2)
        parts.append(
            f'<rect class="stage" data-verdict="{html.escape(verdict)}" x="{left:.1f}" y="{CHART_TOP}" '
            f'width="{right - left:.1f}" height="{height}" fill="{MARK_COLORS[tone]}" fill-opacity="0.07">'
            f"<title>gate {number}: "
            f"{html.escape(str(window['task']))} ({html.escape(verdict)})</title></rect>"
        )
        parts.append(f'<text x="{left + 3:.1f}" y="{CHART_TOP + 12}">{number}: {html.escape(verdict)}</text>')
        limit = window["thresholds"].get(limit_key)
        if isinstance(limit, (int, float)):
            parts.append(
                f'<line class="threshold" data-value="{limit}" x1="{left:.1f}" x2="{right:.1f}" y1="{y(limit):.1f}" '
                f'y2="{y(limit):.1f}" stroke="{THRESHOLD_COLOR}" stroke-width="2" stroke-dasharray="6 4">'
                f"<title>threshold {html.escape(label(limit))}</title></line>"
            )
        # The baseline first, so that the canary's line stays visible where the two meet.
        for group, color in reversed(SERIES_COLORS.items()):
            coordinates = [
                (x(moment), y(numbers[group][key]))
                for moment, numbers in window["points"]
                if isinstance(numbers.get(group), dict) and isinstance(numbers[group].get(key), (int, float))
            ]
            if not coordinates:
                continue
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py in coordinates)
            parts.append(
                f'<polyline class="series {group}" data-points="{len(coordinates)}" points="{path}" fill="none" '
                f'stroke="{color}" stroke-width="2.5"/>'
            )
            parts.extend(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{color}"/>' for px, py in coordinates)
    parts.append("</svg>")
    return "\n".join(parts)


def svg_timeline(document, origin, duration):
    """Plays and their batches as bars on the run's time axis, the events as marks on a row of their own."""
    width = CHART_WIDTH - CHART_LEFT - CHART_RIGHT
    rows = len(document["plays"]) + 1
    height = 22 * rows + 40

    def x(moment):
        return CHART_LEFT + width * min(max(moment, 0.0), duration) / duration

    parts = [
        f'<svg class="timeline" id="timeline" width="{CHART_WIDTH}" height="{height}" '
        f'viewBox="0 0 {CHART_WIDTH} {height}" role="img" aria-label="timeline of the run">'
    ]
    for row, play in enumerate(document["plays"]):
        top = 8 + 22 * row
        parts.append(f'<text x="{CHART_LEFT - 6}" y="{top + 13}" text-anchor="end">play {row + 1}</text>')
        for batch in play["batches"] or [play]:
            left, right = x(seconds_of(batch["started"], origin)), x(seconds_of(batch["ended"], origin))
            hosts = ", ".join(batch.get("hosts") or play["hosts"])
            parts.append(
                f'<rect class="batch" x="{left:.1f}" y="{top}" width="{max(right - left, 1.5):.1f}" height="16" '
                f'fill="#9db7e0" stroke="#fff"><title>{html.escape(play["name"])}: {html.escape(hosts)}</title></rect>'
            )
    top = 8 + 22 * (rows - 1)
    parts.append(f'<text x="{CHART_LEFT - 6}" y="{top + 13}" text-anchor="end">events</text>')
    for entry in document["timeline"]:
        if entry["event"].startswith(("play", "batch")):
            continue
        if entry["event"] == "gate":
            tone = "pass" if entry.get("verdict") in PASSING_VERDICTS else "fail"
        elif entry["event"] in ("traffic", "custom"):
            tone = entry["event"]
        else:
            tone = "fail" if entry.get("status") in ("failed", "unreachable") else "task"
        left = x(seconds_of(entry["time"], origin))
        parts.append(
            f'<rect class="mark mark-{html.escape(entry["event"])}" x="{left - 2:.1f}" y="{top}" width="4" height="16" '
            f'fill="{MARK_COLORS[tone]}"><title>{html.escape(entry["time"][11:])} {html.escape(str(entry["host"]))}: '
            f"{html.escape(str(entry['detail']))}</title></rect>"
        )
    parts.extend(
        f'<text x="{x(moment):.1f}" y="{height - 8}" text-anchor="middle">{moment:g} s</text>'
        for moment in time_ticks(duration)
    )
    parts.append("</svg>")
    return "\n".join(parts)


def html_page(document):
    """The report as one self-contained page."""
    run = document["run"]
    origin = datetime.datetime.strptime(run["started"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.UTC)
    duration = max(run["duration"] or 0.0, 1.0)
    gates = document["gates"]
    passed = sum(1 for gate in gates if gate["verdict"] in PASSING_VERDICTS)
    title = f"Deploy report: {run['playbook']} ({run['outcome']})"
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{PAGE_STYLE}</style></head><body>",
        f'<h1>Deploy report: {html.escape(run["playbook"])} <span class="outcome {html.escape(run["outcome"])}">'
        f"{html.escape(run['outcome'])}</span></h1>",
        html_table(
            ("Field", "Value"),
            [
                ("", ["Outcome", html_text(run["outcome_reason"])]),
                ("", ["Started (UTC)", html.escape(run["started"])]),
                ("", ["Ended (UTC)", html.escape(run["ended"])]),
                ("", ["Duration", html.escape(human_duration(run["duration"]))]),
                ("", ["Check mode", "yes" if run["check_mode"] else "no"]),
                ("", ["Limit", html_text(run["limit"]) or "none"]),
                ("", ["Gates", f"{len(gates)} ({passed} passed, promoted or allowed)"]),
                ("", ["Traffic changes", str(len(document["traffic"]))]),
            ],
        ),
        "<h2>Timeline</h2>",
        svg_timeline(document, origin, duration),
    ]
    windows = gate_windows(document, origin)
    if windows:
        out.append("<h2>Canary and baseline</h2>")
        out.append(
            '<p class="legend">'
            + "".join(f'<span><i style="background:{color}"></i>{name}</span>' for name, color in SERIES_COLORS.items())
            + f'<span><i style="background:{THRESHOLD_COLOR}"></i>threshold</span> '
            "Each shaded window is a gate, numbered in order with its verdict; its values are counted "
            "from the start of its window.</p>"
        )
        out.extend(svg_chart(chart, windows, duration) for chart in CHARTS)
    out.append("<h2>Events</h2>")
    out.append(
        html_table(
            ("Time (UTC)", "Host", "Event", "Detail"),
            [
                (
                    f"event event-{html.escape(entry['event'])}",
                    [
                        html.escape(entry["time"][11:]),
                        html_text(entry["host"]),
                        html_text(f"task {entry['status']}" if entry["event"] == "task" else entry["event"]),
                        html_text(entry["detail"]),
                    ],
                )
                for entry in document["timeline"]
            ],
        )
    )
    out.append("<h2>Gates</h2>")
    out.append(
        html_table(
            ("Time (UTC)", "Host", "Gate", "Task", "Verdict", "Key numbers"),
            [
                (
                    "gate",
                    [
                        html.escape(gate["time"][11:]),
                        html_text(gate["host"] + (f" -> {gate['delegated_to']}" if gate.get("delegated_to") else "")),
                        html.escape(gate["module"].rsplit(".", 1)[-1]),
                        html_text(gate["task"]),
                        f'<span class="verdict-{"pass" if gate["verdict"] in PASSING_VERDICTS else "fail"}">'
                        f"{html_text(gate['verdict'] or ('hidden' if gate.get('censored') else 'unknown'))}</span>",
                        html_text(gate_numbers(gate) or gate.get("msg"), 600),
                    ],
                )
                for gate in gates
            ],
        )
        if gates
        else "<p>No gate ran.</p>"
    )
    if document["traffic"]:
        out.append("<h2>Traffic</h2>")
        out.append(
            html_table(
                ("Time (UTC)", "Load balancer", "Change", "Changed", "Task"),
                [
                    (
                        "traffic",
                        [
                            html.escape(entry["time"][11:]),
                            html_text(entry["lb"]),
                            html_text(traffic_change(entry)),
                            "yes" if entry["changed"] else "no",
                            html_text(entry["task"]),
                        ],
                    )
                    for entry in document["traffic"]
                ],
            )
        )
    out.append("<h2>Final stats</h2>")
    out.append(
        html_table(
            ("Host",) + tuple(name for name, _key in STATS_KEYS),
            [
                ("stats", [html_text(host)] + [str(counts[name]) for name, _key in STATS_KEYS])
                for host, counts in document["stats"].items()
            ],
            numeric=range(1, len(STATS_KEYS) + 1),
        )
    )
    out.append(
        '<p style="color:#777">Written by aistack.fleet.deploy_report '
        f"(ansible-core {html.escape(run['ansible_version'])}).</p>"
    )
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_file(path, text, exclusive):
    """Write text with mode 0644, failing when the file exists if exclusive, else atomically replacing it."""
    data = to_bytes(text, errors="surrogate_then_replace")
    target = path if exclusive else f"{path}.{os.getpid()}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    descriptor = os.open(target, flags, 0o644)
    try:
        os.fchmod(descriptor, 0o644)
        with os.fdopen(descriptor, "wb") as handle:
            descriptor = None
            handle.write(data)
    finally:
        if descriptor is not None:
            os.close(descriptor)
    if not exclusive:
        os.replace(target, path)


def write_report(directory, stem, started, document, page):
    """Write <stem>-<stamp>.json, .md and .html (the page; none when None) (-2, -3 ... when taken) and latest.*.

    Returns the JSON path.
    """
    if not os.path.isdir(directory):
        os.makedirs(directory, mode=0o755)
        os.chmod(directory, 0o755)  # noqa: S103  (reports are meant to be read by operators and CI)
    texts = {
        ".json": json.dumps(document, indent=2, ensure_ascii=False, default=str) + "\n",
        ".md": markdown(document),
    }
    if page is not None:
        texts[".html"] = page
    base = f"{stem}-{stamp(started)}"
    for attempt in range(1, 100):
        name = base if attempt == 1 else f"{base}-{attempt}"
        json_path = os.path.join(directory, name + ".json")
        if any(os.path.exists(os.path.join(directory, name + extension)) for extension in (".md", ".html")):
            continue
        try:
            write_file(json_path, texts[".json"], exclusive=True)
        except FileExistsError:
            continue
        for extension, text in texts.items():
            if extension != ".json":
                write_file(os.path.join(directory, name + extension), text, exclusive=True)
        break
    else:
        raise OSError(f"too many reports named {base}* in {directory}")
    for extension, text in texts.items():
        write_file(os.path.join(directory, "latest" + extension), text, exclusive=False)
    return json_path


class CallbackModule(CallbackBase):
    """Write a JSON, a Markdown and an HTML timeline of every playbook run."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "aistack.fleet.deploy_report"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, display=None, options=None):
        super().__init__(display=display, options=options)
        self._report = None
        self._totals = {}

    def v2_playbook_on_start(self, playbook):
        path = getattr(playbook, "_file_name", None) or "playbook"
        self._report = Report(path, self.get_option("rollback_tags") or [], self.get_option("timeline_tasks"))

    def v2_playbook_on_play_start(self, play):
        if self._report is None:
            return
        batch_hosts, all_hosts = [], []
        manager = play.get_variable_manager()
        inventory = getattr(manager, "_inventory", None)
        if inventory is not None:
            try:
                batch_hosts = [host.name for host in inventory.get_hosts(play.hosts)]
                all_hosts = [host.name for host in inventory.get_hosts(play.hosts, ignore_restrictions=True)]
            except Exception as exc:  # pylint: disable=broad-exception-caught
                self._display.warning(f"deploy_report: could not list the hosts of play {play.get_name()!r}: {exc}")
        self._report.play_start(play, batch_hosts, all_hosts or batch_hosts)

    def v2_playbook_on_task_start(self, task, is_conditional):
        if self._report is not None:
            self._report.task_start(task, handler=False)

    def v2_playbook_on_handler_task_start(self, task):
        if self._report is not None:
            self._report.task_start(task, handler=True)

    def v2_runner_on_start(self, host, task):
        if self._report is not None:
            self._report.host_start(host.get_name(), task)

    def v2_runner_on_ok(self, result):
        if self._report is not None:
            self._report.task_result(result, "changed" if result.result.get("changed") else "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        if self._report is not None:
            self._report.task_result(result, "failed", ignored=bool(ignore_errors))

    def v2_runner_on_skipped(self, result):
        if self._report is not None:
            self._report.task_result(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        if self._report is not None:
            self._report.task_result(result, "unreachable")

    def v2_runner_item_on_ok(self, result):
        if self._report is not None:
            self._report.item_result(result)

    def v2_runner_item_on_failed(self, result):
        if self._report is not None:
            self._report.item_result(result)

    def v2_playbook_on_stats(self, stats):
        report, self._report = self._report, None
        if report is None:
            return
        self._totals = report.finish(stats, self._totals)
        document = report.document()
        stem = os.path.splitext(report.playbook)[0] or "playbook"
        directory = self.get_option("report_dir")
        try:
            page = html_page(document)
        except Exception as exc:  # pylint: disable=broad-exception-caught
            # The page is a view of the document: a fault in it must not cost the JSON and Markdown.
            self._display.warning(
                f"deploy_report: could not render the HTML page, writing JSON and Markdown only: {exc!r}"
            )
            page = None
        try:
            path = write_report(directory, stem, report.started.wall, document, page)
        except (OSError, TypeError, ValueError) as exc:
            self._display.warning(f"deploy_report: could not write the report to {directory}: {exc}")
            return
        self._display.v(f"deploy_report: wrote {path} ({document['run']['outcome']})")
