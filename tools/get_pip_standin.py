"""Stand-in for the pip bootstrap script that ``ansible-test --venv`` downloads.

ansible-test fetches ``get-pip.py`` from a host our build machines cannot reach; it then
runs that script with pip-install arguments to put pip into each new virtual environment.
This script does the same job with the pip wheel from PyPI that sits beside it: pip runs
from the wheel and installs the packages named on the command line.
"""

import sys
from pathlib import Path

GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}


def main():
    wheel = next(Path(__file__).resolve().parent.glob("pip-*.whl"))
    sys.path.insert(0, str(wheel))
    from pip._internal.cli.main import main as pip_main  # noqa: PLC0415

    return pip_main(["install", *[arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY]])


if __name__ == "__main__":
    sys.exit(main())
