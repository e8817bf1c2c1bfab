"""Every role documents exactly the variables it defaults, with matching types and values."""

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
