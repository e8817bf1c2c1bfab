"""Task files of the base role that run on the controller or need no container, run by the real
ansible-playbook on this machine against two local hosts:

- pki_ca.yml: the fleet CA is made once and left alone after; a wrong passphrase is refused
  with one sentence that does not show it.
- resolve.yml (entry point resolve, also the firewall's): the hosts of the groups given are
  resolved into base_resolved_addresses; the ones that do not resolve are named in one sentence.
"""

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
        tasks_from: {tasks}
    - ansible.builtin.debug:
        msg: "{{{{ inventory_hostname }}}} went on {{{{ base_resolved_addresses | default('') }}}}"
"""
RECAP = re.compile(r"^(h[12])\s+: ok=\d+\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)", re.M)


def playbook_env(workdir):
    """The environment of an ansible-playbook run in workdir: none of the caller's ANSIBLE_
    settings, an empty ansible.cfg, this checkout's collection, temporary files in workdir."""
    (workdir / "empty.cfg").touch()
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
    env.update(
        ANSIBLE_CONFIG=str(workdir / "empty.cfg"),
        ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
        ANSIBLE_LOCAL_TEMP=str(workdir / ".ansible-tmp"),
        ANSIBLE_NOCOLOR="1",
    )
    return env


def run(workdir, tasks, *args, lb_host="localhost"):
    """tasks_from `tasks` on two local hosts, h1 and h2, with group lb holding one host whose
    address is lb_host; (return code, output, {host: (changed, failed)})."""
    local = f"{{ansible_connection: local, ansible_python_interpreter: {sys.executable}}}"
    (workdir / "inventory.yml").write_text(
        f"all:\n  hosts:\n    h1: {local}\n    h2: {local}\n"
        f"  children:\n    lb:\n      hosts:\n        lb1: {{ansible_host: {lb_host}}}\n"
    )
    (workdir / "playbook.yml").write_text(PLAYBOOK.format(tasks=tasks))
    argv = [str(ANSIBLE_PLAYBOOK), "-i", "inventory.yml", "playbook.yml", "--limit", "h1,h2", *args]
    env = playbook_env(workdir)
    proc = subprocess.run(argv, cwd=workdir, env=env, capture_output=True, text=True, timeout=300, check=False)
    output = proc.stdout + proc.stderr
    recap = {host: (int(changed), int(failed)) for host, changed, failed in RECAP.findall(output)}
    return proc.returncode, output, recap


def ca(tmp_path, passphrase):
    variables = ["-e", f"base_pki_ca_dir={tmp_path / 'ca'}", "-e", f"base_pki_ca_passphrase={passphrase}"]
    return run(tmp_path, "pki_ca", *variables)


def test_the_ca_is_made_once_and_a_wrong_passphrase_is_refused_with_a_sentence(tmp_path):
    code, output, recap = ca(tmp_path, RIGHT)
    assert code == 0, output
    key = (tmp_path / "ca" / "ca.key").read_bytes()
    assert b"ENCRYPTED PRIVATE KEY" in key and (tmp_path / "ca" / "ca.key").stat().st_mode & 0o777 == 0o600

    code, output, recap = ca(tmp_path, RIGHT)
    assert code == 0 and recap["h1"][0] == 0, output  # the second run changes nothing

    code, output, recap = ca(tmp_path, WRONG)
    assert code != 0 and recap["h1"][1] == 1, output
    assert "does not open with base_pki_ca_passphrase; use the passphrase it was made with" in output
    assert WRONG not in output and RIGHT not in output
    assert "went on" not in output
    assert (tmp_path / "ca" / "ca.key").read_bytes() == key  # the CA was not touched


GROUPS = '{"base_resolve_groups": ["lb", "nosuchgroup"]}'


def test_the_hosts_of_the_groups_are_resolved_on_the_host(tmp_path):
    code, output, recap = run(tmp_path, "resolve", "-e", GROUPS)
    assert code == 0, output
    assert re.search(r"h1 went on \{'lb1': \[[^]]*'127\.0\.0\.1'", output), output


def test_a_host_that_does_not_resolve_is_named(tmp_path):
    code, output, recap = run(tmp_path, "resolve", "-e", GROUPS, lb_host="no-such-host.invalid")
    assert code != 0 and recap["h1"][1] == 1 and recap["h2"][1] == 1, output
    assert "base: lb1 cannot be resolved from h1; set base_firewall_address for it." in output
    assert "went on" not in output
