"""host_files on a real file system: one call lays out directories, files and absent paths,
reports exactly what changed, changes nothing in check mode, and fails with a sentence.

The molecule scenario fleet runs it on real hosts through the base role.
"""

import json
import os
import stat

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.aistack.fleet.plugins.modules import host_files


def run(capsys, **args):
    with patch_module_args(args), pytest.raises(SystemExit):
        host_files.main()
    return json.loads(capsys.readouterr().out)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def layout(tmp_path):
    return {
        "directories": [{"path": str(tmp_path / "conf.d"), "mode": "0750"}],
        "files": [
            {"dest": str(tmp_path / "conf.d" / "a.conf"), "content": "a = 1\n", "mode": "0640"},
            {"dest": str(tmp_path / "b.conf"), "content": "b = 2\n", "mode": "0600"},
        ],
        "absent": [str(tmp_path / "old.conf")],
    }


def test_first_run_creates_everything_then_nothing_changes(tmp_path, capsys):
    (tmp_path / "old.conf").write_text("old")
    first = run(capsys, **layout(tmp_path))
    assert first["changed"] is True
    assert first["changed_paths"] == [
        str(tmp_path / "conf.d"),
        str(tmp_path / "conf.d" / "a.conf"),
        str(tmp_path / "b.conf"),
        str(tmp_path / "old.conf"),
    ]
    assert (tmp_path / "conf.d" / "a.conf").read_text() == "a = 1\n"
    assert mode(tmp_path / "conf.d") == 0o750 and mode(tmp_path / "conf.d" / "a.conf") == 0o640
    assert mode(tmp_path / "b.conf") == 0o600
    assert not (tmp_path / "old.conf").exists()
    again = run(capsys, **layout(tmp_path))
    assert again["changed"] is False and again["changed_paths"] == []


def test_only_the_file_whose_content_or_mode_changed_is_named(tmp_path, capsys):
    run(capsys, **layout(tmp_path))
    args = layout(tmp_path)
    args["files"][1]["content"] = "b = 3\n"
    os.chmod(tmp_path / "conf.d" / "a.conf", 0o644)
    result = run(capsys, **args)
    assert result["changed_paths"] == [str(tmp_path / "conf.d" / "a.conf"), str(tmp_path / "b.conf")]
    assert (tmp_path / "b.conf").read_text() == "b = 3\n" and mode(tmp_path / "b.conf") == 0o600
    assert mode(tmp_path / "conf.d" / "a.conf") == 0o640


def test_check_mode_reports_with_diff_and_touches_nothing(tmp_path, capsys):
    (tmp_path / "old.conf").write_text("old")
    result = run(capsys, _ansible_check_mode=True, _ansible_diff=True, **layout(tmp_path))
    assert result["changed"] is True and len(result["changed_paths"]) == 4
    assert {"before_header": str(tmp_path / "b.conf"), "after_header": str(tmp_path / "b.conf")}.items() <= next(
        d for d in result["diff"] if d.get("after_header") == str(tmp_path / "b.conf")
    ).items()
    assert sorted(os.listdir(tmp_path)) == ["old.conf"]


def test_diff_shows_old_and_new_content(tmp_path, capsys):
    run(capsys, **layout(tmp_path))
    args = layout(tmp_path)
    args["files"][1]["content"] = "b = 3\n"
    result = run(capsys, _ansible_diff=True, **args)
    diff = [d for d in result["diff"] if d.get("after_header") == str(tmp_path / "b.conf")][0]
    assert diff["before"] == "b = 2\n" and diff["after"] == "b = 3\n"


def test_a_file_whose_directory_is_missing_fails_with_a_sentence(tmp_path, capsys):
    result = run(capsys, files=[{"dest": str(tmp_path / "nowhere" / "x.conf"), "content": "x"}])
    assert result["failed"] is True
    missing = tmp_path / "nowhere" / "x.conf"
    assert result["msg"] == f"host_files: the directory of {missing} does not exist; list it under directories first."
    assert not (tmp_path / "nowhere").exists()


def test_a_directory_where_a_file_stands_is_refused(tmp_path, capsys):
    (tmp_path / "conf.d").write_text("a file")
    result = run(capsys, directories=[{"path": str(tmp_path / "conf.d")}])
    assert result["failed"] is True and "exists and is not a directory" in result["msg"]
    assert (tmp_path / "conf.d").read_text() == "a file"


def test_a_new_file_without_mode_gets_the_umask_default(tmp_path, capsys):
    old = os.umask(0o022)
    try:
        run(capsys, files=[{"dest": str(tmp_path / "plain.conf"), "content": "x"}])
    finally:
        os.umask(old)
    assert mode(tmp_path / "plain.conf") == 0o644


def test_missing_parents_of_a_directory_are_created(tmp_path, capsys):
    result = run(capsys, directories=[{"path": str(tmp_path / "etc" / "aistack" / "pki"), "mode": "0755"}])
    assert result["changed_paths"] == [str(tmp_path / "etc" / "aistack" / "pki")]
    assert mode(tmp_path / "etc" / "aistack" / "pki") == 0o755


def test_an_unwritable_place_fails_with_a_sentence_not_a_traceback(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    result = run(capsys, directories=[{"path": str(tmp_path / "file" / "sub")}])
    assert result["failed"] is True
    assert result["msg"].startswith(f"host_files: could not create {tmp_path / 'file' / 'sub'}: ")


def test_a_new_file_has_its_mode_before_it_appears_under_its_name(tmp_path, capsys, monkeypatch):
    """No moment in which a new 0600 file is readable by others under its real name."""
    seen = {}
    move = host_files.AnsibleModule.atomic_move

    def recording_move(self, src, dest, *args, **kwargs):
        seen[dest] = mode(src)
        return move(self, src, dest, *args, **kwargs)

    monkeypatch.setattr(host_files.AnsibleModule, "atomic_move", recording_move)
    dest = str(tmp_path / "secret.conf")
    run(capsys, files=[{"dest": dest, "content": "key = 1\n", "mode": "0600"}])
    assert seen == {dest: 0o600}
    assert mode(dest) == 0o600


def checked(tmp_path, content):
    # A real command as the validator: grep accepts the file only if a line is exactly "ok".
    return {
        "files": [
            {"dest": str(tmp_path / "a.conf"), "content": "a = 1\n"},
            {"dest": str(tmp_path / "b.conf"), "content": content, "validate": "grep -qx ok %s"},
            {"dest": str(tmp_path / "c.conf"), "content": "c = 3\n"},
        ]
    }


def test_a_file_the_validator_accepts_replaces_the_live_one(tmp_path, capsys):
    result = run(capsys, **checked(tmp_path, "ok\n"))
    assert result["changed_paths"] == [str(tmp_path / n) for n in ("a.conf", "b.conf", "c.conf")]
    assert (tmp_path / "b.conf").read_text() == "ok\n"


def test_a_refused_file_changes_nothing_the_file_created_before_it_is_removed(tmp_path, capsys):
    (tmp_path / "b.conf").write_text("ok\n")
    result = run(capsys, **checked(tmp_path, "bad\n"))
    assert result["failed"] is True and result["rc"] == 1
    assert "b.conf was not replaced" in result["msg"] and "nothing was changed" in result["msg"]
    assert result["changed"] is False and result["changed_paths"] == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.conf"]
    assert (tmp_path / "b.conf").read_text() == "ok\n"


def test_a_refused_file_puts_back_the_files_and_directories_changed_before_it(tmp_path, capsys):
    # What the disk says must stay what the service runs: a file replaced before the refused one
    # would otherwise wait, unloaded, and the next run would find nothing to change.
    (tmp_path / "a.conf").write_text("a = 0\n")
    os.chmod(tmp_path / "a.conf", 0o600)
    (tmp_path / "b.conf").write_text("ok\n")
    args = checked(tmp_path, "bad\n")
    args["files"][0]["mode"] = "0644"
    args["directories"] = [{"path": str(tmp_path / "new.d")}, {"path": str(tmp_path), "mode": "0711"}]
    before = mode(tmp_path)
    result = run(capsys, **args)
    assert result["failed"] is True and result["changed"] is False and result["changed_paths"] == []
    assert (tmp_path / "a.conf").read_text() == "a = 0\n" and mode(tmp_path / "a.conf") == 0o600
    assert mode(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.conf", "b.conf"]
    # The same call with content the validator accepts changes all of it.
    args["files"][1]["content"] = "ok\nmore\n"
    done = run(capsys, **args)
    assert done["changed_paths"] == [str(tmp_path / "new.d"), str(tmp_path)] + [
        str(tmp_path / n) for n in ("a.conf", "b.conf", "c.conf")
    ]


def test_the_validator_runs_only_when_the_content_changes(tmp_path, capsys):
    (tmp_path / "b.conf").write_text("bad\n")
    args = checked(tmp_path, "bad\n")
    result = run(capsys, **args)
    assert "failed" not in result


def test_a_validate_command_without_the_file_placeholder_is_refused_before_anything_changes(tmp_path, capsys):
    args = checked(tmp_path, "ok\n")
    args["files"][1]["validate"] = "grep -qx ok"
    result = run(capsys, **args)
    assert result["failed"] is True and "needs %s" in result["msg"]
    assert list(tmp_path.iterdir()) == []
