"""The developer tools fail with one clear sentence and count honestly."""

import os
import pwd
import textwrap

import pytest

from tests.conftest import ROOT, run


def as_unprivileged(argv):
    """Run argv as 'nobody' when we are root, so the no-root path is exercised."""
    if os.geteuid() != 0:
        return argv
    return ["setpriv", f"--reuid={pwd.getpwnam('nobody').pw_uid}", "--regid=65534", "--clear-groups", *argv]


def test_engine_without_root_and_engine_says_what_is_missing(tmp_path):
    proc = run(
        as_unprivileged([str(ROOT / "tools/lab/engine.sh")]),
        env={"DOCKER_HOST": "unix:///nonexistent/docker.sock", "HOME": str(tmp_path)},
    )
    assert proc.returncode != 0
    lines = [line for line in proc.output.splitlines() if line.strip()]
    assert len(lines) == 1, proc.output
    assert "Docker engine" in lines[0] and "make engine" in lines[0]
    assert "Traceback" not in proc.output


def test_images_without_root_refuses_before_doing_anything(tmp_path):
    proc = run(as_unprivileged([str(ROOT / "tools/lab/images.sh")]), env={"HOME": str(tmp_path)})
    assert proc.returncode != 0
    assert proc.output.strip().count("\n") == 0 and "needs root" in proc.output


def test_stages_runs_every_stage_and_counts(tmp_path):
    (tmp_path / "Makefile").write_text(
        textwrap.dedent("""\
        good:
        \t@echo good ran
        bad:
        \t@exit 3
        also:
        \t@echo also ran
        """)
    )
    proc = run([str(ROOT / "tools/stages.sh"), "good", "bad", "also"], cwd=tmp_path)
    assert proc.returncode == 1
    assert "good ran" in proc.output and "also ran" in proc.output
    assert proc.stdout.splitlines()[-1] == "stages: 2 passed, 1 failed"


def test_stages_prints_every_stage_and_molecule_action_with_its_share(tmp_path):
    # A stage stands in for `make molecule`: it appends its actions to AISTACK_TIMINGS as
    # tools/molecule_timed.py does.
    (tmp_path / "Makefile").write_text(
        textwrap.dedent("""\
        quick:
        \t@true
        mol:
        \t@sleep 2; printf 'fleet/trixie\\tconverge\\t1.5\\nfleet/trixie\\tverify\\t0.5\\n' >> "$$AISTACK_TIMINGS"
        """)
    )
    proc = run([str(ROOT / "tools/stages.sh"), "quick", "mol"], cwd=tmp_path)
    assert proc.returncode == 0, proc.output
    table = proc.stdout.split("===== timing =====")[1].splitlines()
    rows = {
        line.split()[0] + (" " + line.split()[1] if line.startswith("  ") else ""): line
        for line in table
        if line.strip()
    }
    assert rows["quick"].split()[1] == "passed"
    assert rows["mol"].split()[1:3] == ["passed", "2s"]
    converge, verify = rows["fleet/trixie converge"].split(), rows["fleet/trixie verify"].split()
    assert converge[2] == "2s" and verify[2] == "0s"
    # Shares of the whole run (about 2 s): 1.5 s is most of it, 0.5 s a quarter or less.
    assert 50 <= float(converge[3].rstrip("%")) <= 100 and 0 < float(verify[3].rstrip("%")) <= 30
    assert proc.stdout.splitlines()[-1] == "stages: 2 passed, 0 failed"


def test_molecule_timed_times_each_action_from_molecules_own_lines(tmp_path):
    # A stand-in molecule on PATH prints action lines as molecule 26 does (with colour).
    fake = tmp_path / "bin" / "molecule"
    fake.parent.mkdir()
    fake.write_text(
        "#!/bin/sh\n"
        "printf '\\033[36mINFO    \\033[0m \\033[32mfleet\\033[0m \u279c \\033[33mconverge\\033[0m: Executing\\n'\n"
        "sleep 1\n"
        "printf 'INFO     fleet \u279c verify: Executing\\n'\n"
        "echo 'some output'\n"
        "exit 3\n"
    )
    fake.chmod(0o755)
    timings = tmp_path / "timings.tsv"
    env = {"PATH": f"{fake.parent}:{os.environ['PATH']}", "AISTACK_TIMINGS": str(timings)}
    proc = run(["python3", str(ROOT / "tools/molecule_timed.py"), "fleet", "fleet/trixie"], env=env)
    assert proc.returncode == 3, proc.output
    assert "some output" in proc.output
    rows = [line.split("\t") for line in timings.read_text().splitlines()]
    assert [row[:2] for row in rows] == [["fleet/trixie", "converge"], ["fleet/trixie", "verify"]]
    assert 0.9 <= float(rows[0][2]) < 5


@pytest.mark.parametrize(
    ("dependencies", "expected_rc", "expected"),
    [
        ({"community.docker": ">=4.0.0"}, 0, "community.docker"),
        ({"community.docker": ">=99.0.0"}, 1, "older than the required >=99.0.0"),
        ({"example.missing": ">=1.0.0"}, 1, "example.missing >=1.0.0 is not installed"),
    ],
)
def test_check_collections_verifies_dependencies_offline(tmp_path, dependencies, expected_rc, expected):
    galaxy = tmp_path / "galaxy.yml"
    galaxy.write_text("dependencies:\n" + "".join(f"  {k}: '{v}'\n" for k, v in dependencies.items()))
    proc = run(["python3", str(ROOT / "tools/check_collections.py"), str(galaxy)])
    assert proc.returncode == expected_rc, proc.output
    assert expected in proc.output
