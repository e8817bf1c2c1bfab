"""Run `molecule test` for one scenario and time each action of its test sequence.

    python3 tools/molecule_timed.py SCENARIO [LABEL]

Passes molecule's output through unchanged, and from molecule's own action lines
("SCENARIO ➜ ACTION: Executing") prints each action's duration as it ends and appends
``LABEL<TAB>action<TAB>seconds`` rows to the file named by AISTACK_TIMINGS (when set), from
which ``tools/stages.sh`` prints the run's table. The exit status is molecule's.
"""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
ACTION = re.compile(r"^\S+\s+(?P<scenario>\S+) \u279c (?P<action>[\w-]+): Executing\b")


class Clock:
    """The action under way and when it began; record() closes it."""

    def __init__(self, label, timings):
        self.label, self.timings = label, timings
        self.action, self.started = None, None

    def start(self, action, now):
        self.record(now)
        self.action, self.started = action, now

    def record(self, now):
        if self.action is None:
            return
        seconds = now - self.started
        print(f"== {self.label} {self.action}: {seconds:.1f} s", flush=True)
        if self.timings:
            with open(self.timings, "a", encoding="utf-8") as handle:
                handle.write(f"{self.label}\t{self.action}\t{seconds:.1f}\n")
        self.action = None


def main(argv):
    if len(argv) not in (2, 3):
        raise SystemExit("usage: molecule_timed.py SCENARIO [LABEL]")
    scenario = argv[1]
    clock = Clock(argv[2] if len(argv) == 3 else scenario, os.environ.get("AISTACK_TIMINGS"))
    proc = subprocess.Popen(
        ["molecule", "test", "-s", scenario],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        bufsize=1,
        text=True,
        errors="replace",
    )
    for line in proc.stdout:
        match = ACTION.match(ANSI.sub("", line))
        if match:
            clock.start(match.group("action"), time.monotonic())
        sys.stdout.write(line)
        sys.stdout.flush()
    status = proc.wait()
    clock.record(time.monotonic())
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
