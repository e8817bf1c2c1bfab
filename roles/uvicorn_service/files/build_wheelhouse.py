# Copyright (c) aistack.fleet maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Build (once) the wheelhouse of an ASGI application on the controller.

Either builds the application's wheel from a source tree (copied to a temporary directory
first, so the tree is never written to) and fetches the wheels of its dependencies for the
target's Python and platform, or packs a prepared wheelhouse. The result is one tar file in
the cache, keyed by package, version, target and the extra requirements; when it exists
nothing is built again. Extra requirements (--extra, such as uvicorn[standard]) are resolved
together with the application's own pins. Prints one JSON object: changed, package,
version, tarball (or failed and msg).
"""

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile

WHEEL = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)(-\d[^-]*)?-[^-]+-[^-]+-[^-]+\.whl$")


def normalize(name):
    return re.sub(r"[-_.]+", "_", name).lower()


def fail(msg):
    print(json.dumps({"failed": True, "msg": msg}))
    sys.exit(1)


def run(argv):
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.strip().splitlines()[-15:])
        fail("uvicorn_service: '{}' failed on the controller:\n{}".format(" ".join(argv[:5]), tail))


def wheels_of(directory, package=None):
    found = []
    for entry in sorted(os.listdir(directory)):
        match = WHEEL.match(entry)
        if match and (package is None or normalize(match.group("name")) == normalize(package)):
            found.append((entry, match.group("name"), match.group("version")))
    return found


def pack(source_dir, tarball):
    partial = tarball + ".partial"
    with tarfile.open(partial, "w") as archive:
        for entry in sorted(os.listdir(source_dir)):
            archive.add(os.path.join(source_dir, entry), arcname=entry)
    os.replace(partial, tarball)


def from_source(args, work):
    if not os.path.isfile(os.path.join(args.source, "pyproject.toml")) and not os.path.isfile(
        os.path.join(args.source, "setup.py")
    ):
        fail(f"uvicorn_service: {args.source} is not a Python project (no pyproject.toml or setup.py).")
    tree = os.path.join(work, "src")
    shutil.copytree(
        args.source,
        tree,
        ignore=shutil.ignore_patterns("build", "dist", "*.egg-info", ".git", ".venv", "__pycache__", ".*_cache"),
    )
    app_dir = os.path.join(work, "app")
    run(
        [
            args.python,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            app_dir,
            tree,
        ]
    )
    built = wheels_of(app_dir)
    if len(built) != 1:
        fail(f"uvicorn_service: building {args.source} gave {len(built)} wheels, expected one.")
    wheel, name, version = built[0]
    key = os.path.join(args.cache, f"{normalize(name)}-{version}")
    extras = sorted(set(args.extra))
    suffix = "-" + hashlib.sha256("\n".join(extras).encode()).hexdigest()[:12] if extras else ""
    tarball = os.path.join(key, f"{args.target}{suffix}.tar")
    result = {"package": name, "version": version, "tarball": tarball, "changed": False}
    if os.path.isfile(tarball):
        return result
    house = os.path.join(work, "wheelhouse")
    os.makedirs(house)
    shutil.copy(os.path.join(app_dir, wheel), house)
    download = [args.python, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--dest", house]
    download += ["--python-version", args.python_version, "--implementation", "cp", "--abi", "cp" + args.python_version]
    download += ["--abi", "abi3", "--abi", "none"]
    for platform in args.platform:
        download += ["--platform", platform]
    run(download + [os.path.join(house, wheel)] + extras)
    os.makedirs(key, exist_ok=True)
    pack(house, tarball)
    result["changed"] = True
    return result


def from_wheelhouse(args):
    if not os.path.isdir(args.wheelhouse):
        fail(f"uvicorn_service: the wheelhouse {args.wheelhouse} does not exist on the controller.")
    if not args.package:
        fail("uvicorn_service: a prepared wheelhouse needs uvicorn_service_package (the distribution to install).")
    found = wheels_of(args.wheelhouse, args.package)
    if args.version:
        found = [f for f in found if f[2] == args.version]
    if len(found) != 1:
        fail(
            f"uvicorn_service: the wheelhouse {args.wheelhouse} holds {len(found)} wheels of {args.package}"
            f"{' ' + args.version if args.version else ''}; expected exactly one"
            " (set uvicorn_service_version to choose)."
        )
    name, version = found[0][1:]
    key = os.path.join(args.cache, f"{normalize(name)}-{version}")
    tarball = os.path.join(key, "prepared.tar")
    result = {"package": name, "version": version, "tarball": tarball, "changed": False}
    if not os.path.isfile(tarball):
        os.makedirs(key, exist_ok=True)
        pack(args.wheelhouse, tarball)
        result["changed"] = True
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="")
    parser.add_argument("--wheelhouse", default="")
    parser.add_argument("--package", default="")
    parser.add_argument("--version", default="")
    parser.add_argument("--cache", required=True)
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--python-version", default="")
    parser.add_argument("--platform", action="append", default=[])
    parser.add_argument("--target", default="")
    parser.add_argument("--extra", action="append", default=[])
    args = parser.parse_args()
    if args.source:
        if not os.path.isdir(args.source):
            fail(f"uvicorn_service: the source {args.source} does not exist on the controller.")
        work = tempfile.mkdtemp(prefix="uvicorn-service-build-")
        try:
            result = from_source(args, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    else:
        result = from_wheelhouse(args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
