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
