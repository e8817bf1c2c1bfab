"""AWX as code agrees with the playbooks: every user-facing playbook has a job template, every
survey is the one written from the procedure's argument spec, and every default in a spec is
the default the playbooks and roles use."""

import ast
import importlib.util
import json
import re

import pytest
import yaml

from tests.conftest import ROOT, run

AWX = yaml.safe_load((ROOT / "awx" / "job_templates.yml").read_text())
SPECS = yaml.safe_load((ROOT / "playbooks" / "vars" / "argument_specs.yml").read_text())["argument_specs"]
PLAYBOOK_FILES = sorted(ROOT.glob("playbooks/**/*.yml"))
# Playbooks that are not launched by operators: the smoke check of the test suite, the lab.
NOT_JOBS = {"smoke"}


def surveys_tool():
    spec = importlib.util.spec_from_file_location("awx_surveys", ROOT / "tools" / "awx_surveys.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def role_options():
    """Every role option, with the defaults its roles' entry points give it."""
    found = {}
    for path in ROOT.glob("roles/*/meta/argument_specs.yml"):
        for entry in yaml.safe_load(path.read_text())["argument_specs"].values():
            for name, option in (entry.get("options") or {}).items():
                found.setdefault(name, set()).update([repr(option["default"])] if "default" in option else [])
    return found


def test_every_user_facing_playbook_has_a_job_template():
    playbooks = {p.stem for p in ROOT.glob("playbooks/*.yml")} - NOT_JOBS
    templates = [t["playbook"] for t in AWX["awx_job_templates"]]
    assert sorted(templates) == sorted(playbooks)
    for template in AWX["awx_job_templates"]:
        assert template.get("survey") in (None, *SPECS), template
        for credential in template.get("credentials", []):
            assert credential in {t["name"] for t in AWX["awx_credential_types"]}, credential
    nodes = AWX["awx_workflow"]["nodes"]
    for node in nodes:
        assert node["unified_job_template"]["name"] in {f"aistack {t}" for t in templates}, node
        for kind in ("success_nodes", "failure_nodes", "always_nodes"):
            assert {n["identifier"] for n in node.get("related", {}).get(kind, [])} <= {n["identifier"] for n in nodes}
    assert AWX["awx_workflow"]["survey"] in SPECS


@pytest.mark.parametrize("procedure", sorted(SPECS))
def test_survey_is_the_one_written_from_the_argument_spec(procedure):
    path = ROOT / "awx" / "surveys" / f"{procedure}.json"
    assert path.is_file(), f"no survey for {procedure} (run make awx-surveys)"
    assert path.read_text() == surveys_tool().render(procedure, SPECS[procedure]), f"{path.name} is stale"


@pytest.mark.parametrize("procedure", sorted(SPECS))
def test_spec_defaults_are_the_ones_the_playbooks_and_roles_use(procedure):
    """A default in the spec (and so in the survey) that differs from the playbook's own
    `| default(...)` or from the role's argument spec would change what a launch does."""
    roles = role_options()
    text = "\n".join(p.read_text() for p in PLAYBOOK_FILES)
    wrong, unread = [], []
    for name, option in SPECS[procedure]["options"].items():
        if not re.search(rf"\b{name}\b", text):
            unread.append(name)
        used = {m.strip() for m in re.findall(rf"\b{name}\s*\|\s*default\(((?:[^()]|\([^()]*\))*)\)", text)}
        for literal in used:
            try:
                value = ast.literal_eval(literal)
            except (ValueError, SyntaxError):
                continue  # a computed default (another variable); the spec says it in words
            if "default" not in option or value != option["default"]:
                wrong.append(f"{name}: playbooks default to {value!r}, the spec to {option.get('default')!r}")
        if roles.get(name) and "default" in option and repr(option["default"]) not in roles[name]:
            wrong.append(f"{name}: the role defaults to {sorted(roles[name])}, the spec to {option['default']!r}")
    assert wrong == []
    assert [name for name in unread if name not in roles] == [], "options of the spec that nothing reads"


def test_configure_playbook_uses_only_options_the_awx_modules_have():
    """No AWX answers here; ansible-doc of the awx.awx bundled with the pinned `ansible`
    package says which options and choices each module takes."""
    tasks = yaml.safe_load((ROOT / "awx" / "configure.yml").read_text())[0]["tasks"]
    calls = [(key, args) for task in tasks for key, args in task.items() if key.startswith("awx.awx.")]
    modules = sorted({call[0] for call in calls})
    docs = json.loads(run(["ansible-doc", "--json", *modules], check=True).stdout)
    wrong = []
    for key, args in calls:
        options = docs[key]["doc"]["options"]
        for name, value in args.items():
            if name not in options:
                wrong.append(f"{key}: no option {name}")
            elif options[name].get("choices") and "{{" not in str(value) and value not in options[name]["choices"]:
                wrong.append(f"{key}: {name}={value!r} is not one of {options[name]['choices']}")
    assert wrong == []
    assert len(calls) == len(tasks)
