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


def test_every_method_argument_documents_every_method_name() -> None:
    from mimo_conv import grad  # noqa: PLC0415 - the submodule, next to the top level

    functions = [getattr(mimo_conv, name) for name in mimo_conv.__all__]
    functions += [getattr(grad, name) for name in grad.__all__]
    documented = 0
    for function in functions:
        if not callable(function) or "method" not in inspect.signature(function).parameters:
            continue
        doc = inspect.getdoc(function) or ""
        if "method : {" not in doc:
            continue  # its entry refers to a function whose entry lists the names
        entry = doc[doc.index("method : {") :].splitlines()[0]
        for name in mimo_conv.METHOD_NAMES:
            assert f'"{name}"' in entry, (function.__name__, name, entry)
        documented += 1
    assert documented >= 3  # conv and the two gradients at least
