"""The version of mimo_conv (the same as pyproject.toml's; ``mimo_conv.__version__``)."""

__version__ = "0.1.0"
