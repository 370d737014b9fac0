"""Windows as matrix columns and back: the shared cores of im2col and of its adjoint.

:func:`unfold_padded` copies every window of a padded batched input into one column
(the im2col buffer of the ``"im2col"`` path, the weight gradient and ``mc.unfold``);
:func:`fold_taps` adds every tap back where it was read from (the input gradient's
scatter and ``mc.fold``). :func:`copy_taps` is the copy both of them and the GEMM paths'
chunked buffers are made of: one strided copy per kernel tap, which can be split over the
worker threads (:mod:`mimo_conv._core.workers`, when ``SPLIT_COPIES`` is set) by ranges of
channels. A copy is exact, and every element is
written by exactly one task, so the buffer is the same for every thread count.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mimo_conv._core import workers
from mimo_conv._core.geometry import ConvGeometry
from mimo_conv._core.windows import tap_slices
from mimo_conv._core.workers import run_tasks, share_count, splittable

#: One tap's copy: where it goes in the buffer and where it comes from in the source. Both
#: index an array whose axis 1 is the channels and take every channel (``slice(None)``).
TapCopy = tuple[tuple[int | slice, ...], tuple[int | slice, ...]]


def tap_copies(geometry: ConvGeometry, start: int, stop: int) -> list[TapCopy]:
    """Return the copies that fill an im2col buffer ``(N, C, *kernel, rows, *output[1:])``.

    One per kernel tap ``t``: into ``buffer[:, :, *t]``, from the view of the padded input
    that tap meets for output rows ``start`` to ``stop - 1`` (``rows = stop - start``)
    (:func:`~mimo_conv._core.windows.tap_slices`). For :func:`copy_taps`.

    Examples
    --------
    >>> g = ConvGeometry(
    ...     batch_size=1, in_channels=1, out_channels=1, groups=1, input_shape=(4,),
    ...     kernel_shape=(2,), stride=(2,), dilation=(1,), padding=((0, 0),),
    ... )
    >>> to, source = tap_copies(g, 0, 2)[1]  # tap 1: buffer[:, :, 1] = x_padded[:, :, 1:4:2]
    >>> to[2:], source[2:]
    ((1,), (slice(1, 4, 2),))
    """
    every: tuple[slice, slice] = (slice(None), slice(None))
    return [((*every, *tap), index) for tap, index in tap_slices(geometry, start, stop)]


def copy_taps(target: NDArray[Any], source: NDArray[Any], copies: Sequence[TapCopy]) -> None:
    """Run ``target[to] = source[frm]`` for every ``(to, frm)`` of ``copies``, over the threads.

    The work, ``copies`` times the channels, is cut into
    :func:`~mimo_conv._core.workers.share_count` contiguous ranges of ``(copy, channel)``
    pairs (a few per thread); each task copies its range, one strided copy per tap it meets
    (at most its own pairs, over its channels of each). The
    destinations of different pairs are disjoint, so nothing depends on which thread copied
    what. No temporary is allocated: each copy goes straight from the source view into the
    target. Python objects are copied on the calling thread, as
    :func:`~mimo_conv._core.workers.splittable` says.

    Parameters
    ----------
    target, source : ndarray
        Arrays whose axis 1 is the channel axis, of the same length.
    copies : sequence of (index, index)
        Indices into ``target`` and ``source`` whose second entry is ``slice(None)``.

    Examples
    --------
    >>> source = np.arange(8).reshape(1, 2, 4)
    >>> target = np.empty((1, 2, 2, 3), int)
    >>> copies = [((slice(None), slice(None), t), (slice(None), slice(None), slice(t, t + 3)))
    ...           for t in range(2)]
    >>> copy_taps(target, source, copies)
    >>> target[0, 1]
    array([[4, 5, 6],
           [5, 6, 7]])
    """
    channels = source.shape[1]
    units = len(copies) * channels
    if units == 0:
        return
    split = workers.SPLIT_COPIES and splittable(target)
    tasks = share_count(target.size, units) if split else 1
    if tasks == 1:
        for to, frm in copies:
            target[to] = source[frm]
        return
    bounds = [units * number // tasks for number in range(tasks + 1)]
    run_tasks(
        [
            partial(_copy_range, target, source, copies, start, stop)
            for start, stop in itertools.pairwise(bounds)
        ]
    )


def _copy_range(
    target: NDArray[Any],
    source: NDArray[Any],
    copies: Sequence[TapCopy],
    start: int,
    stop: int,
) -> None:
    """Copy the ``(copy, channel)`` pairs numbered ``start`` to ``stop - 1`` (copy-major)."""
    channels = source.shape[1]
    for number in range(start // channels, -(-stop // channels)):
        first = max(start, number * channels) - number * channels
        last = min(stop, (number + 1) * channels) - number * channels
        to, frm = copies[number]
        part = slice(first, last)
        target[(to[0], part, *to[2:])] = source[(frm[0], part, *frm[2:])]


def unfold_padded(x_padded: NDArray[Any], geometry: ConvGeometry) -> NDArray[Any]:
    """Copy the windows of a padded batched input into columns: ``(N, C * prod(k), L)``.

    The shared core of :func:`unfold` and of the ``"im2col"`` method: one strided copy per
    kernel tap (:func:`copy_taps`, over the worker threads), ``N * C * prod(k) * L`` elements
    in all, into the one new array returned.

    Examples
    --------
    >>> g = ConvGeometry(
    ...     batch_size=1, in_channels=1, out_channels=1, groups=1, input_shape=(4,),
    ...     kernel_shape=(2,), stride=(2,), dilation=(1,), padding=((0, 0),),
    ... )
    >>> unfold_padded(np.arange(4).reshape(1, 1, 4), g)
    array([[[0, 2],
            [1, 3]]])
    """
    output_shape = geometry.output_shape
    batch, channels = x_padded.shape[:2]
    # (N, C, *k, *out): taps become rows, positions columns.
    cols = np.empty((batch, channels, *geometry.kernel_shape, *output_shape), x_padded.dtype)
    copy_taps(cols, x_padded, tap_copies(geometry, 0, output_shape[0]))
    taps = math.prod(geometry.kernel_shape)
    return cols.reshape((batch, channels * taps, math.prod(output_shape)))


def fold_taps(
    cols: NDArray[Any],
    padded_shape: tuple[int, ...],
    kernel_shape: tuple[int, ...],
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
) -> NDArray[Any]:
    """Add every tap of every window back into the padded input: the adjoint of unfold.

    Parameters
    ----------
    cols : ndarray of shape (N, C, prod(kernel_shape), *positions)
        One value per channel, tap and window position.
    padded_shape : tuple of int
        Spatial shape of the result; ``p * stride + t * dilation`` must lie inside it.
    kernel_shape, stride, dilation : tuple of int

    Returns
    -------
    ndarray of shape (N, C, *padded_shape)
        In the dtype of ``cols``. One vectorised strided ``+=`` per kernel tap:
        ``N * C * prod(k) * prod(positions)`` additions, no temporary.

    Examples
    --------
    >>> fold_taps(np.array([[[[1, 2], [10, 20]]]]), (3,), (2,), (1,), (1,))
    array([[[ 1, 12, 20]]])
    """
    positions = cols.shape[3:]
    out = np.zeros((*cols.shape[:2], *padded_shape), dtype=cols.dtype)
    for flat, taps in enumerate(np.ndindex(*kernel_shape)):
        window = tuple(
            slice(t * d, t * d + s * (p - 1) + 1, s) if p else slice(0, 0)
            for t, d, s, p in zip(taps, dilation, stride, positions, strict=True)
        )
        out[(slice(None), slice(None), *window)] += cols[:, :, flat]
    return out
