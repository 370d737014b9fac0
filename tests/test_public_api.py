"""The public face: ``__all__`` lists exactly the public names, all documented."""

from __future__ import annotations

import inspect
from importlib.resources import files

import mimo_conv


def test_all_has_no_duplicates() -> None:
    # The order is ruff's RUF022 (constants, classes, functions), checked by the linter.
    assert len(mimo_conv.__all__) == len(set(mimo_conv.__all__))


def test_all_matches_the_public_names() -> None:
    public = {
        name
        for name, value in vars(mimo_conv).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert public == set(mimo_conv.__all__)


def test_every_public_callable_has_a_docstring_with_examples() -> None:
    missing = [
        name
        for name in mimo_conv.__all__
        if callable(getattr(mimo_conv, name))
        and "Examples" not in (inspect.getdoc(getattr(mimo_conv, name)) or "")
    ]
    assert missing == []


def test_py_typed_is_shipped() -> None:
    assert files("mimo_conv").joinpath("py.typed").is_file()
