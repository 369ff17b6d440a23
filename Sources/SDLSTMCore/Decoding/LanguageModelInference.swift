import Glibc

/// The recurrent state of `streams` independent token streams of one language model, for applying
/// it to text: each layer's H and C per stream. It is not the carried state of training and
/// evaluation, which inference never reads or writes.
public final class LanguageModelState {
    public let streams: Int
    /// The model this state belongs to: its layers' shapes are the state's.
    let owner: ObjectIdentifier
    let h: [Buffer], c: [Buffer]  // per layer, streams × H
    /// Generation's workspace: one value per token (the k-th largest search, then the sampling
    /// weights), allocated only for a state that samples.
    let weights: Buffer

    init(_ model: LanguageModel, streams: Int, sampling: Bool = false) throws(SDLSTMError) {
        let widest = max(model.config.vocabSize, 4 * model.config.hiddenSize, model.config.embedSize)
        guard streams >= 1 && streams <= Int(Int32.max) / widest else {
            throw .invalid("streams must be in 1...\(Int(Int32.max) / widest) for this model, got \(streams)")
        }
        self.streams = streams
        owner = ObjectIdentifier(model)
        var h: [Buffer] = [], c: [Buffer] = []
        for _ in model.layers {
            h.append(try Buffer(streams * model.config.hiddenSize))
            c.append(try Buffer(streams * model.config.hiddenSize))
        }
        (self.h, self.c) = (h, c)
        let v = sampling ? model.config.vocabSize : 0
        weights = try Buffer(v)
    }

    /// Every stream back to the zero state.
    public func reset() {
        for b in h { b.zero() }
        for b in c { b.zero() }
    }
}

/// How `LanguageModel.generate` samples. Mirrors `sdlstm_generate_options`; its defaults are the
/// ones sdlstm_generate_options_init documents.
public struct GenerateOptions: Equatable, Sendable {
    /// > 0 divides the logits; 0 takes the most likely token.
    public var temperature: Float = 1
    /// 0: every token; k >= 1: the k most likely (ties: the lower id).
    public var topK: Int = 0
    public var seed: UInt64 = 1
    /// Generation ends once this id is emitted; -1: only the token budget ends it.
    public var stopID: Int32 = -1

    public init(temperature: Float = 1, topK: Int = 0, seed: UInt64 = 1, stopID: Int32 = -1) {
        (self.temperature, self.topK, self.seed, self.stopID) = (temperature, topK, seed, stopID)
    }
}

/// Inference runs the layers of training (no dropout) in their own workspaces, so it needs the model
/// for one call at a time like every other call; the parameters, optimizer, progress, random stream
/// and carried state are only read.
extension LanguageModel {
    /// Tokens per forward window when scoring or feeding a prompt: one stream's window is one input
    /// GEMM of this many rows per layer, where a token at a time would be as many one-row GEMMs.
    static let inferenceWindow = 64

    public func makeState(streams: Int) throws(SDLSTMError) -> LanguageModelState {
        try LanguageModelState(self, streams: streams)
    }

    /// Reads one token per stream, writes the log-probabilities of the next token (streams × V,
    /// stream-major) and advances the state. On failure neither the state nor `logProbs` changes.
    public func nextLogProbabilities(_ tokens: UnsafePointer<Int32>, state: LanguageModelState,
                                     into logProbs: UnsafeMutablePointer<Float>) throws(SDLSTMError) {
        guard state.owner == ObjectIdentifier(self) else { throw .invalid("state was created for another model") }
        let (s, v) = (state.streams, config.vocabSize)
        try checkIDs(tokens, rows: 1, stride: s, below: v, "tokens")
        let top = try window(tokens, steps: 1, state: state)
        let logp = output.logProbabilities(top, rows: s)
        for i in 0..<(s * v) where !logp[i].isFinite {
            throw .numeric("log-probability \(logp[i]) of token \(i % v) in stream \(i / v); the model's parameters are not finite")
        }
        logProbs.update(from: logp, count: s * v)
        keep(into: state)
    }

    /// log P(tokens[1 ..< n] | tokens[0]) from a zero state, the sum of the n − 1 terms that go to
    /// `tokenLogProbs` (if given): one stream, windows carrying their state as evaluation does.
    public func score(_ tokens: UnsafePointer<Int32>, count n: Int,
                      tokenLogProbs: UnsafeMutablePointer<Float>?) throws(SDLSTMError) -> Double {
        guard n >= 2 else { throw .invalid("n must be >= 2 (a context token and one to predict), got \(n)") }
        let v = config.vocabSize
        try checkIDs(tokens, rows: 1, stride: n, below: v, "tokens")
        let state = try LanguageModelState(self, streams: 1)
        var total = 0.0
        for start in stride(from: 0, to: n - 1, by: Self.inferenceWindow) {
            let t = min(Self.inferenceWindow, n - 1 - start)
            let logp = output.logProbabilities(try window(tokens + start, steps: t, state: state), rows: t)
            for i in 0..<t {
                let target = Int(tokens[start + i + 1]), lp = logp[i * v + target]
                guard lp.isFinite else {
                    throw .numeric("log-probability \(lp) of tokens[\(start + i + 1)]; the model's parameters are not finite")
                }
                tokenLogProbs?[start + i] = lp
                total += Double(lp)
            }
            keep(into: state)
        }
        return total
    }

    /// Feeds `prompt` from a zero state, then samples up to `maxTokens` ids into `out`; returns how
    /// many it wrote (fewer when `stopID` came).
    public func generate(prompt: UnsafePointer<Int32>, count promptLength: Int, options o: GenerateOptions,
                         into out: UnsafeMutablePointer<Int32>, maxTokens: Int) throws(SDLSTMError) -> Int {
        let v = config.vocabSize
        guard promptLength >= 1 else { throw .invalid("prompt_len must be >= 1, got \(promptLength)") }
        guard maxTokens >= 1 else { throw .invalid("max_tokens must be >= 1, got \(maxTokens)") }
        guard o.temperature.isFinite && o.temperature >= 0 else {
            throw .invalid("temperature must be finite and >= 0, got \(o.temperature)")
        }
        guard o.topK >= 0 else { throw .invalid("top_k must be >= 0, got \(o.topK)") }
        guard o.stopID == -1 || (o.stopID >= 0 && Int(o.stopID) < v) else {
            throw .invalid("stop_id \(o.stopID) is neither -1 nor in [0, \(v))")
        }
        try checkIDs(prompt, rows: 1, stride: promptLength, below: v, "prompt")
        let state = try LanguageModelState(self, streams: 1, sampling: true)
        var rng = Random(seed: o.seed)
        // Only the prompt's last position is sampled from: its other rows skip the output layer.
        var top: UnsafePointer<Float>! = nil
        for start in stride(from: 0, to: promptLength, by: Self.inferenceWindow) {
            let t = min(Self.inferenceWindow, promptLength - start)
            top = try window(prompt + start, steps: t, state: state) + (t - 1) * config.hiddenSize
            keep(into: state)
        }
        var written = 0
        while true {
            let logp = output.logProbabilities(top, rows: 1)
            let token = try sample(logp, o, state, &rng)
            out[written] = token
            written += 1
            if token == o.stopID || written == maxTokens { return written }
            top = try withUnsafePointer(to: token) { (p) throws(SDLSTMError) in try window(p, steps: 1, state: state) }
            keep(into: state)
        }
    }

    /// The top layer's outputs (T × streams × H, time-major) of `steps` tokens per stream
    /// (batch-major ids) run from the state, which is not yet advanced: `keep` does that.
    private func window(_ tokens: UnsafePointer<Int32>, steps t: Int,
                        state: LanguageModelState) throws(SDLSTMError) -> UnsafePointer<Float> {
        let b = state.streams
        try embedding.prepare(steps: t, batch: b)
        for layer in layers { try layer.prepare(steps: t, batch: b) }
        try output.prepare(steps: t, batch: b)
        var x = UnsafePointer(embedding.forward(tokens))
        for (l, layer) in layers.enumerated() {
            layer.forward(x, h0: state.h[l].ptr, c0: state.c[l].ptr, dropout: false)
            x = UnsafePointer(layer.output)
        }
        return x
    }

    /// The state after the last window.
    private func keep(into state: LanguageModelState) {
        let n = state.streams * config.hiddenSize
        for (l, layer) in layers.enumerated() {
            state.h[l].ptr.update(from: layer.finalHidden, count: n)
            state.c[l].ptr.update(from: layer.finalCell, count: n)
        }
    }

    /// One id drawn from softmax(logp / temperature) over the top-k ids; the most likely id (the
    /// lowest of equals) at temperature 0 or k = 1.
    private func sample(_ logp: UnsafePointer<Float>, _ o: GenerateOptions, _ state: LanguageModelState,
                        _ rng: inout Random) throws(SDLSTMError) -> Int32 {
        let v = config.vocabSize
        var best = 0
        for j in 0..<v {
            guard logp[j].isFinite else {
                throw .numeric("log-probability \(logp[j]) of token \(j); the model's parameters are not finite")
            }
            if logp[j] > logp[best] { best = j }
        }
        if o.temperature == 0 || o.topK == 1 { return Int32(best) }
        // The k-th largest log-probability: ids above it are in, ids equal to it join in id order
        // until there are k.
        var threshold = -Float.infinity, equalsAllowed = 0
        if o.topK > 0 && o.topK < v {
            state.weights.ptr.update(from: logp, count: v)
            threshold = kthLargest(state.weights.ptr, count: v, k: o.topK)
            var above = 0
            for j in 0..<v where logp[j] > threshold { above += 1 }
            equalsAllowed = o.topK - above
        }
        // fastExp (relative error ~2e-7, vectorised) rather than Glibc's exp, which cost as much as
        // the whole step of a 2 × 200 model. The scaling is in Double: 1 / temperature may pass
        // Float's range. Weights below e^-87 come out as e^-87 rather than 0, which no draw notices.
        let w = state.weights.ptr, top = Double(logp[best]), invT = 1 / Double(o.temperature)
        for j in 0..<v { w[j] = fastExp(Float((Double(logp[j]) - top) * invT)) }
        if o.topK > 0 && o.topK < v {
            for j in 0..<v where !(logp[j] > threshold) {
                if logp[j] == threshold && equalsAllowed > 0 { equalsAllowed -= 1 } else { w[j] = 0 }
            }
        }
        var total = 0.0
        for j in 0..<v { total += Double(w[j]) }
        let u = rng.uniformDouble() * total
        var sum = 0.0, last = best
        for j in 0..<v where w[j] > 0 {
            sum += Double(w[j])
            if u < sum { return Int32(j) }
            last = j
        }
        return Int32(last)  // u fell past the rounded sum: the last candidate
    }
}

/// The k-th largest of `count` values (1 <= k <= count), reordering them: quickselect with
/// three-way partitions, so that many equal values (a flat distribution) stay linear.
public func kthLargest(_ a: UnsafeMutablePointer<Float>, count: Int, k: Int) -> Float {
    var (lo, hi, rank) = (0, count, k - 1)  // the value at descending position `rank` of a[lo ..< hi]
    while true {
        let pivot = a[lo + (hi - lo) / 2]
        // a[lo ..< gt]: > pivot, a[gt ..< i]: == pivot, a[lt ..< hi]: < pivot.
        var (gt, i, lt) = (lo, lo, hi)
        while i < lt {
            if a[i] > pivot { a.swapAt(gt, i); gt += 1; i += 1 }
            else if a[i] < pivot { lt -= 1; a.swapAt(i, lt) }
            else { i += 1 }
        }
        if rank < gt - lo { hi = gt }
        else if rank < lt - lo { return pivot }
        else { (rank, lo) = (rank - (lt - lo), lt) }
    }
}

private extension UnsafeMutablePointer where Pointee == Float {
    func swapAt(_ i: Int, _ j: Int) { let t = self[i]; self[i] = self[j]; self[j] = t }
}
