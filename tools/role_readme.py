"""Write each role's README.md from its meta/argument_specs.yml and meta/main.yml.

Galaxy and Automation Hub need a README in every role; generating it from the argument
specs keeps one source for a role's variables; the unit suite fails on a README that differs
from what this writes.
"""

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
HEADER = "<!-- Written by tools/role_readme.py from meta/argument_specs.yml: edit those, then run `make readmes`. -->"

# Ansible's documentation markup, as Markdown.
MARKUP = [
    (re.compile(r"L\(([^,)]+),\s*([^)]+)\)"), r"[\1](\2)"),
    (re.compile(r"U\(([^)]+)\)"), r"<\1>"),
    (re.compile(r"O\((?:[^)#]+#role:[^:]+:)?([^)]+)\)"), r"`\1`"),
    (re.compile(r"[CVMP]\(([^)]+)\)"), r"`\1`"),
    (re.compile(r"RV\(([^)]+)\)"), r"`\1`"),
    (re.compile(r"I\(([^)]+)\)"), r"*\1*"),
    (re.compile(r"B\(([^)]+)\)"), r"**\1**"),
]


def markdown(text):
    if isinstance(text, list):
        text = " ".join(str(part) for part in text)
    text = " ".join(str(text).split())
    for pattern, replacement in MARKUP:
        text = pattern.sub(replacement, text)
    return text.replace("|", "\\|")


def default_text(option):
    if "default" not in option:
        return "required" if option.get("required") else ""
    return "`" + json.dumps(option["default"], ensure_ascii=False).replace("|", "\\|") + "`"


def option_rows(options, prefix=""):
    for name, option in options.items():
        kind = option.get("type", "str")
        if option.get("elements"):
            kind += f" of {option['elements']}"
        description = markdown(option.get("description", ""))
        if option.get("choices"):
            description += " Choices: " + ", ".join(f"`{c}`" for c in option["choices"]) + "."
        if option.get("no_log"):
            description += " Secret: never logged."
        yield f"| `{prefix}{name}` | {kind} | {default_text(option)} | {description} |"
        if option.get("options"):
            yield from option_rows(option["options"], f"{prefix}{name}.")


def render(role):
    specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    meta = yaml.safe_load((role / "meta" / "main.yml").read_text())["galaxy_info"]
    galaxy = yaml.safe_load((ROOT / "galaxy.yml").read_text())
    fqcn = f"{galaxy['namespace']}.{galaxy['name']}.{role.name}"
    main = specs["main"]
    platforms = "; ".join(f"{p['name']} {', '.join(p['versions'])}" for p in meta.get("platforms", []))
    lines = [
        HEADER,
        f"# Role `{fqcn}`",
        "",
        markdown(main["short_description"]) + ".",
        "",
        *[f"- {markdown(part)}" for part in main.get("description", [])],
        "",
        f"Platforms: {platforms}. Ansible core {meta['min_ansible_version']} or later. License: {meta['license']}.",
    ]
    if (ROOT / "docs" / "roles" / f"{role.name}.md").is_file():
        lines += [
            "",
            f"The full guide (behaviour, security settings, measured figures, tests): "
            f"[docs/roles/{role.name}.md]({galaxy['repository']}/blob/main/docs/roles/{role.name}.md).",
        ]
    lines += ["", "## Use", "", "```yaml", "- hosts: all", "  become: true", "  roles:", f"    - {fqcn}", "```"]
    for entry, spec in specs.items():
        title = "Variables of the role" if entry == "main" else f"Entry point `tasks_from: {entry}`"
        lines += ["", f"## {title}", ""]
        if entry != "main":
            lines += [markdown(spec.get("short_description", "")) + ".", ""]
            lines += [f"- {markdown(part)}" for part in spec.get("description", [])]
            if spec.get("description"):
                lines.append("")
        options = spec.get("options") or {}
        if options:
            lines += ["| Variable | Type | Default | Description |", "|---|---|---|---|", *option_rows(options)]
        else:
            lines.append("No variables.")
    return "\n".join(lines) + "\n"


def roles():
    return sorted(p.parent.parent for p in ROOT.glob("roles/*/meta/argument_specs.yml"))


def main():
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    for role in roles():
        (role / "README.md").write_text(render(role))
    return 0


if __name__ == "__main__":
    sys.exit(main())
