"""The frozen geometry of one convolution call: plain integers, no arrays.

Every computational path receives a :class:`ConvGeometry` that the public
functions built once, after validating their arguments. Because it holds only
ints, strings and tuples it is hashable, so cost-model decisions can be cached
and printed without touching any data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property


def output_length(
    input_length: int,
    kernel_length: int,
    *,
    stride: int = 1,
    padding: tuple[int, int] = (0, 0),
    dilation: int = 1,
) -> int:
    """Return the length of one spatial axis of the output.

    Parameters
    ----------
    input_length : int
        Length of the input along the axis, before padding.
    kernel_length : int
        Number of kernel taps along the axis.
    stride : int, optional
        Step between neighbouring windows.
    padding : tuple of (int, int), optional
        Elements added before and after the input.
    dilation : int, optional
        Spacing between kernel taps; 1 means a dense kernel.

    Returns
    -------
    int
        ``floor((input_length + before + after - dilation * (kernel_length - 1) - 1)
        / stride) + 1``, the law PyTorch documents for ``Conv1d``/``Conv2d``/``Conv3d``.
        It is negative or zero when the dilated kernel does not fit.

    Examples
    --------
    >>> output_length(3, 2)
    2
    >>> output_length(224, 7, stride=2, padding=(3, 3))
    112
    >>> output_length(5, 3, dilation=2)
    1
    """
    before, after = padding
    span = dilation * (kernel_length - 1) + 1
    return (input_length + before + after - span) // stride + 1


@dataclass(frozen=True, kw_only=True)
class ConvGeometry:
    """Shapes and options of a convolution, validated and normalised.

    Built with keywords only: nine positional ints and tuples cannot be read at a glance.
    Two shapes of the output are derived: :attr:`output_shape` is the *spatial* shape
    (``(H_out, W_out)`` of a 2-d call), :attr:`out_shape` the *full* shape of the result,
    ``(N, C_out, *output_shape)`` (or ``(C_out, *output_shape)`` unbatched), which is
    also what :func:`mimo_conv.output_shape` returns.

    Attributes
    ----------
    batch_size : int
        ``N``; 1 for an unbatched call.
    in_channels : int
        ``C_in``, the channels of the input.
    out_channels : int
        ``C_out``, the channels of the output.
    groups : int
        Number of channel groups; ``C_in`` and ``C_out`` are multiples of it.
    input_shape : tuple of int
        Spatial shape of the input, before padding.
    kernel_shape : tuple of int
        Spatial shape of the kernel (number of taps per axis).
    stride : tuple of int
        Step between windows, one per spatial axis.
    dilation : tuple of int
        Spacing between kernel taps, one per spatial axis.
    padding : tuple of (int, int)
        Elements added ``(before, after)`` each spatial axis.
    padding_mode : str
        How padded elements are filled: ``"zeros"``, ``"reflect"``,
        ``"replicate"``, ``"circular"`` or ``"symmetric"``.
    batched : bool
        Whether the caller passed a batch axis.

    Examples
    --------
    The stem of a ResNet: 224 x 224 RGB images, 64 kernels of 7 x 7, stride 2, padding 3.

    >>> stem = ConvGeometry(
    ...     batch_size=8, in_channels=3, out_channels=64, groups=1,
    ...     input_shape=(224, 224), kernel_shape=(7, 7), stride=(2, 2), dilation=(1, 1),
    ...     padding=((3, 3), (3, 3)),
    ... )
    >>> stem.output_shape  # spatial
    (112, 112)
    >>> stem.out_shape  # full: batch, channels, spatial
    (8, 64, 112, 112)
    >>> stem.terms_per_output
    147
    """

    batch_size: int
    in_channels: int
    out_channels: int
    groups: int
    input_shape: tuple[int, ...]
    kernel_shape: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]
    padding_mode: str = "zeros"
    batched: bool = True

    def __hash__(self) -> int:
        # The fields never change (frozen), and geometries key the caches of the per-call
        # path (cost model, chunk plans): hash them once, not on every lookup.
        return self._field_hash

    @cached_property
    def _field_hash(self) -> int:
        return hash(
            (
                self.batch_size,
                self.in_channels,
                self.out_channels,
                self.groups,
                self.input_shape,
                self.kernel_shape,
                self.stride,
                self.dilation,
                self.padding,
                self.padding_mode,
                self.batched,
            )
        )

    @cached_property
    def spatial_dims(self) -> int:
        """Number of spatial axes (1 for conv1d, 2 for conv2d, ...)."""
        return len(self.kernel_shape)

    @property
    def in_channels_per_group(self) -> int:
        """Input channels each output channel sees: ``C_in // groups``."""
        return self.in_channels // self.groups

    @property
    def out_channels_per_group(self) -> int:
        """Output channels each group produces: ``C_out // groups``."""
        return self.out_channels // self.groups

    @cached_property
    def padded_shape(self) -> tuple[int, ...]:
        """Spatial shape of the input after padding."""
        return tuple(
            size + before + after
            for size, (before, after) in zip(self.input_shape, self.padding, strict=True)
        )

    @cached_property
    def window_extent(self) -> tuple[int, ...]:
        """Span of the dilated kernel per axis: ``dilation * (k - 1) + 1``."""
        return tuple(
            step * (taps - 1) + 1
            for taps, step in zip(self.kernel_shape, self.dilation, strict=True)
        )

    @cached_property
    def output_shape(self) -> tuple[int, ...]:
        """Spatial shape of the output, one length per spatial axis (no batch or channel axis).

        Each length follows the law of :func:`output_length`. The full shape of the result
        is :attr:`out_shape` (and :func:`mimo_conv.output_shape`).
        """
        return tuple(
            output_length(size, taps, stride=step, padding=pad, dilation=spacing)
            for size, taps, step, pad, spacing in zip(
                self.input_shape,
                self.kernel_shape,
                self.stride,
                self.padding,
                self.dilation,
                strict=True,
            )
        )

    @cached_property
    def out_shape(self) -> tuple[int, ...]:
        """Full shape of the result, with the batch axis only if the call had one."""
        leading = (self.batch_size,) if self.batched else ()
        return (*leading, self.out_channels, *self.output_shape)

    @cached_property
    def terms_per_output(self) -> int:
        """Products summed into one output element, bias excluded: ``C_in/groups * prod(k)``."""
        return self.in_channels_per_group * math.prod(self.kernel_shape)

    @cached_property
    def is_pointwise(self) -> bool:
        """Whether the kernel is 1 x 1 (x 1 ...): a matrix product at every pixel."""
        return all(taps == 1 for taps in self.kernel_shape)

    @cached_property
    def is_padded(self) -> bool:
        """Whether any axis has padding."""
        return any(before or after for before, after in self.padding)
