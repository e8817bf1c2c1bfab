"""base's fleet CA (roles/base/tasks/pki_ca.yml), run by the real ansible-playbook on this machine:
made once, left alone after, and a wrong passphrase refused with one sentence that hides it."""

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.unit.plugins.callback.test_deploy_report import COLLECTIONS

ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
RIGHT = "right-passphrase-4711"  # noqa: S105
WRONG = "wrong-passphrase-0815"  # noqa: S105
PLAYBOOK = """
- hosts: all
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: aistack.fleet.base
        tasks_from: pki_ca
    - ansible.builtin.debug:
        msg: "{{ inventory_hostname }} went on"
"""
RECAP = re.compile(r"^(h[12])\s+: ok=\d+\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)", re.M)


def run(workdir, passphrase, *args):
    """The playbook on two local hosts; (return code, output, {host: (changed, failed)})."""
    (workdir / "inventory.yml").write_text(
        "all:\n  hosts:\n"
        + "".join(
            f"    {host}: {{ansible_connection: local, ansible_python_interpreter: {sys.executable}}}\n"
            for host in ("h1", "h2")
        )
    )
    (workdir / "playbook.yml").write_text(PLAYBOOK)
    (workdir / "empty.cfg").touch()
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
    env.update(
        ANSIBLE_CONFIG=str(workdir / "empty.cfg"),
        ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
        ANSIBLE_LOCAL_TEMP=str(workdir / ".ansible-tmp"),
        ANSIBLE_NOCOLOR="1",
    )
    argv = [str(ANSIBLE_PLAYBOOK), "-i", "inventory.yml", "playbook.yml", "-e", f"base_pki_ca_dir={workdir / 'ca'}"]
    argv += ["-e", f"base_pki_ca_passphrase={passphrase}", *args]
    proc = subprocess.run(argv, cwd=workdir, env=env, capture_output=True, text=True, timeout=300, check=False)
    output = proc.stdout + proc.stderr
    recap = {host: (int(changed), int(failed)) for host, changed, failed in RECAP.findall(output)}
    return proc.returncode, output, recap


def test_the_ca_is_made_once_and_a_wrong_passphrase_is_refused_with_a_sentence(tmp_path):
    code, output, recap = run(tmp_path, RIGHT)
    assert code == 0, output
    key = (tmp_path / "ca" / "ca.key").read_bytes()
    assert b"ENCRYPTED PRIVATE KEY" in key and (tmp_path / "ca" / "ca.key").stat().st_mode & 0o777 == 0o600

    code, output, recap = run(tmp_path, RIGHT)
    assert code == 0 and recap["h1"][0] == 0, output  # the second run changes nothing

    code, output, recap = run(tmp_path, WRONG)
    assert code != 0 and recap["h1"][1] == 1, output
    assert "does not open with base_pki_ca_passphrase; use the passphrase it was made with" in output
    assert WRONG not in output and RIGHT not in output
    assert "went on" not in output
    assert (tmp_path / "ca" / "ca.key").read_bytes() == key  # the CA was not touched
