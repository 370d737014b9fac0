"""The textbook's functions reproduce the book's numbers exactly (d2l, sections 6.2 and 6.4).

Every expected number below is either copied from the book (``TEXTBOOK.md``) or computed
in the test by an explicit loop or exact rational arithmetic, never taken from our output.
"""

from __future__ import annotations

import re
import subprocess
import sys
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

import mimo_conv as mc
from mimo_conv._classroom import cli as _cli
from mimo_conv._classroom import demo as _demo

# The book's two-channel input and kernel (section 6.4.1).
BOOK_X = [[[0, 1, 2], [3, 4, 5], [6, 7, 8]], [[1, 2, 3], [4, 5, 6], [7, 8, 9]]]
BOOK_K = [[[0, 1], [2, 3]], [[1, 2], [3, 4]]]
BOOK_MULTI_IN = [[56, 72], [104, 120]]
BOOK_MULTI_IN_OUT = [
    [[56, 72], [104, 120]],
    [[76, 100], [148, 172]],
    [[96, 128], [192, 224]],
]
# Section 6.2: X = arange(9).reshape(3, 3), K = [[0, 1], [2, 3]].
BOOK_CORR2D = [[19, 25], [37, 43]]
BOOK_1X1_THRESHOLD = 1e-6


def loop_corr2d(X: list[list[Any]], K: list[list[Any]]) -> list[list[Any]]:
    """The book's definition, written with Python lists and loops only."""
    kh, kw = len(K), len(K[0])
    oh, ow = len(X) - kh + 1, len(X[0]) - kw + 1
    return [
        [sum(X[i + a][j + b] * K[a][b] for a in range(kh) for b in range(kw)) for j in range(ow)]
        for i in range(oh)
    ]


def stack_k3() -> NDArray[np.int64]:
    K = np.array(BOOK_K)
    return np.stack((K, K + 1, K + 2), 0)


# --- the book's numbers -----------------------------------------------------------------


def test_corr2d_book_example() -> None:
    X = np.arange(9).reshape(3, 3)
    Y = mc.corr2d(X, [[0, 1], [2, 3]])
    assert Y.tolist() == BOOK_CORR2D
    assert Y.dtype == np.int64


def test_corr2d_position_encoded_matches_loop() -> None:
    # X[i, j] = 10 * i + j; K picks distinct powers so every tap's contribution is visible.
    X = [[10 * i + j for j in range(5)] for i in range(4)]
    K = [[1, 100], [10_000, 1_000_000]]
    assert mc.corr2d(X, K).tolist() == loop_corr2d(X, K)
    assert mc.corr2d(X, K).shape == (3, 4)


def test_corr2d_multi_in_book_example() -> None:
    Y = mc.corr2d_multi_in(BOOK_X, BOOK_K)
    assert Y.tolist() == BOOK_MULTI_IN
    assert Y.shape == (2, 2)


def test_corr2d_multi_in_is_sum_of_corr2d_per_channel() -> None:
    # The book's definition: correlate each channel with its kernel, then add.
    expected = np.add(*(np.array(loop_corr2d(x, k)) for x, k in zip(BOOK_X, BOOK_K, strict=True)))
    assert expected.tolist() == BOOK_MULTI_IN  # the loop agrees with the book ...
    assert np.array_equal(mc.corr2d_multi_in(BOOK_X, BOOK_K), expected)  # ... and so do we


def test_corr2d_multi_in_out_book_example() -> None:
    K3 = stack_k3()
    assert K3.shape == (3, 2, 2, 2)
    Y = mc.corr2d_multi_in_out(BOOK_X, K3)
    assert Y.tolist() == BOOK_MULTI_IN_OUT
    assert Y.shape == (3, 2, 2)


@pytest.mark.parametrize("offset", [0, 1, 2], ids=["K", "K+1", "K+2"])
def test_corr2d_multi_in_out_channel_is_corr2d_multi_in(offset: int) -> None:
    K3 = stack_k3()
    Y = mc.corr2d_multi_in_out(BOOK_X, K3)
    single = mc.corr2d_multi_in(BOOK_X, np.array(BOOK_K) + offset)
    assert np.array_equal(Y[offset], single)
    assert Y[offset].tolist() == BOOK_MULTI_IN_OUT[offset]


@pytest.mark.parametrize("dtype", [np.int64, np.float32, np.float64, object])
def test_book_examples_in_every_dtype(dtype: type) -> None:
    X: NDArray[Any] = np.array(BOOK_X).astype(dtype)
    K3: NDArray[Any] = stack_k3().astype(dtype)
    Y = mc.corr2d_multi_in_out(X, K3)
    assert Y.dtype == np.dtype(dtype)
    assert Y.tolist() == BOOK_MULTI_IN_OUT  # integer-valued: exact in every dtype


def test_corr2d_multi_in_out_1x1_integer_example() -> None:
    X = np.arange(8).reshape(2, 2, 2)
    K = np.array([[[[1]], [[10]]], [[[-1]], [[0]]]])
    # By hand: output channel 0 is X[0] + 10 X[1], channel 1 is -X[0].
    expected = [
        [[0 + 10 * 4, 1 + 10 * 5], [2 + 10 * 6, 3 + 10 * 7]],
        [[0, -1], [-2, -3]],
    ]
    assert mc.corr2d_multi_in_out_1x1(X, K).tolist() == expected
    assert mc.corr2d_multi_in_out(X, K).tolist() == expected


def test_no_input_channels_is_an_empty_sum() -> None:
    # c_i = 0: nothing to add, every output is 0 (as np.sum of nothing), of the right shape.
    assert mc.corr2d_multi_in(np.zeros((0, 3, 4)), np.zeros((0, 2, 2))).tolist() == [[0.0] * 3] * 2
    Y = mc.corr2d_multi_in_out_1x1(np.zeros((0, 2, 2), dtype=np.int64), np.zeros((3, 0, 1, 1)))
    assert Y.shape == (3, 2, 2)
    assert Y.tolist() == [[[0.0, 0.0], [0.0, 0.0]]] * 3


# --- the 1 x 1 check ----------------------------------------------------------------------


def exact(value: Any) -> Fraction:
    """The exact rational value of an int, a Fraction or a binary float of any width."""
    if isinstance(value, (int, Fraction)):
        return Fraction(value)
    return Fraction(float(value))  # float32/float64 -> Python float is exact


def exact_1x1(X: NDArray[Any], K: NDArray[Any]) -> list[list[list[Fraction]]]:
    """``sum_c K[o, c] X[c, i, j]`` in exact rational arithmetic."""
    c_o, c_i = K.shape[:2]
    _, h, w = X.shape
    return [
        [
            [
                sum((exact(K[o, c, 0, 0]) * exact(X[c, i, j]) for c in range(c_i)), Fraction(0))
                for j in range(w)
            ]
            for i in range(h)
        ]
        for o in range(c_o)
    ]


def dot_error_bound(X: NDArray[Any], K: NDArray[Any], dtype: type) -> NDArray[Any]:
    """Per-output forward error bound of a length-``c_i`` dot product (Higham, section 3.1).

    ``|fl(sum) - sum| <= gamma_n sum |K| |X| + n * smallest_subnormal`` with
    ``gamma_n = n u / (1 - n u)``; ``u`` is the unit roundoff of ``dtype``. Computed with
    exact fractions, returned as float64 (rounded up by one part in 2**50).
    """
    info = np.finfo(dtype)
    n = K.shape[1]
    u = Fraction(float(info.eps)) / 2
    gamma = n * u / (1 - n * u)
    magnitude = exact_1x1(np.abs(X), np.abs(K))
    underflow = n * Fraction(float(info.smallest_subnormal))
    bound = [[[gamma * m + underflow for m in row] for row in plane] for plane in magnitude]
    return np.array(bound, dtype=object).astype(np.float64) * (1 + 2.0**-50)


def test_1x1_check_as_the_book_asserts() -> None:
    rng = np.random.default_rng(20240604)
    X = rng.standard_normal((3, 3, 3), dtype=np.float32)
    K = rng.standard_normal((2, 3, 1, 1), dtype=np.float32)
    Y1 = mc.corr2d_multi_in_out_1x1(X, K)
    Y2 = mc.corr2d_multi_in_out(X, K)
    assert Y1.dtype == Y2.dtype == np.float32
    assert Y1.shape == Y2.shape == (2, 3, 3)
    assert float(np.abs(Y1.astype(np.float64) - Y2).sum()) < BOOK_1X1_THRESHOLD


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_1x1_both_paths_within_the_forward_error_bound_of_the_exact_result(seed: int) -> None:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((3, 3, 3), dtype=np.float32)
    K = rng.standard_normal((2, 3, 1, 1), dtype=np.float32)
    exact_values = np.array(exact_1x1(X, K), dtype=object)
    bound = dot_error_bound(X, K, np.float32)
    for Y in (mc.corr2d_multi_in_out_1x1(X, K), mc.corr2d_multi_in_out(X, K)):
        # The error of each output, in exact arithmetic, against the derived bound.
        error = np.abs(np.frompyfunc(exact, 1, 1)(Y) - exact_values).astype(np.float64)
        assert np.all(error <= bound), (error, bound)
    # Y1 and Y2 each lie within the bound of the exact value, so within twice it of each other.
    Y1, Y2 = mc.corr2d_multi_in_out_1x1(X, K), mc.corr2d_multi_in_out(X, K)
    assert np.all(np.abs(Y1.astype(np.float64) - Y2) <= 2 * bound)


def test_1x1_exact_on_object_fractions() -> None:
    X = np.array(
        [[[Fraction(10 * i + j, 3 + c) for j in range(3)] for i in range(2)] for c in range(3)],
        dtype=object,
    )
    K = np.array([[[[Fraction(1, 7)]], [[Fraction(-2)]], [[Fraction(5, 11)]]]], dtype=object)
    expected = exact_1x1(X, K)
    assert mc.corr2d_multi_in_out_1x1(X, K).tolist() == expected
    assert mc.corr2d_multi_in_out(X, K).tolist() == expected


# --- textbook errors name X and K -------------------------------------------------------

X2 = np.zeros((3, 3))
X3 = np.zeros((2, 3, 3))
K2 = np.zeros((2, 2))
K3 = np.zeros((2, 2, 2))
K4 = np.zeros((1, 2, 2, 2))
K1X1 = np.zeros((1, 2, 1, 1))

TEXTBOOK_ERRORS = [
    pytest.param(mc.corr2d, np.zeros(3), K2, ValueError,
                 r"X must be 2-d \(h, w\), got X of shape \(3,\)", id="corr2d-X-rank"),
    pytest.param(mc.corr2d, X2, K3, ValueError,
                 r"K must be 2-d \(kh, kw\), got K of shape \(2, 2, 2\)", id="corr2d-K-rank"),
    pytest.param(mc.corr2d, X2, np.zeros((4, 1)), ValueError,
                 r"K's window must fit inside X: K of shape \(4, 1\).*X of shape \(3, 3\)",
                 id="corr2d-K-larger"),
    pytest.param(mc.corr2d, X2, np.zeros((0, 2)), ValueError,
                 r"K's window must have at least 1 x 1 elements, got K of shape \(0, 2\)",
                 id="corr2d-K-empty"),
    pytest.param(mc.corr2d_multi_in_out, X3, np.zeros((1, 2, 2, 0)), ValueError,
                 r"K's window must have at least 1 x 1 elements, got K of shape \(1, 2, 2, 0\)",
                 id="multi_in_out-K-empty"),
    pytest.param(mc.corr2d, np.zeros((3, 3), dtype=bool), K2, TypeError,
                 r"X must hold numbers.*got dtype bool", id="corr2d-X-bool"),
    pytest.param(mc.corr2d, X2, [["a", "b"]], TypeError,
                 r"K must hold numbers.*got dtype <U1", id="corr2d-K-str"),
    pytest.param(mc.corr2d, [[1, 2], [3]], K2, ValueError,
                 r"X must be a rectangular array-like", id="corr2d-X-ragged"),
    pytest.param(mc.corr2d, np.array([[1, None]], dtype=object), [[1]], TypeError,
                 r"X must hold numbers, but its object array contains None", id="corr2d-X-None"),
    pytest.param(mc.corr2d_multi_in, X2, K3, ValueError,
                 r"X must be 3-d \(c_i, h, w\), got X of shape \(3, 3\)", id="multi_in-X-rank"),
    pytest.param(mc.corr2d_multi_in, X3, K4, ValueError,
                 r"K must be 3-d \(c_i, kh, kw\), got K of shape \(1, 2, 2, 2\)",
                 id="multi_in-K-rank"),
    pytest.param(mc.corr2d_multi_in, X3, np.zeros((3, 2, 2)), ValueError,
                 r"X of shape \(2, 3, 3\) has c_i=2 channels, but K of shape \(3, 2, 2\) has 3",
                 id="multi_in-channels"),
    pytest.param(mc.corr2d_multi_in, X3, np.zeros((2, 1, 4)), ValueError,
                 r"K's window must fit inside X: K of shape \(2, 1, 4\)", id="multi_in-K-larger"),
    pytest.param(mc.corr2d_multi_in_out, X3, K3, ValueError,
                 r"K must be 4-d \(c_o, c_i, kh, kw\), got K of shape \(2, 2, 2\)",
                 id="multi_in_out-K-rank"),
    pytest.param(mc.corr2d_multi_in_out, X3, np.zeros((1, 3, 2, 2)), ValueError,
                 r"X of shape \(2, 3, 3\) has c_i=2 channels, but K of shape \(1, 3, 2, 2\) has 3",
                 id="multi_in_out-channels"),
    pytest.param(mc.corr2d_multi_in_out, X3, np.zeros((1, 2, 4, 4)), ValueError,
                 r"K's window must fit inside X", id="multi_in_out-K-larger"),
    pytest.param(mc.corr2d_multi_in_out_1x1, X3, K4, ValueError,
                 r"K must hold 1 x 1 kernels, got K of shape \(1, 2, 2, 2\)", id="1x1-K-not-1x1"),
    pytest.param(mc.corr2d_multi_in_out_1x1, X2, K1X1, ValueError,
                 r"X must be 3-d \(c_i, h, w\), got X of shape \(3, 3\)", id="1x1-X-rank"),
    pytest.param(mc.corr2d_multi_in_out_1x1, X3, np.zeros((1, 3, 1, 1)), ValueError,
                 r"X of shape \(2, 3, 3\) has c_i=2 channels, but K of shape \(1, 3, 1, 1\)",
                 id="1x1-channels"),
    pytest.param(mc.corr2d_multi_in_out_1x1, np.full((2, 1, 1), 2**62), np.full((1, 2, 1, 1), 2),
                 OverflowError, r"could overflow.*dtype=object", id="1x1-int-overflow"),
]  # fmt: skip


@pytest.mark.parametrize(("function", "X", "K", "error", "match"), TEXTBOOK_ERRORS)
def test_textbook_errors_name_x_and_k(
    function: Any, X: Any, K: Any, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        function(X, K)


def test_1x1_overflow_bound_is_exact_at_the_limit() -> None:
    # 2 channels of (2**61) * 2 = 2**63 in total: one more than int64 holds.
    X = np.full((2, 1, 1), 2**61)
    K = np.full((1, 2, 1, 1), 2)
    with pytest.raises(OverflowError, match=r"2305843009213693952 \* 2 \* 2"):
        mc.corr2d_multi_in_out_1x1(X, K)
    # One less in one operand and it fits: 2 * (2**61 - 1) * 2 = 2**63 - 4, exact.
    result = mc.corr2d_multi_in_out_1x1(X - 1, K)
    assert result.tolist() == [[[2 * (2**61 - 1) * 2]]]


# --- the demo -----------------------------------------------------------------------------

BOOK_MULTI_IN_TEXT = "[[ 56,  72],\n [104, 120]]"
BOOK_MULTI_IN_OUT_TEXT = (
    "[[[ 56,  72],\n  [104, 120]],\n\n"
    " [[ 76, 100],\n  [148, 172]],\n\n"
    " [[ 96, 128],\n  [192, 224]]]"
)


def check_demo_output(text: str) -> None:
    assert BOOK_MULTI_IN_TEXT in text
    assert BOOK_MULTI_IN_OUT_TEXT in text
    match = re.search(r"sum \|Y1 - Y2\| = (\S+),", text)
    assert match is not None, text
    assert float(match.group(1)) < BOOK_1X1_THRESHOLD
    assert "All three match the book." in text


def test_demo_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli.main(["demo"]) == 0
    check_demo_output(capsys.readouterr().out)


def test_no_subcommand_runs_the_demo(capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli.main([]) == 0
    check_demo_output(capsys.readouterr().out)


def test_demo_reports_a_mismatch(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The demo checks what it prints: a wrong engine makes it fail with exit status 1.
    def wrong(X: Any, K: Any) -> NDArray[Any]:
        return mc.corr2d_multi_in(X, K) + 1

    monkeypatch.setattr(_demo, "corr2d_multi_in", wrong)
    assert _cli.main(["demo"]) == 1
    assert "MISMATCH with the book." in capsys.readouterr().out


@pytest.mark.parametrize("arguments", [["demo"], []], ids=["demo", "no-subcommand"])
def test_demo_as_a_subprocess(arguments: list[str]) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "mimo_conv", *arguments],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == ""
    check_demo_output(completed.stdout)
