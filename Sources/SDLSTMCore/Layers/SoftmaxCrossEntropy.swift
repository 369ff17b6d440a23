import Glibc

/// Softmax cross-entropy over rows of `width` logits, one target each:
///
///     loss = log Σ_v exp(z_v) − z_target,    ∂loss/∂z = softmax(z) − onehot(target)
///
/// A negative target marks a padded position: no loss, no gradient. The output layer of the LM and
/// the translator, and the tagger without a CRF, score their rows with it.
struct SoftmaxCrossEntropy {
    let width: Int

    /// Turns one row of logits into probabilities in place and returns its cross-entropy (0 for a
    /// padded position, whose row is left as it is: `gradient` clears it).
    func lossAndProbabilities(_ z: UnsafeMutablePointer<Float>, target: Int) -> Double {
        let v = width
        if target < 0 { return 0 }
        let zTarget = z[target]
        let (mx, sum) = exponentiate(z)
        let inv = 1 / sum
        for j in 0..<v { z[j] *= inv }
        return Double(logf(sum)) + Double(mx) - Double(zTarget)
    }

    /// The largest of one row of logits.
    func rowMax(_ z: UnsafePointer<Float>) -> Float {
        let v = width
        // Sixteen independent lanes: a reduction LLVM vectorises without reassociating floats.
        var mx16 = V16(repeating: -.infinity), i = 0
        while i + 16 <= v { mx16 = mx16.replacing(with: load(z + i), where: load(z + i) .> mx16); i += 16 }
        var mx = mx16.max()
        while i < v { mx = max(mx, z[i]); i += 1 }
        return mx
    }

    /// log Σ_j exp(z_j) of one row, the row unchanged (the exponentials as the loss computes them).
    func logSumExp(_ z: UnsafePointer<Float>) -> Float {
        let v = width, mx = rowMax(z)
        // The exponentials go through a block on the stack: a plain loop over it vectorises, where
        // filling a V16 lane by lane ran scalar (10× exponentiate's time in a profile of scoring).
        let block = 256
        let (sum16, blocked) = withUnsafeTemporaryAllocation(of: Float.self, capacity: block) { buffer -> (V16, Int) in
            let e = buffer.baseAddress!
            var sum16 = V16(repeating: 0), i = 0
            while i + 16 <= v {
                let n = min(block, (v - i) / 16 * 16), row = z + i
                for j in 0..<n { e[j] = fastExp(row[j] - mx) }
                for l in stride(from: 0, to: n, by: 16) { sum16 += load(e + l) }
                i += n
            }
            return (sum16, i)
        }
        var sum = sum16.sum(), i = blocked
        while i < v { sum += fastExp(z[i] - mx); i += 1 }
        return mx + logf(sum)
    }

    /// z ← exp(z − max z) over one row of logits; returns the max and the sum of the new values.
    func exponentiate(_ z: UnsafeMutablePointer<Float>) -> (max: Float, sum: Float) {
        let v = width, mx = rowMax(z)
        for j in 0..<v { z[j] = fastExp(z[j] - mx) }
        var sum16 = V16(repeating: 0), i = 0
        while i + 16 <= v { sum16 += load(z + i); i += 16 }
        var sum = sum16.sum()
        while i < v { sum += z[i]; i += 1 }
        return (mx, sum)
    }

    /// ∂(loss · scale)/∂z in place of the probabilities `lossAndProbabilities` left in a row.
    func gradient(_ z: UnsafeMutablePointer<Float>, target: Int, scale: Float) {
        guard target >= 0 else { z.update(repeating: 0, count: width); return }
        z[target] -= 1
        for j in 0..<width { z[j] *= scale }
    }
}
