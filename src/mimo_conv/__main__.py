"""``python -m mimo_conv``: the command line (see ``python -m mimo_conv --help``)."""

import os
import sys

from mimo_conv._classroom.cli import main

if __name__ == "__main__":
    try:
        status = main()
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`python -m mimo_conv explain | head`): stop quietly, and keep
        # the interpreter's final flush from raising again on the closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        status = 1
    raise SystemExit(status)
