"""Layouts: every order of N, C and the spatial letters gives the canonical result, permuted.

Integer-valued data, so every comparison is exact. The expected value is the canonical call
(NCHW / OIHW, tested everywhere else) on arrays transposed by hand with ``np.transpose``, an
independent route from the library's own permutation code.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import mimo_conv as mc
from mimo_conv import grad

SPATIAL = "DHW"


def transposed(array: np.ndarray[Any, Any], canonical: str, wanted: str) -> np.ndarray[Any, Any]:
    """``array`` whose axes are named by ``canonical``, reordered to ``wanted``'s letters."""
    return np.transpose(array, [canonical.index(letter) for letter in wanted])


@st.composite
def layout_problems(draw: st.DrawFn) -> dict[str, Any]:
    rank = draw(st.integers(1, 3))
    letters = SPATIAL[-rank:]
    batched = draw(st.booleans())
    lead = "NC" if batched else "C"
    layout = "".join(draw(st.permutations(lead + letters)))
    weight_layout = "".join(draw(st.permutations("OI" + letters)))
    groups = draw(st.sampled_from([1, 2]))
    shape = [draw(st.integers(3, 5)) for _ in range(rank)]
    kernel = [draw(st.integers(1, 3)) for _ in range(rank)]
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.integers(-5, 6, ((2,) if batched else ()) + (2 * groups, *shape)).astype(np.float64)
    weight = rng.integers(-5, 6, (2 * groups, 2, *kernel)).astype(np.float64)
    options = {
        "stride": draw(st.integers(1, 2)),
        "padding": draw(st.sampled_from([0, 1, "same", "same_lower"])),
        "groups": groups,
    }
    return {
        "x": x, "weight": weight, "layout": layout, "weight_layout": weight_layout,
        "lead": lead, "letters": letters, "options": options,
    }  # fmt: skip


@given(layout_problems())
def test_conv_in_any_layout_is_the_canonical_conv_permuted(problem: dict[str, Any]) -> None:
    lead, letters = problem["lead"], problem["letters"]
    layout, weight_layout = problem["layout"], problem["weight_layout"]
    # the spatial axes are taken in the kernel layout's order: reorder the canonical call too
    order = "".join(c for c in weight_layout if c in letters)
    x = transposed(problem["x"], lead + letters, lead + order)
    weight = transposed(problem["weight"], "OI" + letters, "OI" + order)
    expected = mc.conv(x, weight, **problem["options"])
    actual = mc.conv(
        transposed(x, lead + order, layout),
        transposed(weight, "OI" + order, weight_layout),
        layout=layout,
        weight_layout=weight_layout,
        **problem["options"],
    )
    np.testing.assert_array_equal(actual, transposed(expected, lead + order, layout))
    assert actual.flags.c_contiguous


@given(layout_problems())
def test_gradients_and_transpose_in_any_layout(problem: dict[str, Any]) -> None:
    lead, letters = problem["lead"], problem["letters"]
    layout, weight_layout = problem["layout"], problem["weight_layout"]
    order = "".join(c for c in weight_layout if c in letters)
    x = transposed(problem["x"], lead + letters, lead + order)
    weight = transposed(problem["weight"], "OI" + letters, "OI" + order)
    options = problem["options"]
    out = mc.conv(x, weight, **options)
    grad_out = np.arange(out.size, dtype=np.float64).reshape(out.shape) % 7 - 3
    expected = mc.conv_backward(grad_out, x, weight, **options)

    def to(array: np.ndarray[Any, Any], names: str) -> np.ndarray[Any, Any]:
        return transposed(array, (lead if names == "x" else "OI") + order,
                          layout if names == "x" else weight_layout)  # fmt: skip

    kwargs = {"layout": layout, "weight_layout": weight_layout, **options}
    actual = mc.conv_backward(to(grad_out, "x"), to(x, "x"), to(weight, "w"), **kwargs)
    np.testing.assert_array_equal(actual[0], to(expected[0], "x"))
    np.testing.assert_array_equal(actual[1], to(expected[1], "w"))
    np.testing.assert_array_equal(actual[2], expected[2])
    x_shape = to(x, "x").shape
    np.testing.assert_array_equal(
        grad.conv_input(x_shape, to(weight, "w"), to(grad_out, "x"), **kwargs), actual[0]
    )
    np.testing.assert_array_equal(
        grad.conv_weight(to(x, "x"), to(weight, "w").shape, to(grad_out, "x"), **kwargs),
        actual[1],
    )
    # conv_transpose: its kernel's canonical order is (I, O, *k); 'I' is grad_out's channels
    if options["padding"] in (0, 1) and options["groups"] == 1:
        expected_t = mc.conv_transpose(grad_out, weight, stride=options["stride"],
                                       padding=options["padding"])  # fmt: skip
        t_layout = weight_layout.replace("O", "i").replace("I", "O").replace("i", "I")
        actual_t = mc.conv_transpose(
            to(grad_out, "x"), transposed(weight, "IO" + order, t_layout),
            stride=options["stride"], padding=options["padding"], layout=layout,
            weight_layout=t_layout,
        )  # fmt: skip
        np.testing.assert_array_equal(actual_t, to(expected_t, "x"))


def test_layout_input_is_read_through_a_view_and_never_modified() -> None:
    x = np.arange(2 * 5 * 5 * 3, dtype=np.float64).reshape(2, 5, 5, 3)
    w = np.ones((3, 3, 3, 4))
    before = x.copy(), w.copy()
    out = mc.conv2d(x, w, padding="same", layout="NHWC", weight_layout="HWIO")
    assert out.shape == (2, 5, 5, 4)
    assert not np.shares_memory(out, x)
    np.testing.assert_array_equal(x, before[0])
    np.testing.assert_array_equal(w, before[1])


def test_layout_strings_name_the_axes_of_the_book_example() -> None:
    X = np.array([[[0, 1, 2], [3, 4, 5], [6, 7, 8]], [[1, 2, 3], [4, 5, 6], [7, 8, 9]]])
    K = np.array([[[[0, 1], [2, 3]], [[1, 2], [3, 4]]]])
    hwc = mc.conv2d(X.transpose(1, 2, 0), K.transpose(2, 3, 1, 0), layout="HWC",
                    weight_layout="HWIO")  # fmt: skip
    np.testing.assert_array_equal(hwc[..., 0], [[56, 72], [104, 120]])


BAD_LAYOUTS = [
    ("too-few-letters", {"layout": "NHW"}, ValueError, r"got 'NHW'"),
    ("lower-case", {"layout": "nchw"}, ValueError, r"upper-case letters .* got 'nchw'"),
    ("repeated", {"layout": "NCHH"}, ValueError, r"got 'NCHH'"),
    ("not-a-string", {"layout": 4}, TypeError, r"got 4 of type int"),
    ("weight-reserved", {"weight_layout": "OICW"}, ValueError, r"got 'OICW'"),
    ("weight-missing-o", {"weight_layout": "HWII"}, ValueError, r"'O', 'I' and 2 spatial"),
    ("letters-differ", {"layout": "NCHW", "weight_layout": "OIHD"}, ValueError,
     r"spatial letters of layout='NCHW' \('H', 'W'\), got weight_layout='OIHD'"),
    ("unbatched-with-n", {"layout": "NCHW", "x": np.ones((2, 4, 4))}, ValueError,
     r"x must have 4 dimensions to match its layout, got x of shape \(2, 4, 4\)"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [pytest.param(o, e, m, id=i) for i, o, e, m in BAD_LAYOUTS],
)
def test_bad_layouts_are_named_and_quoted(
    options: dict[str, Any], error: type[Exception], match: str
) -> None:
    x = options.pop("x", np.ones((1, 2, 4, 4)))
    with pytest.raises(error, match=match):
        mc.conv2d(x, np.ones((1, 2, 3, 3)), **options)


def test_rank_of_the_layout_is_that_of_the_function() -> None:
    with pytest.raises(ValueError, match=r"1 spatial letter .* got 'NHWC'"):
        mc.conv1d(np.ones((1, 4, 4, 2)), np.ones((1, 2, 3)), layout="NHWC")


@pytest.mark.parametrize(
    ("layout", "weight_layout"), list(itertools.product(["NWC", "NCW"], ["WIO", "OIW"]))
)
def test_one_dimensional_layouts(layout: str, weight_layout: str) -> None:
    x = np.arange(12.0).reshape(1, 2, 6)  # NCW
    w = np.arange(12.0).reshape(2, 2, 3) - 5  # OIW
    expected = transposed(mc.conv1d(x, w), "NCW", layout)
    actual = mc.conv1d(transposed(x, "NCW", layout), transposed(w, "OIW", weight_layout),
                       layout=layout, weight_layout=weight_layout)  # fmt: skip
    np.testing.assert_array_equal(actual, expected)
