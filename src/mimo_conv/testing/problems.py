"""What a generated problem is: :class:`ConvProblem` and the names of its forms and elements.

The strategies in :mod:`mimo_conv.testing.strategies` build these; tests read them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from numpy.typing import NDArray

#: The forms ``padding`` can take in a generated problem.
PADDING_FORMS = ("int", "per_axis", "pairs", "valid", "same", "full")
#: The element distributions :func:`conv_problems` knows by name.
ELEMENT_KINDS = ("floats", "integers", "cancellation", "subnormal")


@dataclass(frozen=True, eq=False)
class ConvProblem:
    """One generated convolution: inputs, options and the output shape they must give.

    Attributes
    ----------
    x : ndarray of shape (N, C_in, *spatial) or (C_in, *spatial)
    weight : ndarray of shape (C_out, C_in // groups, *kernel)
    bias : ndarray of shape (C_out,) or None
    stride, dilation : int or tuple of int
    padding : int, tuple of int, tuple of (int, int) pairs, or str
    groups : int
    padding_mode : str
    out_shape : tuple of int
        The shape :func:`mimo_conv.conv` returns, by the output-size law.

    Examples
    --------
    >>> import numpy as np
    >>> p = ConvProblem(np.ones((2, 5)), np.ones((3, 2, 3)), None, 1, 1, 1, 1, "zeros", (3, 5))
    >>> p.conv_kwargs()
    {'stride': 1, 'padding': 1, 'dilation': 1, 'groups': 1, 'padding_mode': 'zeros'}
    >>> p.torch_kwargs()
    {'stride': 1, 'padding': 1, 'dilation': 1, 'groups': 1}
    """

    x: NDArray[Any]
    weight: NDArray[Any]
    bias: NDArray[Any] | None
    stride: int | tuple[int, ...]
    padding: int | str | tuple[int, ...] | tuple[tuple[int, int], ...]
    dilation: int | tuple[int, ...]
    groups: int
    padding_mode: str
    out_shape: tuple[int, ...]

    @property
    def spatial_dims(self) -> int:
        """Number of spatial axes: ``weight.ndim - 2``."""
        return self.weight.ndim - 2

    @property
    def torch_expressible(self) -> bool:
        """Whether ``torch.nn.functional.conv{1,2,3}d`` can take this problem unchanged.

        PyTorch's functional convolution pads with zeros only, and symmetrically (the
        strings ``"valid"`` and ``"same"`` included, ``"full"`` not), for 1 to 3 axes.
        """
        if isinstance(self.padding, str):
            symmetric = self.padding in ("valid", "same")
        else:
            symmetric = isinstance(self.padding, int) or all(
                isinstance(item, int) for item in self.padding
            )
        return (
            self.padding_mode == "zeros"
            and symmetric
            and 1 <= self.spatial_dims <= 3
            and self.x.dtype.kind != "O"
        )

    def conv_kwargs(self) -> dict[str, Any]:
        """Return the options as keyword arguments of :func:`mimo_conv.conv`."""
        return {
            "stride": self.stride,
            "padding": self.padding,
            "dilation": self.dilation,
            "groups": self.groups,
            "padding_mode": self.padding_mode,
        }

    def torch_kwargs(self) -> dict[str, Any]:
        """Return the options as keyword arguments of ``torch.nn.functional.conv{1,2,3}d``.

        Raises
        ------
        ValueError
            If the problem is not :attr:`torch_expressible`; generate with
            ``conv_problems(torch_compatible=True)`` to get only problems that are.
        """
        if not self.torch_expressible:
            msg = (
                "this problem is not expressible in torch.nn.functional.conv (padding "
                f"{self.padding!r}, padding_mode {self.padding_mode!r}, dtype {self.x.dtype}); "
                "use conv_problems(torch_compatible=True)"
            )
            raise ValueError(msg)
        return {
            "stride": self.stride,
            "padding": self.padding,
            "dilation": self.dilation,
            "groups": self.groups,
        }
