"""``python -m mimo_conv``: the command line (see ``python -m mimo_conv --help``)."""

from mimo_conv._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
