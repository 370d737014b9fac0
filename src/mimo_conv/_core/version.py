"""The version of mimo_conv (the same as pyproject.toml's; ``mimo_conv.__version__``)."""

VERSION = "0.1.0"
