"""The adjoint of padding: fold a gradient of the padded input back into the input.

Every ``padding_mode`` is a linear map ``P`` from the input to the padded input that copies
elements: padded position ``j`` along an axis holds input element ``source[j]`` (or a zero).
Its adjoint ``P^T`` therefore sums, into each input element, the gradient of every padded
position that copied it: a reflected border adds its gradient to the mirrored interior
elements, a circular border to the opposite edge, a replicated border to the edge element.
``np.pad`` pads one axis after another, so ``P`` is a product of one-axis maps and ``P^T``
is applied one axis at a time too.

The copy map of each axis is read off ``np.pad`` itself, applied to ``arange(size)``, so the
adjoint cannot drift from the padding the forward pass uses
(:func:`mimo_conv._core.windows.pad_input`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from mimo_conv._core.geometry import ConvGeometry
from mimo_conv._core.windows import NUMPY_PAD_MODES


def source_indices(size: int, padding: tuple[int, int], mode: str) -> NDArray[np.intp]:
    """Input index each padded position copies along one axis (-1 for a zero).

    Examples
    --------
    >>> source_indices(3, (2, 1), "reflect")
    array([2, 1, 0, 1, 2, 1])
    >>> source_indices(3, (1, 2), "zeros")
    array([-1,  0,  1,  2, -1, -1])
    """
    index = np.arange(size, dtype=np.intp)
    if mode == "zeros":
        return np.pad(index, padding, mode="constant", constant_values=-1)
    return np.pad(index, padding, mode=NUMPY_PAD_MODES[mode])


def copies_per_element(geometry: ConvGeometry) -> int:
    """Most padded positions that copy one input element: ``prod`` over axes of the maximum.

    It bounds how many gradient terms the adjoint adds into one input element.

    Examples
    --------
    >>> g = ConvGeometry(
    ...     batch_size=1, in_channels=1, out_channels=1, groups=1, input_shape=(3,),
    ...     kernel_shape=(3,), stride=(1,), dilation=(1,), padding=((2, 2),),
    ...     padding_mode='replicate',
    ... )
    >>> copies_per_element(g)  # the edge elements are copied three times each
    3
    """
    count = 1
    for size, pair in zip(geometry.input_shape, geometry.padding, strict=True):
        source = source_indices(size, pair, geometry.padding_mode)
        inside = source[source >= 0]
        count *= int(np.bincount(inside).max()) if inside.size else 1
    return count


def unpad_adjoint(grad_padded: NDArray[Any], geometry: ConvGeometry) -> NDArray[Any]:
    """Apply the adjoint of :func:`~mimo_conv._core.windows.pad_input` to a padded gradient.

    Parameters
    ----------
    grad_padded : ndarray of shape (N, C, *geometry.padded_shape)
        Gradient with respect to the padded input.
    geometry : ConvGeometry

    Returns
    -------
    ndarray of shape (N, C, *geometry.input_shape)
        Gradient with respect to the input, same dtype. Costs one copy of the interior plus
        ``np.add.at`` over the border elements only.

    Examples
    --------
    Padding ``[0, 1, 2]`` by two reflected elements in front gives ``[2, 1, 0, 1, 2]``:
    elements 1 and 2 appear twice, so their gradients add up.

    >>> g = ConvGeometry(
    ...     batch_size=1, in_channels=1, out_channels=1, groups=1, input_shape=(3,),
    ...     kernel_shape=(1,), stride=(1,), dilation=(1,), padding=((2, 0),),
    ...     padding_mode='reflect',
    ... )
    >>> unpad_adjoint(np.array([[[10, 20, 1, 2, 3]]]), g)
    array([[[ 1, 22, 13]]])
    """
    result = grad_padded
    for axis, (size, (before, after)) in enumerate(
        zip(geometry.input_shape, geometry.padding, strict=True), start=2
    ):
        if not before and not after:
            continue
        moved = np.moveaxis(result, axis, 0)
        folded = moved[before : before + size].copy()
        if geometry.padding_mode != "zeros":
            source = source_indices(size, (before, after), geometry.padding_mode)
            border = np.concatenate(
                [np.arange(before), np.arange(before + size, before + size + after)]
            )
            np.add.at(folded, source[border], moved[border])
        result = np.moveaxis(folded, 0, axis)
    if result is grad_padded:
        return grad_padded.copy()
    return result
