"""Every role documents exactly the variables it defaults, with matching types and values."""

import importlib.util
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


def role_readme_tool():
    spec = importlib.util.spec_from_file_location("role_readme", ROOT / "tools" / "role_readme.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_readme_is_the_one_written_from_the_argument_specs(role):
    """Galaxy refuses a role without README.md; it is generated, so it cannot drift."""
    readme = role / "README.md"
    assert readme.is_file(), f"{role.name} has no README.md (run make readmes)"
    assert readme.read_text() == role_readme_tool().render(role), f"{role.name}/README.md is stale (run make readmes)"
    for name in boolean_options(role):
        assert f"| `{name}` | bool |" in readme.read_text()


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


# The usual kernel hardening (CIS, dev-sec's os_hardening), with the value base must default to.
IPV4_INTERFACE_HARDENING = {
    "rp_filter": 1,
    "accept_redirects": 0,
    "secure_redirects": 0,
    "send_redirects": 0,
    "accept_source_route": 0,
    "log_martians": 1,
}
USUAL_KERNEL_HARDENING = {
    "fs.suid_dumpable": 0,
    "fs.protected_hardlinks": 1,
    "fs.protected_symlinks": 1,
    "fs.protected_fifos": 1,
    "fs.protected_regular": 2,
    "kernel.yama.ptrace_scope": 1,
    "kernel.randomize_va_space": 2,
    "kernel.kptr_restrict": 2,
    "kernel.dmesg_restrict": 1,
    "net.ipv4.tcp_syncookies": 1,
    "net.ipv4.icmp_echo_ignore_broadcasts": 1,
    "net.ipv4.icmp_ignore_bogus_error_responses": 1,
    **{
        f"net.ipv4.conf.{scope}.{key}": value
        for scope in ("all", "default")
        for key, value in IPV4_INTERFACE_HARDENING.items()
    },
    **{
        f"net.ipv6.conf.{scope}.{key}": 0
        for scope in ("all", "default")
        for key in ("accept_redirects", "accept_source_route")
    },
}


def test_every_kernel_setting_of_base_has_its_reason_and_the_usual_hardening_is_there():
    text = (ROOT / "roles" / "base" / "defaults" / "main.yml").read_text()
    block = re.search(r"^base_sysctl_defaults:\n((?:[ ]+.*\n)+)", text, re.MULTILINE)
    assert block, "roles/base/defaults/main.yml has no base_sysctl_defaults block"
    lines = block.group(1).splitlines()
    without_reason = [line.strip() for line in lines if not re.match(r"^\s+[a-z0-9_.]+: \S.*?\s+# \S", line)]
    assert without_reason == [], f"kernel settings without a trailing '# reason': {without_reason}"
    defaults = load(ROOT / "roles" / "base" / "defaults" / "main.yml")["base_sysctl_defaults"]
    assert len(lines) == len(defaults), "every line of base_sysctl_defaults must be one setting"
    missing = sorted(set(USUAL_KERNEL_HARDENING) - set(defaults))
    assert missing == [], f"usual kernel hardening missing from base_sysctl_defaults: {missing}"
    wrong = {key: defaults[key] for key, value in USUAL_KERNEL_HARDENING.items() if defaults[key] != value}
    assert wrong == {}, f"weaker than the usual hardening: {wrong}"
    # Switchable: base_sysctl overrides or removes (null) any key, through the template's merge.
    template = (ROOT / "roles" / "base" / "templates" / "sysctl.conf.j2").read_text()
    assert "base_sysctl_defaults | combine(base_sysctl)" in template and "if value is not none" in template
