import CKernels

/// One LSTM layer over a window of T steps, PyTorch's equations (gate order i, f, g, o):
///
///     G_t = X̃_t · W_ih + b_ih + H̃_{t-1} · W_hh + b_hh      X̃ = X ⊙ M_in,  H̃_{t-1} = H_{t-1} ⊙ M_rec,t
///     i, f, o = σ(G_i, G_f, G_o);  g = tanh(G_g)
///     C_t = f ⊙ C_{t-1} + i ⊙ g;   H_t = o ⊙ tanh(C_t)
///
/// The input mask is the non-recurrent (NR) dropout site of this layer, the recurrent mask the RH
/// site; H_t handed upward and C_t are never masked here. All buffers are time-major (t, b, unit).
/// The same layer serves every model: the LM stacks them, other models reverse or feed them.
public final class LSTMLayer {
    public let inputSize: Int
    public let hiddenSize: Int
    public let wih: Parameter  // D × 4H
    public let whh: Parameter  // H × 4H
    public let bih: Parameter  // 4H
    public let bhh: Parameter  // 4H
    /// X̃ · W_ih over the window and H̃_{t-1} · W_hh step by step: the NR and RH dropout sites.
    public let input: MaskedLinear
    public let recurrent: MaskedLinear
    public var inputDropout: DropoutMask { input.mask }
    public var recurrentDropout: DropoutMask { recurrent.mask }

    private var steps = 0, batch = 0, capacity = 0, batchCapacity = 0
    private var gates: Buffer  // pre-activations, then activations i, f, g, o (T × B × 4H)
    private var hs: Buffer     // H_0 … H_T, slot 0 the initial state ((T+1) × B × H)
    private var cs: Buffer     // C_0 … C_T
    private var tcs: Buffer    // tanh(C_t), T × B × H
    private var dGates: Buffer // T × B × 4H
    private var dh: Buffer     // B × H: gradient reaching H_{t-1} through the recurrence
    private var dhSteps: Buffer  // T × B × H: the same, per step, from the structured recurrent path
    private var whhPanels: Buffer  // W_hh in the kernels' panels, packed once per window
    private let allUnits: IndexBuffer  // 0 ..< H: the dense recurrent product as an indexed one
    private var dc: Buffer     // B × H: gradient reaching C_{t-1}
    public private(set) var dx: Buffer  // gradient of the layer input, T × B × D
    private var ownRecurrentKernel = false  // whether this window's dense recurrent product uses whhPanels
    private var dhNext: UnsafePointer<Float>  // gradient reaching H_{t-1} through the recurrence
    private var wantsInitialGradient = false
    /// The owning model's threads; nil runs single-threaded.
    public var compute: Compute?
    private var pool: ThreadPool? { compute?.pool }

    /// Parameters are named as PyTorch's `nn.LSTM` called `name` names them: `name.weight_ih_l0`,
    /// with `suffix` "_reverse" for the backward direction of a bidirectional LSTM.
    public init(inputSize: Int, hiddenSize: Int, name: String, layer: Int, suffix: String = "") throws(SDLSTMError) {
        self.inputSize = inputSize
        self.hiddenSize = hiddenSize
        wih = try Parameter("\(name).weight_ih_l\(layer)\(suffix)", rows: inputSize, cols: 4 * hiddenSize, transposed: true)
        whh = try Parameter("\(name).weight_hh_l\(layer)\(suffix)", rows: hiddenSize, cols: 4 * hiddenSize, transposed: true)
        bih = try Parameter("\(name).bias_ih_l\(layer)\(suffix)", rows: 4 * hiddenSize)
        bhh = try Parameter("\(name).bias_hh_l\(layer)\(suffix)", rows: 4 * hiddenSize)
        input = try MaskedLinear(width: inputSize, outputs: 4 * hiddenSize)
        recurrent = try MaskedLinear(width: hiddenSize, outputs: 4 * hiddenSize)
        (gates, hs, cs, tcs, dGates, dh, dc, dx) =
            (try Buffer(0), try Buffer(0), try Buffer(0), try Buffer(0),
             try Buffer(0), try Buffer(0), try Buffer(0), try Buffer(0))
        dhSteps = try Buffer(0)
        whhPanels = try Buffer(panelCount(rows: hiddenSize, n: 4 * hiddenSize))
        allUnits = try IndexBuffer(hiddenSize)
        for u in 0..<hiddenSize { allUnits.ptr[u] = Int32(u) }
        dhNext = UnsafePointer(dh.ptr)
    }

    public var parameters: [Parameter] { [wih, whh, bih, bhh] }

    /// Sizes the workspaces for a window; allocates only when the window grows.
    func prepare(steps: Int, batch: Int) throws(SDLSTMError) {
        self.steps = steps
        self.batch = batch
        let threads = compute?.threads ?? 1
        try input.prepare(steps: steps, batch: batch, threads: threads)
        try recurrent.prepare(steps: steps, batch: batch, threads: threads)
        // Sized for the largest window and the largest batch seen so far, separately: a decoder
        // runs long windows of a small batch when training and one-step windows of a beam-wide one.
        guard steps * batch > capacity || batch > batchCapacity else { return }
        let (rows, b) = (max(steps * batch, capacity), max(batch, batchCapacity))
        let (d, h) = (inputSize, hiddenSize)
        gates = try Buffer(rows * 4 * h)
        hs = try Buffer((rows + b) * h)
        cs = try Buffer((rows + b) * h)
        tcs = try Buffer(rows * h)
        dGates = try Buffer(rows * 4 * h)
        dh = try Buffer(b * h)
        dc = try Buffer(b * h)
        dx = try Buffer(rows * d)
        dhSteps = try Buffer(rows * h)
        (capacity, batchCapacity) = (rows, b)
    }

    /// H_1 … H_T of the last forward pass, T × B × H.
    public var output: UnsafeMutablePointer<Float> { hs.ptr + batch * hiddenSize }
    /// C_1 … C_T of the last forward pass, T × B × H.
    public var cellOutput: UnsafePointer<Float> { UnsafePointer(cs.ptr + batch * hiddenSize) }
    public var finalHidden: UnsafePointer<Float> { UnsafePointer(hs.ptr + steps * batch * hiddenSize) }
    public var finalCell: UnsafePointer<Float> { UnsafePointer(cs.ptr + steps * batch * hiddenSize) }

    /// Runs the window. `x` (T × B × D) must stay valid until `backward`; masks must be sampled.
    func forward(_ x: UnsafePointer<Float>, h0: UnsafePointer<Float>, c0: UnsafePointer<Float>, dropout: Bool) {
        begin(h0: h0, c0: c0, dropout: dropout)
        let g4 = 4 * hiddenSize, rows = steps * batch
        for r in 0..<rows { addBiases(gates.ptr + r * g4) }
        // Input projection of all steps at once: one M = T·B GEMM instead of T small ones.
        input.forward(x, w: wih.value.ptr, into: gates.ptr, pool: pool)
        for t in 0..<steps { recurrentStep(t) }
    }

    /// Step mode, for inputs that depend on the previous step's output (a decoder with input
    /// feeding): `begin`, then `forwardStep(t, x)` for t = 0, 1, … once row block t of `x`
    /// (T × B × D, valid until `backward`) is filled. Backward is `backwardStep` from the last step
    /// down, then `finishBackward`.
    func begin(h0: UnsafePointer<Float>, c0: UnsafePointer<Float>, dropout: Bool) {
        let h = hiddenSize
        input.begin(steps: steps, batch: batch, dropout: dropout)
        recurrent.begin(steps: steps, batch: batch, dropout: dropout)
        hs.ptr.update(from: h0, count: batch * h)
        cs.ptr.update(from: c0, count: batch * h)
        // The recurrent product H̃_{t-1} · W_hh has M = batch rows per step and the same W_hh for
        // the whole window: the AVX-512 kernel over W_hh packed once per window beats a per-step
        // sgemm, which repacks W_hh every step (`sdlstm-bench kernels`, "recurrent-dense": 1.3–2.0×).
        // The AVX2 one does not (0.95–1.0× against OpenBLAS's Haswell kernels), nor portable C. Not
        // for a one-step window (a decoder's beam step): the packing would be all there is to share.
        ownRecurrentKernel = steps > 1 && sdk_isa() == SDK_ISA_AVX512
        if ownRecurrentKernel || recurrent.path == .keptColumns {
            packPanels(whh.value.ptr, rows: h, n: 4 * h, into: whhPanels.ptr)
        }
    }

    func forwardStep(_ t: Int, _ x: UnsafePointer<Float>) {
        let g4 = 4 * hiddenSize
        for r in (t * batch)..<((t + 1) * batch) { addBiases(gates.ptr + r * g4) }
        input.forwardStep(t, x, w: wih.value.ptr, into: gates.ptr, pool: pool)
        recurrentStep(t)
    }

    @inline(__always) private func addBiases(_ row: UnsafeMutablePointer<Float>) {
        for j in 0..<(4 * hiddenSize) { row[j] = bih.value[j] + bhh.value[j] }
    }

    /// G_t += H̃_{t-1} · W_hh, then the cell: H_t, C_t into slot t + 1.
    private func recurrentStep(_ t: Int) {
        let (h, b, g4) = (hiddenSize, batch, 4 * hiddenSize)
        let gt = gates.ptr + t * b * g4
        // Slot t of hs is H_{t-1}: the step's input to W_hh, as row block t.
        if recurrent.path == .keptColumns {
            recurrent.gather(hs.ptr, steps: t..<(t + 1))
            recurrent.keptForwardStep(t, panels: whhPanels.ptr, n: g4, into: gates.ptr, ldc: g4, pool: pool)
        } else {
            let hIn = recurrent.stepOperand(t, hs.ptr)
            if ownRecurrentKernel {
                panelGEMM(batch: b, n: g4, k: h, a: hIn, lda: h, idx: allUnits.ptr, panels: whhPanels.ptr, rows: h,
                          c: gt, ldc: g4, pool: pool)
            } else {
                gemm(m: b, n: g4, k: h, a: hIn, lda: h, b: whh.value.ptr, ldb: g4, beta: 1, c: gt, ldc: g4, pool: pool)
            }
        }
        cellForward(gt, cPrev: cs.ptr + t * b * h, c: cs.ptr + (t + 1) * b * h,
                    tc: tcs.ptr + t * b * h, hOut: hs.ptr + (t + 1) * b * h)
    }

    private func cellForward(_ g: UnsafeMutablePointer<Float>, cPrev: UnsafeMutablePointer<Float>,
                             c: UnsafeMutablePointer<Float>, tc: UnsafeMutablePointer<Float>,
                             hOut: UnsafeMutablePointer<Float>) {
        let h = hiddenSize
        for b in 0..<batch {
            let gi = g + b * 4 * h, gf = gi + h, gg = gf + h, go = gg + h
            sigmoidInPlace(gi, 2 * h)  // i and f are adjacent
            tanhInPlace(gg, h)
            sigmoidInPlace(go, h)
            let cp = cPrev + b * h, cn = c + b * h, tn = tc + b * h, hn = hOut + b * h
            for j in 0..<h {
                let c = gf[j] * cp[j] + gi[j] * gg[j]
                let tc = fastTanh(c)
                cn[j] = c
                tn[j] = tc
                hn[j] = go[j] * tc
            }
        }
    }

    /// Backpropagates `dOut` (∂loss/∂H_t, T × B × H; consumed) through the window. Writes the
    /// parameter gradients (overwriting them) and, if `needInputGradient`, ∂loss/∂X into `dx`.
    /// `dCell` (T × B × H) adds a gradient reaching C_t directly (an encoder's final cell state).
    /// With `initialStateGradient`, ∂loss/∂H_0 and ∂loss/∂C_0 are left in `initialHiddenGradient`
    /// and `initialCellGradient`; otherwise none flows into the initial state (truncated BPTT).
    func backward(_ dOut: UnsafeMutablePointer<Float>, needInputGradient: Bool,
                  dCell: UnsafePointer<Float>? = nil, initialStateGradient: Bool = false) {
        let (h, b) = (hiddenSize, batch)
        beginBackward(initialStateGradient: initialStateGradient)
        for t in stride(from: steps - 1, through: 0, by: -1) {
            backwardStep(t, dOut + t * b * h, dCell: dCell.map { $0 + t * b * h }, needInputGradient: false)
        }
        finishBackward()
        if needInputGradient { input.backwardData(dGates.ptr, w: wih.value.ptr, into: dx.ptr, pool: pool) }
    }

    func beginBackward(initialStateGradient: Bool) {
        wantsInitialGradient = initialStateGradient
        dh.zero()
        dc.zero()
        dhNext = UnsafePointer(dh.ptr)
    }

    /// Step t of the backward pass: `dht` (∂loss/∂H_t from above, B × H) gets the gradient from
    /// step t + 1 added, ∂G_t is formed, and the gradient reaching H_{t-1} is kept for step t − 1.
    /// With `needInputGradient`, row block t of `dx` gets ∂loss/∂X_t.
    func backwardStep(_ t: Int, _ dht: UnsafeMutablePointer<Float>, dCell: UnsafePointer<Float>? = nil,
                      needInputGradient: Bool) {
        let (h, b, g4) = (hiddenSize, batch, 4 * hiddenSize)
        for i in 0..<(b * h) { dht[i] += dhNext[i] }
        if let dCell { for i in 0..<(b * h) { dc[i] += dCell[i] } }
        cellBackward(t, dh: dht)
        if t > 0 || wantsInitialGradient {
            if recurrent.path == .keptColumns {
                recurrent.keptBackwardData(dGates.ptr, n: g4, ldg: g4, whh.value.ptr, into: dhSteps.ptr,
                                           steps: t..<(t + 1), pool: pool)
                dhNext = UnsafePointer(dhSteps.ptr + t * b * h)
            } else {
                // dH_{t-1} = dG_t · W_hhᵀ: the dot-product kernel reads W_hh's rows in place, where a
                // per-step sgemm repacks W_hh ("recurrent-backward-dense" in `sdlstm-bench kernels`:
                // 1.5× with AVX-512, 1.2× with AVX2).
                if sdk_isa() != SDK_ISA_PORTABLE {
                    dotGEMM(batch: b, n: g4, units: h, g: dGates.ptr + t * b * g4, ldg: g4, idx: allUnits.ptr,
                            w: whh.value.ptr, ldw: g4, d: dh.ptr, ldd: h, pool: pool)
                } else {
                    gemm(transB: true, m: b, n: h, k: g4, a: dGates.ptr + t * b * g4, lda: g4,
                         b: whh.value.ptr, ldb: g4, beta: 0, c: dh.ptr, ldc: h, pool: pool)
                }
                recurrent.maskGradient(step: t, dh.ptr)
                dhNext = UnsafePointer(dh.ptr)
            }
        }
        if needInputGradient {
            input.backwardDataStep(t, dGates.ptr, w: wih.value.ptr, into: dx.ptr, pool: pool)
        }
    }

    /// ∂loss/∂H_0 and ∂loss/∂C_0 after a backward pass asked for them (B × H each).
    var initialHiddenGradient: UnsafePointer<Float> { dhNext }
    var initialCellGradient: UnsafePointer<Float> { UnsafePointer(dc.ptr) }

    /// Weight gradients over the whole window: single K = T·B GEMMs, or the structured kernel
    /// that touches only each step's kept rows.
    func finishBackward() {
        let g4 = 4 * hiddenSize
        recurrent.weightGradient(dGates.ptr, into: whh.grad.ptr, pool: pool)
        input.weightGradient(dGates.ptr, into: wih.grad.ptr, pool: pool)
        columnSums(dGates.ptr, rows: steps * batch, n: g4, into: bih.grad.ptr)
        bhh.grad.copy(from: bih.grad)
    }

    /// The steps whose recurrent backward-data product ran in the last backward pass: step 0's
    /// only when a gradient flowed into the initial state.
    var recurrentBackwardSteps: Range<Int> { (wantsInitialGradient ? 0 : min(1, steps))..<steps }

    /// ∂loss/∂G_t from ∂loss/∂H_t (dht) and the carried ∂loss/∂C_t (dc, updated to ∂loss/∂C_{t-1}).
    private func cellBackward(_ t: Int, dh dht: UnsafeMutablePointer<Float>) {
        let h = hiddenSize, b4 = 4 * h
        for b in 0..<batch {
            let a = gates.ptr + (t * batch + b) * b4
            let (i, f, g, o) = (a, a + h, a + 2 * h, a + 3 * h)
            let dg = dGates.ptr + (t * batch + b) * b4
            let (di, df, dgg, dO) = (dg, dg + h, dg + 2 * h, dg + 3 * h)
            let tc = tcs.ptr + (t * batch + b) * h
            let cPrev = cs.ptr + (t * batch + b) * h
            let dhb = dht + b * h, dcb = dc.ptr + b * h
            for j in 0..<h {
                let dcj = dcb[j] + dhb[j] * o[j] * (1 - tc[j] * tc[j])
                dO[j] = dhb[j] * tc[j] * o[j] * (1 - o[j])
                di[j] = dcj * g[j] * i[j] * (1 - i[j])
                dgg[j] = dcj * i[j] * (1 - g[j] * g[j])
                df[j] = dcj * cPrev[j] * f[j] * (1 - f[j])
                dcb[j] = dcj * f[j]
            }
        }
    }
}
