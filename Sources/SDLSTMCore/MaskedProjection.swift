/// The three GEMMs of a linear map whose input carries a dropout mask, Y = (X ⊙ M) · W over a
/// window (X time-major, rows × width; W input-major, width × n): the structured kernels
/// (StructuredGEMM.swift) when the mask has its column form, OpenBLAS on the masked copy otherwise.
/// The LSTM layer's input projection and the output layer are both this map.
extension DropoutMask {
    /// Y (row stride n) += (X ⊙ M) · W, or X · W when `useMask` is false (evaluation). X must stay
    /// valid until the backward passes, which reuse what this pass kept.
    public func project(_ x: UnsafePointer<Float>, rows: Int, w: UnsafePointer<Float>, n: Int,
                        into y: UnsafeMutablePointer<Float>, useMask: Bool, pool: ThreadPool?) {
        projectedRows = rows
        projectedStructured = useMask && isActive && columnar
        if projectedStructured {
            gather(x, steps: 0..<steps)
            forwardGEMM(w, n: n, into: y, ldc: n, steps: 0..<steps, pool: pool)
            return
        }
        var operand = x
        if useMask && isActive {
            for t in 0..<steps { apply(step: t, x + t * batch * width, masked.ptr + t * batch * width) }
            operand = UnsafePointer(masked.ptr)
        }
        projectedInput = operand
        gemm(m: rows, n: n, k: width, a: operand, lda: width, b: w, ldb: n, beta: 1, c: y, ldc: n, pool: pool)
    }

    /// dW = (X ⊙ M)ᵀ · G for the last `project` (overwritten); G has row stride n.
    public func projectWeightGradient(_ g: UnsafePointer<Float>, n: Int, into dw: UnsafeMutablePointer<Float>,
                                      pool: ThreadPool?) {
        if projectedStructured {
            weightGradient(g, n: n, ldg: n, into: dw, pool: pool)
        } else {
            gemm(transA: true, m: width, n: n, k: projectedRows, a: projectedInput!, lda: width, b: g, ldb: n,
                 beta: 0, c: dw, ldc: n, pool: pool)
        }
    }

    /// dX = (G · Wᵀ) ⊙ M for the last `project` (overwritten); G has row stride n.
    public func projectBackwardData(_ g: UnsafePointer<Float>, n: Int, w: UnsafePointer<Float>,
                                    into dx: UnsafeMutablePointer<Float>, pool: ThreadPool?) {
        if projectedStructured {
            backwardData(g, n: n, ldg: n, w, into: dx, steps: 0..<steps, pool: pool)
            return
        }
        gemm(transB: true, m: projectedRows, n: width, k: n, a: g, lda: n, b: w, ldb: n, beta: 0, c: dx, ldc: width,
             pool: pool)
        if projectedInput == UnsafePointer(masked.ptr) {
            for t in 0..<steps { apply(step: t, dx + t * batch * width, dx + t * batch * width) }
        }
    }

    /// Row block t (`batch` rows) of `project` over a window of `rows` rows whose inputs arrive one
    /// step at a time (X is the whole window's buffer, its block t filled). Step 0 starts the
    /// window; the weight-gradient pass then covers every step.
    public func projectStep(_ t: Int, _ x: UnsafePointer<Float>, batch: Int, rows: Int, w: UnsafePointer<Float>, n: Int,
                            into y: UnsafeMutablePointer<Float>, useMask: Bool, pool: ThreadPool?) {
        let masking = useMask && isActive
        if t == 0 {
            projectedRows = rows
            projectedStructured = masking && columnar
            projectedInput = masking ? UnsafePointer(masked.ptr) : x
        }
        if projectedStructured {
            gather(x, steps: t..<(t + 1))
            forwardGEMM(w, n: n, into: y, ldc: n, steps: t..<(t + 1), pool: pool)
            return
        }
        var operand = x + t * batch * width
        if masking {
            apply(step: t, operand, masked.ptr + t * batch * width)
            operand = UnsafePointer(masked.ptr + t * batch * width)
        }
        gemm(m: batch, n: n, k: width, a: operand, lda: width, b: w, ldb: n, beta: 1, c: y + t * batch * n, ldc: n,
             pool: pool)
    }

    /// Row block t (`batch` rows) of `projectBackwardData` (G and dX are whole-window buffers).
    public func projectBackwardDataStep(_ t: Int, _ g: UnsafePointer<Float>, batch: Int, n: Int, w: UnsafePointer<Float>,
                                        into dx: UnsafeMutablePointer<Float>, pool: ThreadPool?) {
        if projectedStructured {
            backwardData(g, n: n, ldg: n, w, into: dx, steps: t..<(t + 1), pool: pool)
            return
        }
        let out = dx + t * batch * width
        gemm(transB: true, m: batch, n: width, k: n, a: g + t * batch * n, lda: n, b: w, ldb: n, beta: 0, c: out,
             ldc: width, pool: pool)
        if projectedInput == UnsafePointer(masked.ptr) { apply(step: t, out, out) }
    }
}
