"""Write awx/surveys/<procedure>.json, the AWX survey of each procedure, from its argument spec.

The procedures' variables are documented once, in playbooks/vars/argument_specs.yml; a
survey asks for the scalar ones that have a default (a question without one would send an
empty string, which is not the same as leaving the variable unset). The unit suite fails on
a survey that differs from what this writes.
"""

import argparse
import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "playbooks" / "vars" / "argument_specs.yml"
SURVEYS = ROOT / "awx" / "surveys"
QUESTION_TYPES = {"str": "text", "path": "text", "int": "integer", "float": "float"}


def question(name, option):
    kind = option.get("type", "str")
    entry = {
        "variable": name,
        "question_name": name,
        "question_description": " ".join(str(option.get("description", "")).split()),
        "required": bool(option.get("required", False)),
    }
    if kind == "bool":
        entry.update(type="multiplechoice", choices=["true", "false"], default=str(option["default"]).lower())
    elif option.get("choices"):
        entry.update(type="multiplechoice", choices=[str(c) for c in option["choices"]], default=str(option["default"]))
    else:
        entry.update(type=QUESTION_TYPES[kind], default=option["default"])
    return entry


def surveyed(option):
    return option.get("type", "str") in (*QUESTION_TYPES, "bool") and "default" in option


def render(procedure, spec):
    questions = [question(name, option) for name, option in spec["options"].items() if surveyed(option)]
    survey = {"name": procedure, "description": spec["short_description"], "spec": questions}
    return json.dumps(survey, indent=2) + "\n"


def specs():
    return yaml.safe_load(SPECS.read_text())["argument_specs"]


def main():
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    SURVEYS.mkdir(exist_ok=True)
    for procedure, spec in specs().items():
        (SURVEYS / f"{procedure}.json").write_text(render(procedure, spec))
    return 0


if __name__ == "__main__":
    sys.exit(main())
