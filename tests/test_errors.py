"""Every bad input of issue 2 raises a clear error, before any work, on every method.

One row per case, with a readable id; each row checks the exception type and that the
message names the argument and quotes the offending values. Rows whose error does not
depend on the method run on every name in ``METHOD_NAMES``; afterwards the inputs must be
unchanged.
"""

from __future__ import annotations

import copy
import re
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

import mimo_conv as mc
from mimo_conv._paths.registry import METHOD_NAMES

# "winograd" (by name only) has its own bound and refusals: tests/test_winograd.py.
EXACT_METHODS = tuple(m for m in METHOD_NAMES if m != "winograd")

INT64_MAX = 2**63 - 1

# A valid 2-d call: a batch of one 2-channel 5 x 5 image, four 3 x 3 kernels.
X = np.arange(50, dtype=np.float64).reshape(1, 2, 5, 5)
W = np.ones((4, 2, 3, 3))
W1X1 = np.ones((4, 2, 1, 1))
B = np.zeros(4)

MODES = r"\('zeros', 'reflect', 'replicate', 'circular', 'symmetric'\)"
STRINGS = r"\('valid', 'same', 'full', 'same_lower'\)"
NEEDS_NUMBERS = r"must hold numbers \(an integer, floating, complex or object dtype\), got dtype"


def row(
    id_: str,
    error: type[Exception],
    match: str,
    *args: Any,
    function: Callable[..., Any] = mc.conv2d,
    **kwargs: Any,
) -> Any:
    """One table row: ``function(*args, **kwargs)`` raises ``error`` matching ``match``."""
    return pytest.param(function, args, kwargs, error, match, id=id_)


BAD_CALLS = [
    # --- ranks -------------------------------------------------------------------------
    row("x-rank-too-low", ValueError,
        r"x must have 3 \(unbatched\) or 4 \(batched\) dimensions for a weight of shape "
        r"\(4, 2, 3, 3\), got x of shape \(5, 5\)", np.zeros((5, 5)), W),
    row("x-rank-too-high", ValueError,
        r"x must have 3 \(unbatched\) or 4 \(batched\) .* got x of shape \(1, 1, 2, 5, 5\)",
        np.zeros((1, 1, 2, 5, 5)), W),
    row("x-scalar", ValueError, r"x must have 2 \(unbatched\) or 3 .* got x of shape \(\)",
        5.0, np.ones((1, 1, 1)), function=mc.conv),
    row("conv1d-weight-rank", ValueError,
        r"weight must have 3 dimensions \(C_out, C_in/groups, 1 kernel dims\) for a 1-d "
        r"convolution, got weight of shape \(4, 2, 3, 3\)", X, W, function=mc.conv1d),
    row("conv2d-weight-rank", ValueError,
        r"weight must have 4 dimensions .* for a 2-d convolution, got weight of shape "
        r"\(4, 2, 3\)", X, np.ones((4, 2, 3))),
    row("conv3d-weight-rank", ValueError,
        r"weight must have 5 dimensions .* for a 3-d convolution, got weight of shape "
        r"\(4, 2, 3, 3\)", X, W, function=mc.conv3d),
    row("conv-weight-rank-2", ValueError,
        r"weight must have at least 3 dimensions \(C_out, C_in/groups, \*kernel\), got weight "
        r"of shape \(4, 2\)", X, np.ones((4, 2)), function=mc.conv),
    row("conv-weight-scalar", ValueError,
        r"weight must have at least 3 dimensions .* got weight of shape \(\)", X, 1.0,
        function=mc.conv),
    row("weight-zero-taps", ValueError,
        r"weight must have at least one kernel tap per axis, got weight of shape \(4, 2, 0, 3\)",
        X, np.ones((4, 2, 0, 3))),
    # --- channels and groups -----------------------------------------------------------
    row("channel-mismatch", ValueError,
        r"Given groups=1, weight of shape \(4, 2, 3, 3\), expected x of shape \(1, 3, 5, 5\) "
        r"to have 2 channels, but got 3 channels instead", np.zeros((1, 3, 5, 5)), W),
    row("channel-mismatch-unbatched", ValueError,
        r"Given groups=1, weight of shape \(4, 2, 3, 3\), expected x of shape \(1, 5, 5\) "
        r"to have 2 channels, but got 1 channels instead", np.zeros((1, 5, 5)), W),
    row("channel-mismatch-groups", ValueError,
        r"Given groups=2, weight of shape \(4, 2, 3, 3\), expected x of shape \(1, 2, 5, 5\) "
        r"to have 4 channels, but got 2 channels instead", X, W, groups=2),
    row("groups-zero", ValueError, r"groups must be >= 1, got 0", X, W, groups=0),
    row("groups-negative", ValueError, r"groups must be >= 1, got -2", X, W, groups=-2),
    row("groups-not-dividing-C_out", ValueError,
        r"groups must divide the output channels: weight of shape \(3, 1, 3, 3\) has 3 output "
        r"channels, which groups=2 does not divide", X, np.ones((3, 1, 3, 3)), groups=2),
    row("groups-not-dividing-C_in", ValueError,
        r"groups must divide the input channels: x of shape \(1, 3, 5, 5\) has 3 input "
        r"channels, which groups=2 does not divide",
        np.zeros((1, 3, 5, 5)), np.ones((4, 1, 3, 3)), groups=2),
    row("groups-float", TypeError, r"groups must be an int, got 1\.0 of type float", X, W,
        groups=1.0),
    row("groups-bool", TypeError, r"groups must be an int, got True of type bool", X, W,
        groups=True),
    # --- bias --------------------------------------------------------------------------
    row("bias-wrong-length", ValueError,
        r"bias must have shape \(4,\) to match weight of shape \(4, 2, 3, 3\), got bias of "
        r"shape \(3,\)", X, W, np.zeros(3)),
    row("bias-2d", ValueError, r"bias must have shape \(4,\) .* got bias of shape \(4, 1\)",
        X, W, np.zeros((4, 1))),
    row("bias-scalar", ValueError, r"bias must have shape \(4,\) .* got bias of shape \(\)",
        X, W, 1.0),
    # --- stride, dilation, padding values ----------------------------------------------
    row("stride-zero", ValueError, r"stride must be >= 1 along every axis, got 0", X, W,
        stride=0),
    row("stride-tuple-zero", ValueError, r"stride must be >= 1 along every axis, got \(1, 0\)",
        X, W, stride=(1, 0)),
    row("dilation-zero", ValueError, r"dilation must be >= 1 along every axis, got 0", X, W,
        dilation=0),
    row("dilation-negative-tuple", ValueError,
        r"dilation must be >= 1 along every axis, got \(-1, 1\)", X, W, dilation=(-1, 1)),
    row("padding-negative", ValueError, r"padding must be >= 0 along every axis, got -1", X, W,
        padding=-1),
    row("padding-negative-per-axis", ValueError,
        r"padding must be >= 0 along every axis, got \(1, -1\)", X, W, padding=(1, -1)),
    row("padding-negative-pair", ValueError,
        r"padding must be >= 0 along every axis, got \(\(0, 0\), \(0, -2\)\)", X, W,
        padding=((0, 0), (0, -2))),
    # --- option names ------------------------------------------------------------------
    row("padding-string-unknown", ValueError,
        rf"padding must be an int, a sequence, or one of {STRINGS}, got 'sam'", X, W,
        padding="sam"),
    row("padding-string-case", ValueError, rf"one of {STRINGS}, got 'SAME'", X, W,
        padding="SAME"),
    row("padding-mode-unknown", ValueError,
        rf"padding_mode must be one of {MODES}, got 'mirror'", X, W, padding=1,
        padding_mode="mirror"),
    row("padding-mode-constant", ValueError, rf"padding_mode must be one of {MODES}, got "
        r"'constant'", X, W, padding_mode="constant"),
    row("padding-mode-none", ValueError, rf"padding_mode must be one of {MODES}, got None", X, W,
        padding_mode=None),
    # --- lengths -----------------------------------------------------------------------
    row("stride-wrong-length", ValueError,
        r"stride must be an int or a sequence of 2 ints \(one per spatial dimension\), got "
        r"\(1, 1, 1\) of length 3", X, W, stride=(1, 1, 1)),
    row("dilation-wrong-length", ValueError,
        r"dilation must be an int or a sequence of 2 ints .* got \(1, 1, 1\) of length 3", X, W,
        dilation=(1, 1, 1)),
    row("stride-empty", ValueError, r"stride must be an int or a sequence of 2 ints .* got \(\) "
        r"of length 0", X, W, stride=()),
    row("padding-wrong-length", ValueError,
        r"padding must have one entry per spatial dimension \(2\), got \(1, 1, 1\) of "
        r"length 3", X, W, padding=(1, 1, 1)),
    row("padding-pair-for-1d-is-2-entries", ValueError,
        r"padding must have one entry per spatial dimension \(1\), got \(1, 2\) of length 2",
        np.zeros((1, 5)), np.ones((1, 1, 3)), padding=(1, 2), function=mc.conv1d),
    row("padding-pair-wrong-length", ValueError,
        r"padding entries must be an int or a \(before, after\) pair, got \(1, 2, 3\) in "
        r"padding=\(\(1, 2, 3\), \(0, 0\)\)", X, W, padding=((1, 2, 3), (0, 0))),
    # --- a float or bool where an int is needed ----------------------------------------
    row("stride-float", TypeError, r"stride must be an int, got 2\.0 of type float", X, W,
        stride=2.0),
    row("stride-bool", TypeError, r"stride must be an int, got True of type bool", X, W,
        stride=True),
    row("stride-tuple-float", TypeError, r"stride must be an int, got 2\.0 of type float", X, W,
        stride=(1, 2.0)),
    row("stride-str", TypeError, r"stride must be an int, got '2' of type str", X, W,
        stride="2"),
    row("dilation-float", TypeError, r"dilation must be an int, got 1\.5 of type float", X, W,
        dilation=1.5),
    row("dilation-numpy-bool", TypeError, r"dilation must be an int, got .*True.* of type bool",
        X, W, dilation=np.True_),
    row("padding-float", TypeError, r"padding must be an int, got 1\.0 of type float", X, W,
        padding=1.0),
    row("padding-bool", TypeError, r"padding must be an int, got False of type bool", X, W,
        padding=False),
    row("padding-pair-float", TypeError, r"padding must be an int, got 1\.0 of type float", X, W,
        padding=((0, 1.0), (0, 0))),
    row("padding-none", TypeError, r"padding must be an int, got None of type NoneType", X, W,
        padding=None),
    # --- the kernel must fit -----------------------------------------------------------
    row("kernel-larger-than-input", ValueError,
        r"the \(dilated\) kernel must fit in the padded input: along spatial axis 0 the kernel "
        r"spans 3 \(weight of shape \(4, 2, 3, 3\), dilation=\(1, 1\)\) but the padded input "
        r"has 2 \(x of shape \(1, 2, 2, 5\), padding=\(\(0, 0\), \(0, 0\)\)\)",
        np.zeros((1, 2, 2, 5)), W),
    row("dilated-kernel-larger-than-input", ValueError,
        r"along spatial axis 1 the kernel spans 7 \(weight of shape \(4, 2, 3, 3\), "
        r"dilation=\(1, 3\)\) but the padded input has 5", X, W, dilation=(1, 3)),
    row("kernel-larger-than-padded-input", ValueError,
        r"along spatial axis 0 the kernel spans 3 .* but the padded input has 2 \(x of shape "
        r"\(1, 2, 1, 5\), padding=\(\(0, 1\), \(0, 0\)\)\)",
        np.zeros((1, 2, 1, 5)), W, padding=((0, 1), (0, 0))),
    row("empty-spatial-input", ValueError, r"the padded input has 0 \(x of shape \(2, 0\)",
        np.zeros((2, 0)), np.ones((1, 2, 1)), function=mc.conv1d),
    # --- padding modes that need a large enough input -----------------------------------
    row("reflect-padding-equal-to-input", ValueError,
        r"padding_mode='reflect' needs padding < input size \(3\) along spatial axis 0, got "
        r"padding \(3, 3\)", np.zeros((1, 2, 3, 5)), W, padding=3, padding_mode="reflect"),
    row("reflect-padding-larger-one-side", ValueError,
        r"padding_mode='reflect' needs padding < input size \(5\) along spatial axis 1, got "
        r"padding \(0, 6\)", X, W, padding=((0, 0), (0, 6)), padding_mode="reflect"),
    row("circular-padding-larger-than-input", ValueError,
        r"padding_mode='circular' needs padding <= input size \(5\) along spatial axis 0, got "
        r"padding \(6, 6\)", X, W, padding=6, padding_mode="circular"),
    row("symmetric-padding-larger-than-input", ValueError,
        r"padding_mode='symmetric' needs padding <= input size \(5\) .* got padding \(6, 6\)",
        X, W, padding=6, padding_mode="symmetric"),
    row("replicate-empty-input", ValueError,
        r"padding_mode='replicate' needs a non-empty input along spatial axis 0, got padding "
        r"\(2, 2\)", np.zeros((1, 2, 0, 5)), W, padding=2, padding_mode="replicate"),
    # --- dtypes --------------------------------------------------------------------------
    row("x-bool", TypeError, rf"x {NEEDS_NUMBERS} bool", X > 0, W),
    row("x-str", TypeError, rf"x {NEEDS_NUMBERS} <U1", [[["a"]]], np.ones((1, 1, 1, 1))),
    row("x-bytes", TypeError, rf"x {NEEDS_NUMBERS} \|S1", np.zeros((1, 2, 5, 5), dtype="S1"), W),
    row("x-datetime", TypeError, rf"x {NEEDS_NUMBERS} datetime64\[s\]",
        np.zeros((1, 2, 5, 5), dtype="datetime64[s]"), W),
    row("x-timedelta", TypeError, rf"x {NEEDS_NUMBERS} timedelta64\[ms\]",
        np.zeros((1, 2, 5, 5), dtype="timedelta64[ms]"), W),
    row("x-structured", TypeError, rf"x {NEEDS_NUMBERS} \[\('a', '<f8'\)\]",
        np.zeros((1, 2, 5, 5), dtype=[("a", "<f8")]), W),
    row("weight-bool", TypeError, rf"weight {NEEDS_NUMBERS} bool", X, W > 0),
    row("weight-datetime", TypeError, rf"weight {NEEDS_NUMBERS} datetime64\[D\]",
        X, W.astype("datetime64[D]")),
    row("bias-bool", TypeError, rf"bias {NEEDS_NUMBERS} bool", X, W, [True] * 4),
    row("bias-str", TypeError, rf"bias {NEEDS_NUMBERS} <U1", X, W, ["a"] * 4),
    row("x-object-none", TypeError,
        r"x must hold numbers, but its object array contains None of type NoneType",
        np.array([[1.0, None, 2.0]], dtype=object), np.ones((1, 1, 1)), function=mc.conv1d),
    row("x-none", TypeError, r"x must hold numbers, but its object array contains None", None,
        W),
    row("x-object-str", TypeError,
        r"x must hold numbers, but its object array contains '7' of type str",
        np.array([[1, "7"]], dtype=object), np.ones((1, 1, 1)), function=mc.conv1d),
    row("weight-object-bool", TypeError,
        r"weight must hold numbers, but its object array contains True of type bool",
        np.ones((1, 2)), np.array([[[1, True]]], dtype=object), function=mc.conv1d),
    row("bias-object-list", TypeError,
        r"bias must hold numbers, but its object array contains \[1\] of type list",
        np.ones((1, 2)), np.ones((2, 1, 1)), np.array([[1], 2], dtype=object),
        function=mc.conv1d),
    row("x-ragged", ValueError,
        r"x must be a rectangular array-like of numbers, got a ragged nested sequence",
        [[1.0, 2.0, 3.0], [1.0]], [[[1.0]]], function=mc.conv1d),
    row("weight-ragged", ValueError, r"weight must be a rectangular array-like of numbers",
        [[1.0, 2.0, 3.0]], [[[1.0, 2.0]], [[1.0]]], function=mc.conv1d),
    # --- integer overflow -----------------------------------------------------------------
    row("int-overflow", OverflowError,
        r"an int64 convolution could overflow: max\|x\| \* max\|weight\| \* terms \+ max\|bias\| "
        r"= 4294967296 \* 4294967296 \* 1 \+ 0 = 18446744073709551616 > 9223372036854775807; "
        r"pass arrays of dtype=object",
        np.array([[2**32]]), np.array([[[2**32]]]), function=mc.conv1d),
    row("int-overflow-from-terms", OverflowError,
        r"= 2147483648 \* 2147483648 \* 2 \+ 0 = 9223372036854775808 > 9223372036854775807",
        np.array([[-(2**31), -(2**31)]], dtype=np.int32), np.array([[[2**31, 1]]]),
        function=mc.conv1d),
    row("int-overflow-from-bias", OverflowError,
        r"= 1 \* 9223372036854775807 \* 1 \+ 1 = 9223372036854775808 > 9223372036854775807",
        np.array([[1]], dtype=np.int8), np.array([[[INT64_MAX]]]), np.array([1], np.uint8),
        function=mc.conv1d),
    row("uint64-beyond-int64", OverflowError,
        r"= 9223372036854775808 \* 1 \* 1 \+ 0 = 9223372036854775808 > 9223372036854775807",
        np.array([[2**63]], dtype=np.uint64), np.array([[[1]]], dtype=np.uint8),
        function=mc.conv1d),
]  # fmt: skip


def snapshot(value: Any) -> Any:
    """A deep copy to compare the argument with afterwards."""
    return copy.deepcopy(value)


def assert_unchanged(before: Any, after: Any) -> None:
    if isinstance(before, np.ndarray):
        assert isinstance(after, np.ndarray)
        assert before.dtype == after.dtype
        assert before.shape == after.shape
        # equal_nan is not needed: no row holds a NaN; object arrays compare elementwise.
        assert np.array_equal(before, after)
    else:
        assert before == after


@pytest.mark.parametrize("method", METHOD_NAMES)
@pytest.mark.parametrize(("function", "args", "kwargs", "error", "match"), BAD_CALLS)
def test_bad_call_raises_the_same_clear_error_on_every_method(
    function: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    error: type[Exception],
    match: str,
    method: str,
) -> None:
    before = snapshot((args, kwargs))
    with pytest.raises(error, match=match):
        function(*args, **kwargs, method=method)
    for old, new in zip(before[0], args, strict=True):
        assert_unchanged(old, new)
    for key, old in before[1].items():
        assert_unchanged(old, kwargs[key])


# --- errors that depend on the method --------------------------------------------------

METHODS_LIST = re.escape(repr(METHOD_NAMES))  # every valid name, quoted


@pytest.mark.parametrize(
    ("method", "match"),
    [
        pytest.param("fft", rf"method must be one of {METHODS_LIST}, got 'fft'", id="fft"),
        pytest.param("Naive", rf"method must be one of {METHODS_LIST}, got 'Naive'", id="case"),
        pytest.param(None, rf"method must be one of {METHODS_LIST}, got None", id="none"),
        pytest.param(["naive"], r"got \['naive'\]", id="list"),
    ],
)
def test_unknown_method_lists_the_valid_ones(method: Any, match: str) -> None:
    assert {"auto", "naive", "einsum", "matmul"} <= set(METHOD_NAMES)
    with pytest.raises(ValueError, match=match):
        mc.conv2d(X, W, method=method)


@pytest.mark.parametrize(
    ("function", "x", "weight", "shape"),
    [
        pytest.param(mc.conv1d, np.zeros((2, 5)), np.ones((4, 2, 3)), r"\(3,\)", id="1d"),
        pytest.param(mc.conv2d, X, W, r"\(3, 3\)", id="2d"),
        pytest.param(mc.conv2d, X, np.ones((4, 2, 1, 2)), r"\(1, 2\)", id="2d-1x2"),
        pytest.param(mc.conv3d, np.zeros((1, 5, 5, 5)), np.ones((1, 1, 1, 1, 3)),
                     r"\(1, 1, 3\)", id="3d"),
    ],
)  # fmt: skip
def test_matmul_needs_a_1x1_kernel(
    function: Callable[..., Any], x: Any, weight: Any, shape: str
) -> None:
    with pytest.raises(
        ValueError,
        match=rf"method='matmul' needs a 1 x 1 kernel, got kernel shape {shape}; use "
        r"method='einsum' or 'auto'",
    ):
        function(x, weight, method="matmul")


def test_matmul_accepts_a_1x1_kernel() -> None:
    # The counterpart of the row above: the same call with a 1 x 1 kernel works.
    out = mc.conv2d(X, W1X1, method="matmul")
    assert out.tolist() == (X[:, 0] + X[:, 1])[:, np.newaxis].repeat(4, axis=1).tolist()


# --- errors before any work -------------------------------------------------------------

HUGE = 2**20  # a 2**20 x 2**20 output: terabytes


@pytest.mark.parametrize("method", METHOD_NAMES)
@pytest.mark.parametrize(
    ("dtype", "itemsize"),
    [(np.float64, 8), (np.float32, 4), (np.int64, 8), (np.complex128, 16), (object, 8)],
    ids=["float64", "float32", "int64", "complex128", "object"],
)
def test_huge_output_is_a_memory_error_without_allocating(
    dtype: type, itemsize: int, method: str
) -> None:
    # A 2**40-element input that stores one element; the output would need terabytes.
    x: NDArray[Any] = np.broadcast_to(np.ones((), dtype=dtype), (HUGE, 2, HUGE))
    weight: NDArray[Any] = np.ones((4, 2, 1), dtype=dtype)
    nbytes = HUGE * 4 * HUGE * itemsize
    tracemalloc.start()
    try:
        with pytest.raises(
            MemoryError,
            match=rf"the output of shape \({HUGE}, 4, {HUGE}\) and dtype \w+ needs {nbytes} bytes",
        ):
            mc.conv1d(x, weight, method=method)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2**20, f"{peak} bytes allocated before the MemoryError"


def test_memory_error_names_the_human_size() -> None:
    x = np.broadcast_to(np.float64(1.0), (HUGE, 1, HUGE))
    with pytest.raises(MemoryError, match=r"needs 8796093022208 bytes \(8\.0 TiB\)"):
        mc.conv1d(x, np.ones((1, 1, 1)))


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_overflow_error_on_a_huge_broadcast_input_without_scanning_it(method: str) -> None:
    # 2**40 stored-once elements, a stride that keeps the output to 2 elements: the range
    # check must read the one stored value, not 2**40 of them, and allocate nothing.
    x = np.broadcast_to(np.int64(-(2**62)), (1, 2**40))
    weight = np.array([[[4]]])
    tracemalloc.start()
    try:
        with pytest.raises(
            OverflowError,
            match=r"= 4611686018427387904 \* 4 \* 1 \+ 0 = 18446744073709551616 > "
            r"9223372036854775807; pass arrays of dtype=object holding Python ints",
        ):
            mc.conv1d(x, weight, stride=2**39, method=method)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2**20


def test_object_elements_of_a_huge_broadcast_input_are_checked_once() -> None:
    # 2**41 elements described, 2 stored: the element check reads the stored ones.
    x = np.broadcast_to(np.array([1, None], dtype=object), (2**20, 2**20, 2))
    weight = np.broadcast_to(np.ones(()), (1, 2**20, 1))
    tracemalloc.start()
    try:
        with pytest.raises(
            TypeError, match=r"x must hold numbers, but its object array contains None"
        ):
            mc.conv1d(x, weight)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2**20


@pytest.mark.parametrize("method", EXACT_METHODS)
def test_overflow_bound_is_exact_at_int64_max(method: str) -> None:
    # Two channels of 2**62 - 1, a 1 x 1 kernel of ones, bias 1:
    # max|x| * max|w| * terms + max|bias| = (2**62 - 1) * 1 * 2 + 1 = int64 max exactly.
    x = np.full((2, 1), 2**62 - 1)
    weight = np.ones((1, 2, 1), dtype=np.int64)
    out = mc.conv1d(x, weight, np.array([1]), method=method)
    assert out.dtype == np.int64
    assert out.tolist() == [[2 * (2**62 - 1) + 1]]
    assert out.tolist() == [[INT64_MAX]]
    with pytest.raises(
        OverflowError, match=r"= 4611686018427387903 \* 1 \* 2 \+ 2 = 9223372036854775808 >"
    ):
        mc.conv1d(x, weight, np.array([2]), method=method)


def test_einsum_names_its_spatial_rank_limit() -> None:
    dims = 17
    x = np.ones((1,) + (1,) * dims)
    weight = np.ones((1, 1) + (1,) * dims)
    assert mc.conv(x, weight, method="naive").shape == (1,) + (1,) * dims  # valid otherwise
    with pytest.raises(ValueError, match=r"method='einsum'.*17"):
        mc.conv(x, weight, method="einsum")


@pytest.mark.parametrize(
    ("option", "bad_value"),
    [
        ("stride", 1.0),
        ("stride", True),
        ("stride", (1, True)),
        ("dilation", np.float64(1)),
        ("padding", 0.0),
        ("padding", ((0, False), (0, 0))),
        ("groups", True),
    ],
    ids=repr,
)
def test_a_cached_valid_call_never_answers_for_an_equal_comparing_invalid_one(
    option: str, bad_value: object
) -> None:
    # Validated geometries are cached; 1 == 1.0 == True, so the cache key must tell them
    # apart or the second call would silently reuse the first call's geometry.
    x, weight = np.ones((1, 1, 4, 4)), np.ones((1, 1, 2, 2))
    valid_value: object = {"stride": 1, "dilation": 1, "padding": 0, "groups": 1}[option]
    if isinstance(bad_value, tuple):
        valid_value = (1, 1) if option != "padding" else ((0, 0), (0, 0))
    call: Any = mc.conv  # the options are deliberately of the wrong types
    assert call(x, weight, **{option: valid_value}).shape == (1, 1, 3, 3)
    with pytest.raises(TypeError, match=rf"{option} must be an int"):
        call(x, weight, **{option: bad_value})


RANK_32_CALLS: list[tuple[str, Callable[[NDArray[Any], NDArray[Any]], object]]] = [
    ("conv", mc.conv),
    ("conv-gemm", lambda x, w: mc.conv(x, w, method="gemm")),
    ("conv_transpose", mc.conv_transpose),
    ("conv_backward", lambda x, w: mc.conv_backward(x, x, w)),
    ("conv_input", lambda x, w: mc.grad.conv_input(x.shape, w, x)),
    ("conv_weight", lambda x, w: mc.grad.conv_weight(x, w.shape, x)),
    ("explain_method", mc.explain_method),
    ("unfold", lambda x, w: mc.unfold(x, w.shape[2:])),
]


@pytest.mark.parametrize("call", [c for _, c in RANK_32_CALLS], ids=[n for n, _ in RANK_32_CALLS])
def test_32_spatial_dimensions_are_refused_at_the_boundary(
    call: Callable[[NDArray[Any], NDArray[Any]], object],
) -> None:
    # A window view has N, C, 32 output and 32 kernel axes: 66 > NumPy's 64. The error
    # must say so before any work, not come from deep inside NumPy.
    x, weight = np.ones((1, 1) + (1,) * 32), np.ones((1, 1) + (1,) * 32)
    with pytest.raises(ValueError, match=r"weight must have at most 31 spatial dimensions"):
        call(x, weight)


def test_31_spatial_dimensions_still_work() -> None:
    x = np.arange(3.0).reshape((1, 1, 3) + (1,) * 30)
    weight = np.ones((1, 1, 2) + (1,) * 30)
    assert mc.conv(x, weight).ravel().tolist() == [1.0, 3.0]  # 0 + 1, 1 + 2
