"""What a generated problem is: :class:`ConvProblem` and the names of its forms and elements.

The strategies in :mod:`mimo_conv.testing.strategies` build these; tests read them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from numpy.typing import NDArray

from mimo_conv.testing.bounds import bound_terms

#: The forms ``padding`` can take in a generated problem.
PADDING_FORMS = ("int", "per_axis", "pairs", "valid", "same", "full")
#: The element distributions :func:`conv_problems` knows by name.
ELEMENT_KINDS = ("floats", "integers", "cancellation", "subnormal", "exact")


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
    def n(self) -> int:
        """Products per output element: ``C_in / groups * prod(kernel)`` (the bias not counted)."""
        return int(math.prod(self.weight.shape[1:]))

    def args(self) -> tuple[Any, ...]:
        """Return the positional arguments ``(x, weight, bias)`` of :func:`mimo_conv.conv`."""
        return (self.x, self.weight, self.bias)

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


def _terms(op: str, args: tuple[Any, ...], options: dict[str, Any]) -> int:
    """Return the largest number of terms of an output of ``op`` (one call on ones, in float64)."""
    return bound_terms(op, *args, **options).n


@dataclass(frozen=True, eq=False)
class TransposeProblem:
    """One generated transposed convolution (:func:`mimo_conv.conv_transpose`).

    Attributes
    ----------
    x : ndarray of shape (N, C_in, *spatial) or (C_in, *spatial)
    weight : ndarray of shape (C_in, C_out // groups, *kernel)
    bias : ndarray of shape (C_out,) or None
    stride, padding, output_padding, dilation : int or tuple of int
    groups : int
    out_shape : tuple of int

    Examples
    --------
    >>> import numpy as np
    >>> p = TransposeProblem(np.ones((1, 3)), np.ones((1, 1, 2)), None, 2, 0, 1, 1, 1, (1, 7))
    >>> p.kwargs()
    {'stride': 2, 'padding': 0, 'output_padding': 1, 'groups': 1, 'dilation': 1}
    >>> p.n
    1
    """

    x: NDArray[Any]
    weight: NDArray[Any]
    bias: NDArray[Any] | None
    stride: int | tuple[int, ...]
    padding: int | tuple[int, ...]
    output_padding: int | tuple[int, ...]
    groups: int
    dilation: int | tuple[int, ...]
    out_shape: tuple[int, ...]

    def kwargs(self) -> dict[str, Any]:
        """Return the options as keyword arguments of :func:`mimo_conv.conv_transpose`."""
        return {
            "stride": self.stride,
            "padding": self.padding,
            "output_padding": self.output_padding,
            "groups": self.groups,
            "dilation": self.dilation,
        }

    def args(self) -> tuple[Any, ...]:
        """Return the positional arguments ``(x, weight, bias)``."""
        return (self.x, self.weight, self.bias)

    @property
    def n(self) -> int:
        """The largest number of products summed into one output element."""
        return _terms("conv_transpose", (self.x, self.weight), self.kwargs())


@dataclass(frozen=True, eq=False)
class BackwardProblem:
    """A forward problem and the gradient of a loss with respect to its output.

    Attributes
    ----------
    forward : ConvProblem
    grad_output : ndarray of ``forward.out_shape``

    Examples
    --------
    >>> import numpy as np
    >>> x, w = np.ones((1, 2, 4)), np.ones((1, 2, 3))
    >>> f = ConvProblem(x, w, None, 1, 0, 1, 1, "zeros", (1, 1, 2))
    >>> p = BackwardProblem(f, np.ones((1, 1, 2)))
    >>> p.input_args()[0], p.n_input, p.n_weight, p.n_bias
    ((1, 2, 4), 2, 2, 2)
    """

    forward: ConvProblem
    grad_output: NDArray[Any]

    def kwargs(self) -> dict[str, Any]:
        """Return the forward options, keyword arguments of the ``mimo_conv.grad`` functions."""
        return self.forward.conv_kwargs()

    def input_args(self) -> tuple[Any, ...]:
        """``(input_shape, weight, grad_output)`` of :func:`mimo_conv.grad.conv_input`."""
        return (self.forward.x.shape, self.forward.weight, self.grad_output)

    def weight_args(self) -> tuple[Any, ...]:
        """``(x, weight_shape, grad_output)`` of :func:`mimo_conv.grad.conv_weight`."""
        return (self.forward.x, self.forward.weight.shape, self.grad_output)

    @property
    def batched(self) -> bool:
        """Whether ``x`` has a batch axis (``conv_bias(grad_output, batched=...)``)."""
        return self.forward.x.ndim == self.forward.weight.ndim

    @property
    def n(self) -> int:
        """The forward pass's terms per output."""
        return self.forward.n

    @property
    def n_input(self) -> int:
        """The largest number of products summed into one element of ``dL/dx``."""
        return _terms("conv_input", self.input_args(), self.kwargs())

    @property
    def n_weight(self) -> int:
        """Products summed into one element of ``dL/dw``: batch times output positions."""
        return int(math.prod(self.grad_output.shape) // max(self.forward.weight.shape[0], 1))

    @property
    def n_bias(self) -> int:
        """Terms summed into one element of ``dL/db`` (as many as for ``dL/dw``)."""
        return self.n_weight
