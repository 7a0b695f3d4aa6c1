"""One row of a biquad cascade on 8 channels as explicit 8-wide SIMD (LLVM ``<8 x double>``).

LLVM does not vectorise the channel loop of the Numba kernels by itself (it cannot prove that the
state, input and output arrays do not alias, and Numba leaves the SLP vectoriser off), so the
lanes ran as scalar code. :func:`vrow8` is a Numba intrinsic that emits the vector IR directly:
one row of 8 channels goes through every section with the running value in a register and each
section's two state vectors loaded and stored once. Arithmetic is the same IEEE operations in the
same order as the scalar kernels (no FMA contraction), so results are bit-identical to them and
to the slow references in the tests.

With the JIT disabled (``TONUSLAB_DISABLE_JIT=1`` or ``NUMBA_DISABLE_JIT=1``, see
:data:`dsp._jit.JIT_DISABLED`) :func:`vrow8`, :func:`vrows8` and :func:`vslide8` are plain
Python functions doing the same.
"""

from __future__ import annotations

import numpy as np

from dsp._jit import JIT_DISABLED

#: Lanes (channels) per call: one AVX-512 register of float64, two AVX2 registers.
LANES = 8

if JIT_DISABLED:

    def vrow8(sos, state, src, dst, i, c0):
        """``dst[i, c0:c0+8] = cascade(src[i, c0:c0+8])``; state ``(n_sections, 2, 8)``."""
        v = src[i, c0 : c0 + LANES].copy()
        for s in range(sos.shape[0]):
            b0, b1, b2, _, a1, a2 = sos[s]
            y = b0 * v + state[s, 0]
            state[s, 0] = b1 * v - a1 * y + state[s, 1]
            state[s, 1] = b2 * v - a2 * y
            v = y
        dst[i, c0 : c0 + LANES] = v

    def vrows8(sos, state, src, dst, c0, i_first, count, step, nsec):
        """Rows ``i_first + k * step`` (k < count), as repeated :func:`vrow8`."""
        for k in range(count):
            vrow8(sos, state, src, dst, i_first + k * step, c0)

    def vslide8(x, out, ring, acc, i, j, p, c0, inv):
        """Moving mean square, one step on 8 channels (see the compiled version)."""
        out[i, c0 : c0 + LANES] = np.sqrt(np.maximum(acc, 0.0) * inv)
        sq = x[j, c0 : c0 + LANES] * x[j, c0 : c0 + LANES]
        acc += sq - ring[p]
        ring[p] = sq

else:
    from llvmlite import ir
    from numba import types
    from numba.core import cgutils
    from numba.core.errors import TypingError
    from numba.extending import intrinsic

    _VEC = ir.VectorType(ir.DoubleType(), LANES)
    _I32 = ir.IntType(32)
    _I64 = ir.IntType(64)

    def _splat(builder, x):
        v = builder.insert_element(ir.Constant(_VEC, ir.Undefined), x, ir.Constant(_I32, 0))
        mask = ir.Constant(ir.VectorType(_I32, LANES), [0] * LANES)
        return builder.shuffle_vector(v, ir.Constant(_VEC, ir.Undefined), mask)

    def _check(name, ty, ndim, layouts):
        if not (
            isinstance(ty, types.Array)
            and ty.dtype == types.float64
            and ty.ndim == ndim
            and ty.layout in layouts
        ):
            raise TypingError(f"vrow8: {name} must be a float64 {ndim}-d array, got {ty}")

    @intrinsic
    def vrow8(typingctx, sos, state, src, dst, i, c0):
        """``dst[i, c0:c0+8] = cascade(src[i, c0:c0+8])``; state ``(n_sections, 2, 8)``.

        ``sos`` and ``state`` must be C-contiguous; ``src`` and ``dst`` are 2-D with contiguous
        rows (C layout); no bounds are checked (the callers guarantee them).
        """
        _check("sos", sos, 2, "C")
        _check("state", state, 3, "C")
        _check("src", src, 2, "C")
        _check("dst", dst, 2, "C")
        sig = types.void(sos, state, src, dst, types.intp, types.intp)

        def codegen(context, builder, signature, args):
            sos_a, st_a, src_a, dst_a = (
                context.make_array(signature.args[k])(context, builder, args[k]) for k in range(4)
            )
            row, col = args[4], args[5]
            byte = ir.IntType(8).as_pointer()

            def row_ptr(arr):
                stride0 = builder.extract_value(arr.strides, 0)
                off = builder.add(builder.mul(row, stride0), builder.mul(col, ir.Constant(_I64, 8)))
                return builder.bitcast(
                    builder.gep(builder.bitcast(arr.data, byte), [off]), _VEC.as_pointer()
                )

            nsec = builder.extract_value(sos_a.shape, 0)
            vslot = cgutils.alloca_once(builder, _VEC)
            builder.store(builder.load(row_ptr(src_a), align=8), vslot)
            with cgutils.for_range(builder, nsec) as loop:
                s = loop.index
                base = builder.mul(s, ir.Constant(_I64, 6))

                def coef(k, base=base):
                    return builder.load(
                        builder.gep(sos_a.data, [builder.add(base, ir.Constant(_I64, k))])
                    )

                b0, b1, b2, a1, a2 = (_splat(builder, coef(k)) for k in (0, 1, 2, 4, 5))
                zoff = builder.mul(s, ir.Constant(_I64, 2 * LANES))
                p0 = builder.bitcast(builder.gep(st_a.data, [zoff]), _VEC.as_pointer())
                p1 = builder.bitcast(
                    builder.gep(st_a.data, [builder.add(zoff, ir.Constant(_I64, LANES))]),
                    _VEC.as_pointer(),
                )
                v = builder.load(vslot)
                z0 = builder.load(p0, align=8)
                z1 = builder.load(p1, align=8)
                # y = b0 v + z0; z0' = (b1 v - a1 y) + z1; z1' = b2 v - a2 y (scalar order)
                y = builder.fadd(builder.fmul(b0, v), z0)
                z0n = builder.fadd(builder.fsub(builder.fmul(b1, v), builder.fmul(a1, y)), z1)
                z1n = builder.fsub(builder.fmul(b2, v), builder.fmul(a2, y))
                builder.store(z0n, p0, align=8)
                builder.store(z1n, p1, align=8)
                builder.store(y, vslot)
            builder.store(builder.load(vslot), row_ptr(dst_a), align=8)
            return context.get_dummy_value()

        return sig, codegen

    @intrinsic
    def vslide8(typingctx, x, out, ring, acc, i, j, p, c0, inv):
        """One step of the running mean square on 8 channels::

            out[i, c0:c0+8] = sqrt(max(acc, 0) * inv)
            sq = x[j, c0:c0+8] ** 2;  acc += sq - ring[p];  ring[p] = sq

        Same operations and order as the scalar loop in :mod:`dsp.envelopes`.
        """
        _check("x", x, 2, "C")
        _check("out", out, 2, "C")
        _check("ring", ring, 2, "C")
        _check("acc", acc, 1, "C")
        sig = types.void(
            x, out, ring, acc, types.intp, types.intp, types.intp, types.intp, types.float64
        )

        def codegen(context, builder, signature, args):
            xa, oa, ra, aa = (
                context.make_array(signature.args[k])(context, builder, args[k]) for k in range(4)
            )
            i_, j_, p_, c0_, inv_ = args[4:]
            byte = ir.IntType(8).as_pointer()

            def at(arr, row, col):
                stride0 = builder.extract_value(arr.strides, 0)
                off = builder.add(builder.mul(row, stride0), builder.mul(col, ir.Constant(_I64, 8)))
                return builder.bitcast(
                    builder.gep(builder.bitcast(arr.data, byte), [off]), _VEC.as_pointer()
                )

            zero = ir.Constant(_I64, 0)
            accp = builder.bitcast(aa.data, _VEC.as_pointer())
            acc_v = builder.load(accp, align=8)
            zeros = ir.Constant(_VEC, [0.0] * LANES)
            pos = builder.select(builder.fcmp_ordered("<", acc_v, zeros), zeros, acc_v)
            sqrt = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(_VEC, [_VEC]), f"llvm.sqrt.v{LANES}f64"
            )
            builder.store(
                builder.call(sqrt, [builder.fmul(pos, _splat(builder, inv_))]),
                at(oa, i_, c0_),
                align=8,
            )
            v = builder.load(at(xa, j_, c0_), align=8)
            sq = builder.fmul(v, v)
            rp = at(ra, p_, zero)
            old = builder.load(rp, align=8)
            builder.store(builder.fadd(acc_v, builder.fsub(sq, old)), accp, align=8)
            builder.store(sq, rp, align=8)
            return context.get_dummy_value()

        return sig, codegen

    @intrinsic
    def vrows8(typingctx, sos, state, src, dst, c0, i_first, count, step, nsec):
        """Rows ``i_first + k * step`` (k < count) of the cascade with the state in registers.

        ``nsec`` must be an integer literal equal to ``sos.shape[0]`` (the callers dispatch on
        it): the sections are unrolled and their state vectors stay in registers across rows, so
        the recursion no longer goes through memory (about 1.7x :func:`vrow8`). Same operations
        and order as :func:`vrow8`; results are bit-identical.
        """
        if not isinstance(nsec, types.IntegerLiteral):
            return None  # Numba retries with the literal value
        _check("sos", sos, 2, "C")
        _check("state", state, 3, "C")
        _check("src", src, 2, "C")
        _check("dst", dst, 2, "C")
        k_sec = nsec.literal_value
        sig = types.void(sos, state, src, dst, types.intp, types.intp, types.intp, types.intp, nsec)

        def codegen(context, builder, signature, args):
            sos_a, st_a, src_a, dst_a = (
                context.make_array(signature.args[k])(context, builder, args[k]) for k in range(4)
            )
            c0_, i0_, count_, step_ = args[4:8]
            byte = ir.IntType(8).as_pointer()

            def row_ptr(arr, row):
                stride0 = builder.extract_value(arr.strides, 0)
                off = builder.add(builder.mul(row, stride0), builder.mul(c0_, ir.Constant(_I64, 8)))
                return builder.bitcast(
                    builder.gep(builder.bitcast(arr.data, byte), [off]), _VEC.as_pointer()
                )

            def vec_ptr(arr, index):
                return builder.bitcast(
                    builder.gep(arr.data, [ir.Constant(_I64, index)]), _VEC.as_pointer()
                )

            coefs, states = [], []
            for s in range(k_sec):
                coefs.append(
                    [
                        _splat(
                            builder,
                            builder.load(builder.gep(sos_a.data, [ir.Constant(_I64, 6 * s + k)])),
                        )
                        for k in (0, 1, 2, 4, 5)
                    ]
                )
                p0, p1 = vec_ptr(st_a, 2 * LANES * s), vec_ptr(st_a, 2 * LANES * s + LANES)
                r0, r1 = cgutils.alloca_once(builder, _VEC), cgutils.alloca_once(builder, _VEC)
                builder.store(builder.load(p0, align=8), r0)
                builder.store(builder.load(p1, align=8), r1)
                states.append((p0, p1, r0, r1))
            with cgutils.for_range(builder, count_) as loop:
                row = builder.add(i0_, builder.mul(loop.index, step_))
                v = builder.load(row_ptr(src_a, row), align=8)
                for (b0, b1, b2, a1, a2), (_, _, r0, r1) in zip(coefs, states, strict=True):
                    z0 = builder.load(r0)
                    z1 = builder.load(r1)
                    y = builder.fadd(builder.fmul(b0, v), z0)
                    builder.store(
                        builder.fadd(builder.fsub(builder.fmul(b1, v), builder.fmul(a1, y)), z1), r0
                    )
                    builder.store(builder.fsub(builder.fmul(b2, v), builder.fmul(a2, y)), r1)
                    v = y
                builder.store(v, row_ptr(dst_a, row), align=8)
            for p0, p1, r0, r1 in states:
                builder.store(builder.load(r0), p0, align=8)
                builder.store(builder.load(r1), p1, align=8)
            return context.get_dummy_value()

        return sig, codegen
