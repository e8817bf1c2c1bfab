"""python3 supervisor_check.py FILE [PROGRAM]

Parse the supervisord configuration the way supervisord itself does, with FILE in place of
supervisord.conf or, given PROGRAM, of conf.d/PROGRAM.conf. Nothing is started; exit 2 with
supervisord's own message when the configuration would not load.
"""

import glob
import os
import shutil
import sys
import tempfile

from supervisor.options import ServerOptions

MAIN = "/etc/supervisor/supervisord.conf"
CONFD = "/etc/supervisor/conf.d"


def main(candidate, program=None):
    with tempfile.TemporaryDirectory() as work:
        confd = os.path.join(work, "conf.d")
        os.mkdir(confd)
        for path in glob.glob(os.path.join(CONFD, "*.conf")):
            shutil.copy(path, confd)
        source = candidate
        if program:
            shutil.copy(candidate, os.path.join(confd, program + ".conf"))
            source = MAIN
        with open(source, encoding="utf-8") as handle:
            text = handle.read().replace(CONFD + "/", confd + "/")
        config = os.path.join(work, "supervisord.conf")
        with open(config, "w", encoding="utf-8") as handle:
            handle.write(text)
        ServerOptions().realize(["-c", config])
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
