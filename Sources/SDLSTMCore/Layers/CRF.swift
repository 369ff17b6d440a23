import Glibc

/// Linear-chain CRF over the tag scores of each sentence (Lafferty et al. 2001; Lample et al.
/// 2016, §2.2). For a sentence of L tokens with emission scores E_t[k] and tags y_0 … y_{L-1}:
///
///     score(y) = start[y_0] + Σ_t E_t[y_t] + Σ_{t≥1} A[y_{t-1}, y_t] + end[y_{L-1}]
///     loss     = log Z − score(gold),        log Z = log Σ_y exp score(y)
///
/// Forward algorithm (log Z):   α_0[j] = start[j] + E_0[j]
///                              α_t[j] = E_t[j] + logsumexp_i (α_{t-1}[i] + A[i, j])
///                              log Z  = logsumexp_j (α_{L-1}[j] + end[j])
/// Backward algorithm:          β_{L-1}[i] = end[i]
///                              β_t[i] = logsumexp_j (A[i, j] + E_{t+1}[j] + β_{t+1}[j])
/// The gradient of log Z is the posterior marginals,
///
///     ∂log Z/∂E_t[j]  = P(y_t = j)                    = exp(α_t[j] + β_t[j] − log Z)
///     ∂log Z/∂A[i, j] = Σ_{t≥1} P(y_{t-1} = i, y_t = j) = Σ_t exp(α_{t-1}[i] + A[i, j] + E_t[j] + β_t[j] − log Z)
///     ∂log Z/∂start[j] = P(y_0 = j),   ∂log Z/∂end[j] = P(y_{L-1} = j)
///
/// and the gradient of score(gold) counts the gold path's uses of each entry. Viterbi decoding
/// maximises the same score. A transition the tag scheme forbids scores −∞: its probability and its
/// gradient are exactly 0 and no decoded path takes it. Emissions are time-major (t, b, tag), tags
/// batch-major ([b][t] at b * T + t); only the first lengths[b] positions of sentence b exist.
/// Everything runs in Double: there are few tags and the sums are long.
public final class CRF {
    public let numTags: Int
    public let start: Parameter        // K
    public let end: Parameter          // K
    public let transitions: Parameter  // K × K, [from, to]
    public private(set) var constraints: TransitionConstraints

    private var alpha: [Double] = []  // T × B × K, kept from forward for backward
    private var logZ: [Double] = []   // B

    /// Parameters named as pytorch-crf's `CRF` module called `name` names them.
    public init(numTags: Int, name: String) throws(SDLSTMError) {
        self.numTags = numTags
        start = try Parameter("\(name).start_transitions", rows: numTags)
        end = try Parameter("\(name).end_transitions", rows: numTags)
        transitions = try Parameter("\(name).transitions", rows: numTags, cols: numTags)
        constraints = TransitionConstraints(numTags: numTags)
    }

    public var parameters: [Parameter] { [start, end, transitions] }

    public func setConstraints(_ c: TransitionConstraints) throws(SDLSTMError) {
        guard c.numTags == numTags else { throw .invalid("constraints for \(c.numTags) tags, the CRF has \(numTags)") }
        constraints = c
    }

    /// The scores with the constraints applied: −∞ where forbidden.
    private func scores() -> (start: [Double], end: [Double], trans: [Double]) {
        let k = numTags
        var s = [Double](repeating: 0, count: k), e = s, a = [Double](repeating: 0, count: k * k)
        for j in 0..<k {
            s[j] = constraints.allowedStart[j] ? Double(start.value[j]) : -.infinity
            e[j] = Double(end.value[j])
        }
        for i in 0..<(k * k) { a[i] = constraints.allowed[i] ? Double(transitions.value[i]) : -.infinity }
        return (s, e, a)
    }

    /// Throws if a gold sequence takes a transition the constraints forbid (its loss would be +∞).
    public func checkAllowed(_ tags: UnsafePointer<Int32>, lengths: [Int], steps: Int, names: [String]?) throws(SDLSTMError) {
        guard !constraints.isEmpty else { return }
        func name(_ k: Int32) -> String { names.map { "\($0[Int(k)])" } ?? "tag \(k)" }
        for (b, n) in lengths.enumerated() {
            let y = tags + b * steps
            guard constraints.allowedStart[Int(y[0])] else {
                throw .invalid("targets: sentence \(b) starts with \(name(y[0])), which the tag scheme forbids")
            }
            for t in 1..<max(n, 1) where !constraints.allowed[Int(y[t - 1]) * numTags + Int(y[t])] {
                throw .invalid("targets: sentence \(b) has \(name(y[t])) after \(name(y[t - 1])) at position \(t), which the tag scheme forbids")
            }
        }
    }

    /// Σ over the sentences of −log P(gold | x). Keeps α and log Z for `backward`.
    public func forward(_ emissions: UnsafePointer<Float>, tags: UnsafePointer<Int32>, lengths: [Int], steps: Int) -> Double {
        let (k, batch) = (numTags, lengths.count)
        let (s, e, a) = scores()
        if alpha.count < steps * batch * k { alpha = [Double](repeating: 0, count: steps * batch * k) }
        if logZ.count < batch { logZ = [Double](repeating: 0, count: batch) }
        var total = 0.0
        var terms = [Double](repeating: 0, count: k)
        for b in 0..<batch {
            let n = lengths[b]
            func em(_ t: Int, _ j: Int) -> Double { Double(emissions[(t * batch + b) * k + j]) }
            func at(_ t: Int) -> Int { (t * batch + b) * k }
            for j in 0..<k { alpha[at(0) + j] = s[j] + em(0, j) }
            for t in 1..<max(n, 1) {
                for j in 0..<k {
                    for i in 0..<k { terms[i] = alpha[at(t - 1) + i] + a[i * k + j] }
                    alpha[at(t) + j] = em(t, j) + Self.logSumExp(terms)
                }
            }
            for j in 0..<k { terms[j] = alpha[at(n - 1) + j] + e[j] }
            logZ[b] = Self.logSumExp(terms)

            let y = tags + b * steps
            var gold = s[Int(y[0])] + e[Int(y[n - 1])]
            for t in 0..<n { gold += em(t, Int(y[t])) }
            for t in 1..<max(n, 1) { gold += a[Int(y[t - 1]) * k + Int(y[t])] }
            total += logZ[b] - gold
        }
        return total
    }

    /// Backward of `forward` for the loss `scale · Σ_b loss_b`: writes ∂/∂emissions (0 at padded
    /// positions) and the parameter gradients (overwriting them).
    public func backward(_ emissions: UnsafePointer<Float>, tags: UnsafePointer<Int32>, lengths: [Int], steps: Int,
                  scale: Double, dEmissions: UnsafeMutablePointer<Float>) {
        let (k, batch) = (numTags, lengths.count)
        let (_, e, a) = scores()
        var gStart = [Double](repeating: 0, count: k), gEnd = gStart
        var gTrans = [Double](repeating: 0, count: k * k)
        var beta = [Double](repeating: 0, count: steps * k)  // one sentence: β_t[i] at t * k + i
        var terms = [Double](repeating: 0, count: k)
        dEmissions.update(repeating: 0, count: steps * batch * k)
        for b in 0..<batch {
            let n = lengths[b], z = logZ[b], y = tags + b * steps
            func em(_ t: Int, _ j: Int) -> Double { Double(emissions[(t * batch + b) * k + j]) }
            func at(_ t: Int) -> Int { (t * batch + b) * k }
            for i in 0..<k { beta[(n - 1) * k + i] = e[i] }
            for t in stride(from: n - 2, through: 0, by: -1) {
                for i in 0..<k {
                    for j in 0..<k { terms[j] = a[i * k + j] + em(t + 1, j) + beta[(t + 1) * k + j] }
                    beta[t * k + i] = Self.logSumExp(terms)
                }
            }
            for t in 0..<n {
                for j in 0..<k {
                    let p = exp(alpha[at(t) + j] + beta[t * k + j] - z)
                    dEmissions[at(t) + j] = Float(scale * (p - (Int(y[t]) == j ? 1 : 0)))
                    if t == 0 { gStart[j] += p }
                    if t == n - 1 { gEnd[j] += p }
                }
            }
            for t in 1..<max(n, 1) {
                for i in 0..<k {
                    let ai = alpha[at(t - 1) + i]
                    for j in 0..<k { gTrans[i * k + j] += exp(ai + a[i * k + j] + em(t, j) + beta[t * k + j] - z) }
                }
                gTrans[Int(y[t - 1]) * k + Int(y[t])] -= 1
            }
            gStart[Int(y[0])] -= 1
            gEnd[Int(y[n - 1])] -= 1
        }
        for j in 0..<k {
            start.grad[j] = Float(scale * gStart[j])
            end.grad[j] = Float(scale * gEnd[j])
        }
        for i in 0..<(k * k) { transitions.grad[i] = Float(scale * gTrans[i]) }
    }

    /// The highest-scoring tag sequence of each sentence (Viterbi), batch-major into `out`; padded
    /// positions get −1.
    public func decode(_ emissions: UnsafePointer<Float>, lengths: [Int], steps: Int, into out: UnsafeMutablePointer<Int32>) {
        let (k, batch) = (numTags, lengths.count)
        let (s, e, a) = scores()
        var delta = [Double](repeating: 0, count: k), next = delta
        var backpointer = [Int32](repeating: 0, count: steps * k)
        for b in 0..<batch {
            let n = lengths[b], y = out + b * steps
            func em(_ t: Int, _ j: Int) -> Double { Double(emissions[(t * batch + b) * k + j]) }
            for j in 0..<k { delta[j] = s[j] + em(0, j) }
            for t in 1..<max(n, 1) {
                for j in 0..<k {
                    var best = 0, bestScore = -Double.infinity
                    for i in 0..<k where delta[i] + a[i * k + j] > bestScore {
                        best = i
                        bestScore = delta[i] + a[i * k + j]
                    }
                    next[j] = bestScore + em(t, j)
                    backpointer[t * k + j] = Int32(best)
                }
                swap(&delta, &next)
            }
            var last = 0, bestScore = -Double.infinity
            for j in 0..<k where delta[j] + e[j] > bestScore {
                last = j
                bestScore = delta[j] + e[j]
            }
            y[n - 1] = Int32(last)
            for t in stride(from: n - 1, to: 0, by: -1) { y[t - 1] = backpointer[t * k + Int(y[t])] }
            for t in n..<steps { y[t] = -1 }
        }
    }

    /// log Σ exp(x_i), exact for −∞ entries (all −∞ gives −∞).
    private static func logSumExp(_ x: [Double]) -> Double {
        var m = -Double.infinity
        for v in x where v > m { m = v }
        guard m > -.infinity else { return -.infinity }
        var sum = 0.0
        for v in x { sum += exp(v - m) }
        return m + log(sum)
    }
}
