#!/usr/bin/python
# Copyright (c) aistack.fleet maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: host_files
short_description: Lay out many directories and small files on a host in one task
version_added: 0.1.0
description:
  - Ensures a set of directories, files with given content, and absent paths, with their
    owner, group and mode, in one call to the host instead of one call per path.
  - Meant for the static configuration files of a role, rendered on the controller with the
    C(ansible.builtin.template) lookup. A run that changes nothing costs one module call.
  - A file is written only when its content differs, atomically (a temporary file in the
    same directory, then a rename). Owner, group and mode are set when they differ.
  - RV(changed_paths) names every path that changed, so handlers can restart only what a
    changed file belongs to.
  - A file with O(files[].validate) replaces the live one only after its command accepted
    the new content. The command sees the files listed before it as this call writes them.
    When it refuses, the call changes nothing. That file and every file after it are left
    as they were, and the directories and files this call had already changed are put back
    (content, owner, group and mode; what it created is removed), so what is on disk is
    still what the service runs, and the next run finds the same changes to make.
  - Not for secrets either. In diff mode the result holds every changed file's content, so
    write those with a task of their own that has C(no_log).
author:
  - aistack.fleet maintainers (@aistack)
options:
  directories:
    description: Directories that must exist; missing parents are created with the umask's default mode.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path of the directory.
        type: path
        required: true
      owner:
        description: Owner (name or id); unchanged when omitted.
        type: str
      group:
        description: Group (name or id); unchanged when omitted.
        type: str
      mode:
        description: Mode in octal, as a string such as V("0755").
        type: raw
  files:
    description: Files that must exist with exactly this content.
    type: list
    elements: dict
    default: []
    suboptions:
      dest:
        description: Absolute path of the file; its directory must exist.
        type: path
        required: true
      content:
        description: The whole content of the file.
        type: str
        required: true
      owner:
        description: Owner (name or id); unchanged when omitted.
        type: str
      group:
        description: Group (name or id); unchanged when omitted.
        type: str
      mode:
        description: Mode in octal, as a string such as V("0644"); a new file gets the umask's default when omitted.
        type: raw
      validate:
        description:
          - Command that checks the new content before it replaces the file; V(%s) stands for a
            temporary file that holds it, in the same directory. Run only when the content
            changed, and not in check mode. It runs without a shell.
        type: str
  absent:
    description: Files, links or empty directories that must not exist.
    type: list
    elements: path
    default: []
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Reports every path that would change, and its diff, without touching any.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in diff mode) when in diff mode.
    support: full
"""

EXAMPLES = r"""
- name: Lay out the baseline's directories and configuration files
  aistack.fleet.host_files:
    directories:
      - {path: /etc/systemd/journald.conf.d, owner: root, group: root, mode: "0755"}
    files:
      - dest: /etc/systemd/journald.conf.d/60-aistack.conf
        content: "{{ lookup('ansible.builtin.template', 'journald.conf.j2') }}"
        owner: root
        group: root
        mode: "0644"
    absent:
      - /etc/apt/apt.conf.d/60aistack-unattended-upgrades
  register: __config
  notify: Restart systemd-journald

- name: Write a ruleset that nft must accept first
  aistack.fleet.host_files:
    files:
      - dest: /etc/nftables.conf
        content: "{{ lookup('ansible.builtin.template', 'nftables.conf.j2') }}"
        mode: "0644"
        validate: nft -c -f %s
"""

RETURN = r"""
changed_paths:
  description: Every path that was created, written, removed or given another owner, group or mode, in the order given.
  returned: always
  type: list
  elements: str
  sample: [/etc/systemd/journald.conf.d/60-aistack.conf]
"""

import errno  # noqa: E402
import os  # noqa: E402
import stat  # noqa: E402
import tempfile  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.common.text.converters import to_bytes  # noqa: E402

ATTRIBUTES = dict(owner=dict(type="str"), group=dict(type="str"), mode=dict(type="raw"))


class Refused(Exception):
    """A validation command refused a file's new content."""


def remember(path):
    """What is at path now, to put back: (path, None, None) when nothing is; the content of a file."""
    try:
        status = os.lstat(path)
    except OSError:
        # Nothing there, or nothing can be (the module says why when it tries).
        return path, None, None
    content = None
    if stat.S_ISREG(status.st_mode):
        with open(path, "rb") as handle:
            content = handle.read()
    return path, status, content


def put_back(journal):
    """Undo the changes in journal, newest first. Returns the paths that could not be put back."""
    failed = []
    for path, status, content in reversed(journal):
        try:
            if status is None:
                if os.path.isdir(path) and not os.path.islink(path):
                    os.rmdir(path)
                elif os.path.lexists(path):
                    os.unlink(path)
                continue
            if content is not None:
                descriptor, temporary = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".host_files.")
                try:
                    with os.fdopen(descriptor, "wb") as handle:
                        handle.write(content)
                    os.rename(temporary, path)
                finally:
                    if os.path.lexists(temporary):
                        os.unlink(temporary)
            os.chown(path, status.st_uid, status.st_gid)
            os.chmod(path, stat.S_IMODE(status.st_mode))
        except OSError as error:
            if error.errno != errno.ENOTEMPTY:
                failed.append(f"{path} ({error.strerror})")
    return failed


def attributes_changed(module, path, spec, diff=None):
    """Set owner, group and mode where they differ; True when one did (or would)."""
    args = module.load_file_common_arguments(
        dict(path=path, owner=spec.get("owner"), group=spec.get("group"), mode=spec.get("mode"))
    )
    return module.set_fs_attributes_if_different(args, False, diff)


def ensure_directory(module, spec, planned):
    path, diff = spec["path"], {"before": {"path": spec["path"]}, "after": {"path": spec["path"]}}
    created = not os.path.isdir(path)
    if created:
        if os.path.lexists(path):
            module.fail_json(msg=f"host_files: {path} exists and is not a directory; nothing was changed there.")
        diff["before"]["state"], diff["after"]["state"] = "absent", "directory"
        if module.check_mode:
            planned.add(path)
            return True, diff
        try:
            # Missing parents are made with the umask's default mode, as ansible.builtin.file does.
            os.makedirs(path, 0o700)
        except OSError as error:
            module.fail_json(msg=f"host_files: could not create {path}: {error.strerror}.")
    return attributes_changed(module, path, spec, diff) or created, diff


def ensure_file(module, spec, planned):
    dest, content = spec["dest"], to_bytes(spec["content"])
    diff = {"before_header": dest, "after_header": dest, "after": spec["content"]}
    if os.path.isdir(dest):
        module.fail_json(msg=f"host_files: {dest} is a directory, not a file; nothing was changed there.")
    directory = os.path.dirname(dest)
    if directory in planned:
        # Check mode: the directory would be created just before.
        diff["before"] = ""
        return True, diff
    if not os.path.isdir(directory):
        module.fail_json(msg=f"host_files: the directory of {dest} does not exist; list it under directories first.")
    current = None
    if os.path.exists(dest):
        with open(dest, "rb") as handle:
            current = handle.read()
    diff["before"] = "" if current is None else current.decode("utf-8", "replace")
    written = current != content
    if written and not module.check_mode:
        try:
            descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=".host_files.")
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(content)
        except OSError as error:
            module.fail_json(msg=f"host_files: could not write {dest}: {error.strerror}; the file was left as it was.")
        if current is not None:
            # Keep the live file's owner, group and mode until the spec says otherwise.
            stat = os.stat(dest)
            os.chmod(temporary, stat.st_mode & 0o7777)
            os.chown(temporary, stat.st_uid, stat.st_gid)
        else:
            # A new file gets the spec's owner, group and mode before it appears under its name.
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(temporary, 0o666 & ~umask)
            attributes_changed(module, temporary, spec)
        if spec.get("validate"):
            command = spec["validate"] % temporary
            rc, out, err = module.run_command(command)
            if rc != 0:
                os.unlink(temporary)
                raise Refused(dict(cmd=command, rc=rc, stdout=out, stderr=err, dest=dest))
        module.atomic_move(temporary, dest, unsafe_writes=False, keep_dest_attrs=False)
    if module.check_mode and current is None:
        return True, diff
    return attributes_changed(module, dest, spec) or written, diff


def ensure_absent(module, path, planned):
    diff = {"before": {"path": path, "state": "present"}, "after": {"path": path, "state": "absent"}}
    if not os.path.lexists(path):
        return False, diff
    if not module.check_mode:
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                os.rmdir(path)
            else:
                os.unlink(path)
        except OSError as error:
            module.fail_json(msg=f"host_files: could not remove {path}: {error.strerror}.")
    return True, diff


def main():
    module = AnsibleModule(
        argument_spec=dict(
            directories=dict(
                type="list",
                elements="dict",
                default=[],
                options=dict(path=dict(type="path", required=True), **ATTRIBUTES),
            ),
            files=dict(
                type="list",
                elements="dict",
                default=[],
                options=dict(
                    dest=dict(type="path", required=True),
                    content=dict(type="str", required=True),
                    validate=dict(type="str"),
                    **ATTRIBUTES,
                ),
            ),
            absent=dict(type="list", elements="path", default=[]),
        ),
        supports_check_mode=True,
    )
    for spec in module.params["files"]:
        if spec.get("validate") and "%s" not in spec["validate"]:
            module.fail_json(
                msg=f"host_files: the validate command of {spec['dest']} needs %s for the file to check; "
                "nothing was changed."
            )
    changed_paths, diffs = [], []
    steps = (
        [(spec["path"], ensure_directory, spec) for spec in module.params["directories"]]
        + [(spec["dest"], ensure_file, spec) for spec in module.params["files"]]
        + [(path, ensure_absent, path) for path in module.params["absent"]]
    )
    planned, journal = set(), []
    for path, ensure, spec in steps:
        before = remember(path) if ensure is not ensure_absent and not module.check_mode else None
        try:
            changed, diff = ensure(module, spec, planned)
        except Refused as refused:
            failure = refused.args[0]
            not_put_back = put_back(journal)
            module.fail_json(
                msg=f"host_files: {failure['dest']} was not replaced: {failure['cmd']} refused the new content "
                f"(rc {failure['rc']}); "
                + (
                    f"the paths this call had changed before it could not all be put back: {', '.join(not_put_back)}."
                    if not_put_back
                    else "nothing was changed (the paths this call had changed before it were put back)."
                ),
                changed=bool(not_put_back),
                changed_paths=[entry[0] for entry in journal] if not_put_back else [],
                **{key: failure[key] for key in ("cmd", "rc", "stdout", "stderr")},
            )
        if changed:
            changed_paths.append(path)
            diffs.append(diff)
            if before:
                journal.append(before)
    result = dict(changed=bool(changed_paths), changed_paths=changed_paths)
    if module._diff:
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
