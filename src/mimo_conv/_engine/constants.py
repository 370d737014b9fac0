"""The cost model's machine constants: how fast this kind of machine does each kind of work.

Every constant says where it was measured: by ``benchmarks/calibrate.py`` unless its comment
says otherwise (run it, check its table of predicted against measured times, and paste the
assignments it prints over the ones between the ``calibrate.py`` lines below), on the
benchmark machine (2-core AMD EPYC, OpenBLAS 0.3.31, NumPy 2.4). The values below were
measured on 2026-12-02 (one thread, the fastest of 5 interleaved rounds) on a heavily loaded
machine (load average ~11 on 2 cores); the lead re-runs the script on a quiet one. Only
their ratios matter for the choice, so a faster or slower machine shifts every prediction
alike. The paths count their work (:class:`mimo_conv._paths.spec.Work`);
:mod:`mimo_conv._engine.formulas` turns the counts into seconds with these rates (its
:class:`~mimo_conv._engine.formulas.Rates` holds them, one field per constant).

Rates are for one thread: :data:`BLAS_THREAD_EFFICIENCY` and :data:`NUMPY_THREAD_EFFICIENCY`
say what each further thread adds.

Examples
--------
>>> COPY_BYTES_PER_SECOND > STRIDED_BYTES_PER_SECOND
True
"""

from __future__ import annotations

# The values between the two "calibrate.py" lines are the ones benchmarks/calibrate.py
# prints; the comments say what each measurement was.
# --- calibrate.py: begin ---

#: GEMM rate of OpenBLAS on one thread on a large product, FLOP/s, by compute dtype kind and
#: itemsize: measured by ``calibrate.py`` as the best of (512, 512, 512), (256, 2304, 196)
#: and (64, 576, 3136) products (AVX2 FMA). Complex types run the real rate of their
#: component type.
BLAS_FLOPS_PER_SECOND: dict[tuple[str, int], float] = {
    ("f", 8): 40e9,
    ("f", 4): 89e9,
    ("c", 16): 40e9,
    ("c", 8): 89e9,
}
#: A product's rows ``m``, inner length ``k`` and columns ``n`` at which it runs at half
#: the full rate, each alone (:func:`mimo_conv._engine.formulas.efficiency`): fitted by
#: ``calibrate.py`` to a measured grid of thin products (m in 4..256, k in 9..2304, n in
#: 8..3136), least squares on the logarithm of the time (2026-12-02: rms error 14%; rows
#: and columns at the grid's floor, 0.125: OpenBLAS keeps its rate down to a few rows and
#: columns once the product's fixed cost, :data:`SECONDS_PER_CALL`, is counted apart).
HALF_SPEED_ROWS = 0.125
HALF_SPEED_INNER = 2.8
HALF_SPEED_COLUMNS = 0.125
#: What each thread beyond the first adds to a large product's rate: measured by
#: ``calibrate.py`` as the 2-thread rate over the 1-thread rate of the large products,
#: minus 1. 0.8 is from a quiet machine (the same-size GEMM of ``bench_conv.py`` at 2
#: threads, ~70 GFLOP/s float64, against ~40 on one); on the loaded machine of
#: 2026-12-02 a second thread measured no gain at all, which ``calibrate.py`` flags.
BLAS_THREAD_EFFICIENCY = 0.8
#: ``m * n * k`` up to which OpenBLAS runs a product on one thread: its rule (65536 times
#: ``GEMM_MULTITHREAD_THRESHOLD``, 4 by default), measured by ``calibrate.py`` as no
#: 2-thread gain on a (16, 150, 100) product.
BLAS_SINGLE_THREAD_WORK = 262144
#: NumPy's own integer matrix product (no BLAS): measured ~1-2 GFLOP/s for int64 on the
#: same machine (a 256 x 256 int64 matmul; 1.9 GFLOP/s for (64, 576) @ (576, 3136) on
#: 2026-12-01, a loaded machine).
INTEGER_FLOPS_PER_SECOND = 1e9
#: Python-level arithmetic on object arrays (ints, fractions): measured ~30 MFLOP/s for
#: small Python ints in an object matmul; fractions are slower, but every path does the
#: same object operations, so only the other terms decide between paths.
OBJECT_FLOPS_PER_SECOND = 30e6
#: Single-threaded NumPy copy bandwidth, bytes read plus written per second: measured by
#: ``calibrate.py`` on the tap copy of the ResNet 3 x 3 layer (8 x 64 x 56 x 56 float32
#: from its padded input; 6.4 MiB, within the last-level cache like a path's chunks), its
#: rows' fixed cost (:data:`SECONDS_PER_RUN`) taken off.
COPY_BYTES_PER_SECOND = 33e9
#: The same for a copy that reads every other element (a stride-2 window): measured by
#: ``calibrate.py`` on ``dst[...] = src[..., ::2, ::2]`` of a (8, 64, 56, 56) float32 input.
STRIDED_BYTES_PER_SECOND = 13e9
#: Fixed cost of each contiguous run (row) a copy or addition starts: measured by
#: ``calibrate.py`` from two copies of the same bytes in rows of 8 and of 512 elements.
SECONDS_PER_RUN = 4.4e-9
#: What each thread beyond the first adds to NumPy-side work split over threads: measured
#: by ``calibrate.py`` on a quiet machine (2026-12-02, load 1.1): 0.16 (a second thread made
#: the split copies 1.16x as fast; an earlier estimate of 0.7 came from the copy alone).
NUMPY_THREAD_EFFICIENCY = 0.16
#: Fixed cost of one NumPy call made from a path's Python loop (indexing, a copy, a
#: matmul): measured by ``calibrate.py`` on tap copies and products of 1-element arrays
#: (the median of the two).
SECONDS_PER_CALL = 1e-6
#: Fixed cost of one sliding-window view (``window_view``: ``as_strided``'s Python-level
#: checks and the transposed reshape's set-up), measured by ``calibrate.py`` on the
#: textbook example's input.
WINDOW_VIEW_SECONDS = 15e-6
#: Fixed cost of each small product inside one batched ``np.matmul`` (NumPy loops over the
#: batch axes in C), and the arithmetic rate of such small products: measured by
#: ``calibrate.py`` from 1152 float32 products of (1, 5) @ (5, 9) and of (1, 25) @ (25, 9)
#: (2026-12-01: 30 and 55 ns each, medians of 30 runs; 2026-12-02: 24 ns plus 14 GFLOP/s).
#: Decides depthwise convolutions, whose groups make thousands of tiny products; a large
#: product runs at BLAS's rate instead (:data:`BLAS_FLOPS_PER_SECOND`), whichever is faster.
SECONDS_PER_PRODUCT = 28e-9
SMALL_PRODUCT_FLOPS_PER_SECOND = 16e9
#: Fixed cost of one ``np.einsum`` call with an explicit path (parsing, tensordot's
#: reshapes and transposes): measured by ``calibrate.py`` on the textbook example.
EINSUM_CALL_SECONDS = 22e-6
#: NumPy's own einsum loop, used when the contraction keeps a batch axis (groups > 1) that
#: tensordot cannot take: 0.46 GFLOP/s measured for the depthwise
#: ``"ngcABij,gocij->ngoAB"`` of 2 x 576 channels, 3 x 3 outputs, 5 x 5 taps, float32, on
#: the window view of the padded input (median of 15 runs, 2026-12-01).
EINSUM_LOOP_FLOPS_PER_SECOND = 0.46e9
#: NumPy's single-threaded elementwise multiply-and-sum (the naive path's arithmetic, the
#: depthwise path's passes): ~1 GFLOP/s measured for float64 ``(a * b).sum()`` on 10**5
#: elements (2026-12-01; ``calibrate.py`` measured 4 GFLOP/s as the fastest of 7 rounds on
#: 2026-12-02, left for the lead's quiet-machine run since it moves the depthwise choices).
NUMPY_ELEMENTWISE_FLOPS_PER_SECOND = 1e9
#: One Python-level iteration of the naive loop (slicing a window, multiplying, summing):
#: measured by ``calibrate.py`` on a 3 x 3 kernel over a 10 x 10 input.
NAIVE_SECONDS_PER_OUTPUT = 7.4e-6

# --- calibrate.py: end ---

#: How much faster OpenBLAS's AVX-512 kernels ("SkylakeX" and later) run a large product
#: than the AVX2 ("Haswell") kernels :data:`BLAS_FLOPS_PER_SECOND` was measured with, by
#: itemsize of the real component (4: float32, 8: float64): ``calibrate.py --rates-only``
#: run twice under each ``OPENBLAS_CORETYPE`` on the benchmark machine (AMD Zen 5, 1
#: thread, 2026-12-02): float32 99 and 100 against 178 and 167 GFLOP/s, float64 49 and 48
#: against 76 and 73. The formulas apply it when NumPy's OpenBLAS runs such kernels
#: (:func:`mimo_conv._core.machine.openblas_kernels`), so that ``auto`` weighs the GEMM
#: paths against the elementwise ones at the speed they will run.
BLAS_KERNEL_SPEEDUP: dict[int, float] = {4: 1.7, 8: 1.5}

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
