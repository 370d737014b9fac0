"""The cost model's machine constants: how fast this kind of machine does each kind of work.

Every constant says where it was measured. They were measured on the benchmark machine
(2-core AMD EPYC, OpenBLAS 0.3.31, NumPy 2.4; ``benchmarks/results/latest.md``) unless a
comment says otherwise. Only their ratios matter for the choice, so a faster or slower
machine shifts every prediction alike. The paths count their work
(:class:`mimo_conv._paths.spec.Work`); :mod:`mimo_conv._engine.formulas` turns the counts
into seconds with these rates.

Examples
--------
>>> COPY_BYTES_PER_SECOND
5000000000.0
"""

from __future__ import annotations

#: Sustained GEMM rate of OpenBLAS on large operands, FLOP/s, by compute dtype kind and
#: itemsize. Measured by ``benchmarks/bench_conv.py`` (the same-size GEMM column) on the
#: 2-core benchmark machine: ~70 GFLOP/s float64 and ~130 GFLOP/s float32 (AVX2 FMA, 2
#: threads). Complex types run the real rate of their component type.
BLAS_FLOPS_PER_SECOND: dict[tuple[str, int], float] = {
    ("f", 8): 70e9,
    ("f", 4): 130e9,
    ("c", 16): 70e9,
    ("c", 8): 130e9,
}
#: NumPy's own integer matrix product (no BLAS): measured ~1-2 GFLOP/s for int64 on the
#: same machine (a 256 x 256 int64 matmul; 1.9 GFLOP/s for (64, 576) @ (576, 3136) on
#: 2026-12-01, a loaded machine).
INTEGER_FLOPS_PER_SECOND = 1e9
#: Python-level arithmetic on object arrays (ints, fractions): measured ~30 MFLOP/s for
#: small Python ints in an object matmul; fractions are slower, but every path does the
#: same object operations, so only the other terms decide between paths.
OBJECT_FLOPS_PER_SECOND = 30e6
#: GEMM dimension at which OpenBLAS reaches half its sustained rate. Issue 6 measured
#: OpenBLAS weak when ``C_out <= 64``; 16 reproduces the measured ordering of one large
#: product (``"gemm"``, inner dimension ``C_in * taps``) versus one product per tap
#: (``"shift"``, inner dimension ``C_in``) on the benchmark suite.
HALF_SPEED_DIMENSION = 16
#: Single-threaded NumPy copy/add bandwidth, bytes read plus written per second: ~5 GB/s
#: measured for the strided tap copies of the ResNet 3x3 layer (8 x 64 x 56 x 56 float32).
COPY_BYTES_PER_SECOND = 5e9
#: Fixed cost of one NumPy call made from Python (a copy, a matmul, an add): ~1.5 us measured
#: with ``timeit`` on a 1-element array.
SECONDS_PER_CALL = 1.5e-6
#: Fixed cost of each small product inside one batched ``np.matmul`` (NumPy loops over the
#: batch axes in C), and the arithmetic rate of such small products: 1152 float32 products
#: of (1, 5) @ (5, 9) took 30 ns each and of (1, 25) @ (25, 9) 55 ns each (medians of 30
#: runs, 2026-12-01, a loaded machine): 25 ns plus 14 GFLOP/s. Decides depthwise
#: convolutions, whose groups make thousands of tiny products; a large product runs at
#: BLAS's rate instead (:data:`BLAS_FLOPS_PER_SECOND`), whichever is faster.
SECONDS_PER_PRODUCT = 25e-9
SMALL_PRODUCT_FLOPS_PER_SECOND = 14e9
#: Fixed cost of one ``np.einsum`` call with an explicit path (parsing, tensordot's
#: reshapes and transposes): ~20 us measured on the textbook example.
EINSUM_CALL_SECONDS = 20e-6
#: NumPy's own einsum loop, used when the contraction keeps a batch axis (groups > 1) that
#: tensordot cannot take: 0.46 GFLOP/s measured for the depthwise
#: ``"ngcABij,gocij->ngoAB"`` of 2 x 576 channels, 3 x 3 outputs, 5 x 5 taps, float32
#: (median of 15 runs, 2026-12-01).
EINSUM_LOOP_FLOPS_PER_SECOND = 0.46e9
#: The depthwise path's arithmetic, seconds per product on one thread (float32; wider types
#: scale with their itemsize): each product written by one NumPy multiply over a
#: cache-resident view and read by one add or reduce. Measured by timing the path's steps
#: in one process on the suite's depthwise shapes (1 thread, float32, 2026-12-02, minimum
#: of interleaved rounds, a heavily loaded machine): ~0.2-0.35 ns per product for the
#: 3 x 3 layers on 56 x 56 maps (flat and strided views), ~0.3-0.5 ns with the slab and
#: result transposes for the channels-last stacks of the 4 x 4 and 3 x 3 maps.
DEPTHWISE_SECONDS_PER_PRODUCT = 0.4e-9
#: Elements each depthwise product moves (the multiply reads one and writes one, the add
#: reads two and writes one): charged at :data:`COPY_BYTES_PER_SECOND` for the integer and
#: object types, whose arithmetic the model rates like every other path's.
DEPTHWISE_ELEMENTS_PER_PRODUCT = 5
#: NumPy's single-threaded elementwise multiply-and-sum (the naive path's arithmetic): ~1
#: GFLOP/s measured for float64 ``(a * b).sum()`` on 10**5 elements.
NUMPY_ELEMENTWISE_FLOPS_PER_SECOND = 1e9
#: One Python-level iteration of the naive loop (slicing a window, multiplying, summing):
#: ~10 us measured on a 3 x 3 kernel.
NAIVE_SECONDS_PER_OUTPUT = 10e-6
