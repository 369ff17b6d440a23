import Glibc

/// How `Translator.translate` decodes. Mirrors `sdlstm_decode_options`.
public struct DecodeOptions: Equatable, Sendable {
    public var bos: Int32
    public var eos: Int32
    /// 1: greedy.
    public var beamSize: Int
    /// Most tokens before <eos>; a hypothesis that reaches it is ended with <eos> there.
    public var maxLength: Int
    /// α: finished hypotheses rank by log P / (tokens + 1)^α.
    public var lengthPenalty: Float

    /// The defaults of sdlstm_decode_options_init: no markers (they belong to the caller's target
    /// vocabulary), beam 5, at most 100 tokens, raw log-probabilities.
    public init(bos: Int32 = -1, eos: Int32 = -1, beamSize: Int = 5, maxLength: Int = 100, lengthPenalty: Float = 0) {
        (self.bos, self.eos, self.beamSize, self.maxLength, self.lengthPenalty) = (bos, eos, beamSize, maxLength, lengthPenalty)
    }
}

/// The best hypothesis of one source sentence: its tokens (no <bos>, no <eos>) and log P, <eos> included.
public struct Translation: Equatable, Sendable {
    public var tokens: [Int32]
    public var score: Double
}

/// Beam search (greedy when the beam is 1), all sentences of a batch at once: the decoder runs on
/// B · k rows, row r extending a hypothesis of sentence r / k, one step at a time.
///
/// At each step every live hypothesis proposes its 2k best next tokens; of the sentence's 2k best
/// candidates overall, an <eos> among the first k finishes a hypothesis and the first k others form
/// the next beam (fairseq's rule: with k = 1 this is exactly greedy decoding). A sentence is done
/// when k hypotheses have finished; the best of them by log P / (tokens + 1)^α is its translation.
extension Translator {
    public func translate(_ sources: Batch, options: DecodeOptions) throws(SDLSTMError) -> [Translation] {
        try decode(sources, options)
    }

    private struct Finished {
        var score: Double, rank: Double, step: Int, row: Int
    }

    private func decode(_ sources: Batch, _ o: DecodeOptions) throws(SDLSTMError) -> [Translation] {
        let vt = config.targetVocabSize
        guard o.bos >= 0 && Int(o.bos) < vt else { throw .invalid("bos_id \(o.bos) is outside [0, \(vt))") }
        guard o.eos >= 0 && Int(o.eos) < vt else { throw .invalid("eos_id \(o.eos) is outside [0, \(vt))") }
        guard o.beamSize >= 1 && o.beamSize <= 256 else { throw .invalid("beam_size must be in 1...256, got \(o.beamSize)") }
        guard o.beamSize * 2 <= vt else { throw .invalid("beam_size \(o.beamSize) needs a target vocabulary of at least \(2 * o.beamSize)") }
        guard o.maxLength >= 1 && o.maxLength <= 1 << 16 else { throw .invalid("max_len must be in 1...65536, got \(o.maxLength)") }
        guard o.lengthPenalty.isFinite && o.lengthPenalty >= 0 else {
            throw .invalid("length_penalty must be finite and >= 0, got \(o.lengthPenalty)")
        }
        let (b, ts, k) = (sources.batchSize, sources.seqLen, o.beamSize)
        let h = config.hiddenSize, e = config.embedSize, w = firstInputWidth
        let widest = max(w, 4 * h, vt)
        try sources.checkShape(widest: widest)
        let (rowCount, overflow) = b.multipliedReportingOverflow(by: k)
        guard !overflow, rowCount <= Int(Int32.max) / widest else { throw .invalid("batch_size × beam_size is too large") }
        let lengths = try sources.rowLengths(sources.lengths, max: ts, "lengths")
        try checkIDs(sources.inputs, rows: b, stride: ts, lengths: lengths, below: config.vocabSize, "inputs")

        try prepareEncoder(sources.inputs, lengths: lengths, steps: ts)
        let rows = rowCount
        try targetEmbedding.prepare(steps: 1, batch: rows)
        for layer in decoder { try layer.prepare(steps: 1, batch: rows) }
        try attention.prepare(steps: 1, rows: rows, sourceSteps: ts, lengths: lengths, beam: k)
        try generator.prepare(steps: 1, batch: rows)
        var state: [(h: Buffer, c: Buffer)] = []
        for _ in decoder { state.append((try Buffer(rows * h), try Buffer(rows * h))) }
        let feed = try Buffer(rows * h), input = try Buffer(rows * w), scratch = try Buffer(rows * h)

        let memory = encode(dropout: false)
        for (l, s) in state.enumerated() {
            for r in 0..<rows {
                (s.h.ptr + r * h).update(from: initialH[l].ptr + (r / k) * h, count: h)
                (s.c.ptr + r * h).update(from: initialC[l].ptr + (r / k) * h, count: h)
            }
        }
        // Only the first row of each sentence is live at the start: k copies would fill the beam
        // with the same hypothesis.
        var score = (0..<rows).map { $0 % k == 0 ? 0.0 : -Double.infinity }
        var tokens = [Int32](repeating: o.bos, count: rows)
        var history: [(tokens: [Int32], parents: [Int])] = []
        var finished = [[Finished]](repeating: [], count: b)
        var done = [Bool](repeating: false, count: b)

        for t in 0...o.maxLength {
            let emb = tokens.withUnsafeBufferPointer { targetEmbedding.forward($0.baseAddress!) }
            for r in 0..<rows {
                (input.ptr + r * w).update(from: emb + r * e, count: e)
                if config.inputFeeding { (input.ptr + r * w + e).update(from: feed.ptr + r * h, count: h) }
            }
            var x = UnsafePointer(input.ptr)
            for (l, layer) in decoder.enumerated() {
                layer.begin(h0: state[l].h.ptr, c0: state[l].c.ptr, dropout: false)
                layer.forwardStep(0, x)
                x = UnsafePointer(layer.output)
            }
            attention.forwardStep(0, hidden: x, memory: memory)
            let logp = generator.logProbabilities(attention.output.ptr, rows: rows)

            var parents = Array(0..<rows), next = [Int32](repeating: o.eos, count: rows)
            var nextScore = [Double](repeating: -.infinity, count: rows)
            for s in 0..<b where !done[s] {
                let candidates = try bestCandidates(sentence: s, beam: k, logp: logp, score: score, eosOnly: t == o.maxLength,
                                                eos: o.eos)
                var live = 0
                for (rank, c) in candidates.enumerated() {
                    if c.token == o.eos {
                        if rank < k {
                            let n = Double(t + 1)
                            finished[s].append(Finished(score: c.score, rank: c.score / pow(n, Double(o.lengthPenalty)),
                                                        step: t, row: c.row))
                        }
                    } else if live < k {
                        let slot = s * k + live
                        (parents[slot], next[slot], nextScore[slot]) = (c.row, c.token, c.score)
                        live += 1
                    }
                    if live == k { break }
                }
                if finished[s].count >= k || t == o.maxLength { done[s] = true }
            }
            history.append((next, parents))
            if !done.contains(false) { break }
            // Each slot continues its parent's hypothesis: its states and its fed h̃.
            for (l, layer) in decoder.enumerated() {
                reorder(layer.finalHidden, parents, into: state[l].h.ptr, scratch: scratch.ptr, width: h)
                reorder(layer.finalCell, parents, into: state[l].c.ptr, scratch: scratch.ptr, width: h)
            }
            reorder(attention.output.ptr, parents, into: feed.ptr, scratch: scratch.ptr, width: h)
            (tokens, score) = (next, nextScore)
        }

        var translations: [Translation] = []
        for (s, list) in finished.enumerated() {
            // Every hypothesis of the sentence fell to a log P of −∞: no token had any probability.
            guard let best = list.max(by: { ($0.rank, -$0.step) < ($1.rank, -$1.step) }) else {
                throw .numeric("sentence \(s): every hypothesis has probability 0; the model's parameters are not usable")
            }
            var out = [Int32](repeating: 0, count: best.step)
            var row = best.row
            for u in stride(from: best.step - 1, through: 0, by: -1) {
                out[u] = history[u].tokens[row]
                row = history[u].parents[row]
            }
            translations.append(Translation(tokens: out, score: best.score))
        }
        return translations
    }

    /// The 2k best (score + log p, row, token) extensions of sentence s's live rows, best first
    /// (ties: lower row, then lower token); only <eos> when `eosOnly`. A NaN log-probability (a model
    /// whose parameters are not finite) is `.numeric`: it would compare as no candidate at all.
    private func bestCandidates(sentence s: Int, beam k: Int, logp: UnsafePointer<Float>, score: [Double],
                                eosOnly: Bool, eos: Int32) throws(SDLSTMError) -> [(score: Double, row: Int, token: Int32)] {
        let v = config.targetVocabSize, keep = 2 * k
        var best: [(score: Double, row: Int, token: Int32)] = []
        best.reserveCapacity(keep + 1)
        func offer(_ c: (score: Double, row: Int, token: Int32)) throws(SDLSTMError) {
            guard !c.score.isNaN else {
                throw .numeric("the log-probability of token \(c.token) after hypothesis row \(c.row) is NaN; the model's parameters are not finite")
            }
            if best.count == keep && c.score <= best[keep - 1].score { return }
            var i = best.count
            while i > 0 && best[i - 1].score < c.score { i -= 1 }
            best.insert(c, at: i)
            if best.count > keep { best.removeLast() }
        }
        for r in (s * k)..<((s + 1) * k) where score[r] > -.infinity {
            let row = logp + r * v
            if eosOnly { try offer((score[r] + Double(row[Int(eos)]), r, eos)); continue }
            for j in 0..<v {
                let c = score[r] + Double(row[j])
                // Not `c > worst`: that is false for NaN, which must reach `offer` to be refused.
                if best.count < keep || !(c <= best[keep - 1].score) { try offer((c, r, Int32(j))) }
            }
        }
        return best
    }

    /// dst[slot] = src[parents[slot]] for every row (through scratch: src and dst may be the same).
    private func reorder(_ src: UnsafePointer<Float>, _ parents: [Int], into dst: UnsafeMutablePointer<Float>,
                         scratch: UnsafeMutablePointer<Float>, width: Int) {
        for (slot, p) in parents.enumerated() { (scratch + slot * width).update(from: src + p * width, count: width) }
        dst.update(from: scratch, count: parents.count * width)
    }
}
