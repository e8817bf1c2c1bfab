"""Every role documents exactly the variables it defaults, with matching types and values."""

import re

import pytest
import yaml

from tests.conftest import ROOT

ROLES = sorted(p.parent.parent for p in ROOT.glob("roles/*/defaults/main.yml"))
TYPES = {"str": str, "int": int, "bool": bool, "list": list, "dict": dict, "path": str, "raw": object}


def load(path):
    return yaml.safe_load(path.read_text()) or {}


@pytest.mark.parametrize("role", ROLES, ids=[r.name for r in ROLES])
def test_argument_specs_match_defaults(role):
    defaults = load(role / "defaults" / "main.yml")
    options = load(role / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]
    assert set(defaults) == set(options), (
        f"undocumented: {sorted(set(defaults) - set(options))}; documented without default: "
        f"{sorted(set(options) - set(defaults))}"
    )
    for name, value in defaults.items():
        spec = options[name]
        assert isinstance(value, TYPES[spec.get("type", "str")]), f"{name}: default is not a {spec.get('type')}"
        assert spec.get("default") == value, f"{name}: argument_specs default differs from defaults/main.yml"
        assert name.startswith(role.name + "_"), f"{name} is not prefixed with the role name"


@pytest.mark.parametrize("role", ROLES, ids=[r.name for r in ROLES])
def test_role_has_the_common_shape(role):
    for part in ("tasks/main.yml", "tasks/preflight.yml", "meta/main.yml", "meta/argument_specs.yml"):
        assert (role / part).is_file(), f"{role.name} lacks {part}"
    first = load(role / "tasks" / "main.yml")[0]
    assert "preflight.yml" in str(first), f"{role.name}: preflight must come first"


def boolean_options(role):
    specs = load(role / "meta" / "argument_specs.yml")["argument_specs"]
    options = [item for spec in specs.values() for item in (spec.get("options") or {}).items()]
    return sorted({name for name, option in options if option.get("type") == "bool"})


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_every_boolean_is_normalised_where_it_is_read(role):
    """`-e x=false` gives the string "false", which is true in Jinja and which argument specs
    accept without converting it: every read of a boolean option goes through `| bool`."""
    unguarded = []
    files = [p for d in ("tasks", "handlers", "templates", "vars") for p in (role / d).rglob("*") if p.is_file()]
    for name in boolean_options(role):
        # Not a read: "name:" (a definition) or "(name)" (named in a message).
        use = re.compile(rf"(?<!\()\b{name}\b(?!\s*\|\s*bool)(?!\s*:)(?!\))")
        for path in files:
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if line.lstrip().startswith(("#", "tags:")):
                    continue
                if use.search(line):
                    unguarded.append(f"{path.relative_to(ROOT)}:{number}: {name}")
    assert unguarded == []
