"""Padding rules that depend on the input's size: TensorFlow's, JAX's and ONNX's ``SAME``.

PyTorch's ``padding="same"`` pads ``dilation * (k - 1)`` in total and allows only stride 1.
TensorFlow, JAX and ONNX (``auto_pad="SAME_UPPER"``) define ``SAME`` for every stride: the
output has ``ceil(in / stride)`` elements, and the total padding is just enough for the last
window to start inside the input::

    out   = ceil(in / stride)
    total = max((out - 1) * stride + dilation * (k - 1) + 1 - in, 0)

``"same"`` puts the odd element after (``before = total // 2``), ``"same_lower"`` (ONNX
``SAME_LOWER``, JAX ``"SAME_LOWER"``) before. At stride 1 ``total = dilation * (k - 1)``
whatever the input size, so ``"same"`` is PyTorch's rule there: the extension changes no
existing result.

Examples
--------
>>> same_padding((7,), (3,), (1,), (2,))  # out 4: windows start at 0, 2, 4, 6
((1, 1),)
>>> same_padding((6,), (3,), (1,), (2,), lower=True)  # out 3, total 1: before
((1, 0),)
"""

from __future__ import annotations

#: The ``padding`` strings whose amounts depend on the input's size.
SAME_STRINGS = ("same", "same_lower")


def same_total(size: int, taps: int, dilation: int, stride: int) -> int:
    """Total ``SAME`` padding of one axis: ``max((ceil(in/s) - 1) * s + d * (k - 1) + 1 - in, 0)``.

    Examples
    --------
    >>> same_total(10, 3, 1, 1), same_total(10, 3, 1, 3), same_total(5, 1, 1, 2)
    (2, 2, 0)
    """
    out = -(-size // stride)
    return max((out - 1) * stride + dilation * (taps - 1) + 1 - size, 0)


def same_padding(
    input_shape: tuple[int, ...],
    kernel_shape: tuple[int, ...],
    dilation: tuple[int, ...],
    stride: tuple[int, ...],
    *,
    lower: bool = False,
) -> tuple[tuple[int, int], ...]:
    """``(before, after)`` per axis for ``SAME`` (odd element after) or ``SAME_LOWER``.

    Parameters
    ----------
    input_shape, kernel_shape, dilation, stride : tuple of int
        One entry per spatial axis.
    lower : bool, optional
        Put the odd element before (``SAME_LOWER``) instead of after.

    Examples
    --------
    >>> same_padding((5, 5), (4, 4), (1, 1), (1, 1))
    ((1, 2), (1, 2))
    >>> same_padding((5, 5), (4, 4), (1, 1), (1, 1), lower=True)
    ((2, 1), (2, 1))
    """
    pairs = []
    for size, taps, spacing, step in zip(input_shape, kernel_shape, dilation, stride, strict=True):
        total = same_total(size, taps, spacing, step)
        small, large = total // 2, total - total // 2
        pairs.append((large, small) if lower else (small, large))
    return tuple(pairs)


def is_same_string(padding: object) -> bool:
    """Whether ``padding`` is one of :data:`SAME_STRINGS`.

    Examples
    --------
    >>> is_same_string("same_lower"), is_same_string(1), is_same_string("valid")
    (True, False, False)
    """
    return isinstance(padding, str) and padding in SAME_STRINGS
