/// Element-wise math for the LSTM cell and the softmax.
///
/// Glibc's expf costs more than the GEMMs for a 10k-word softmax. exp here is the Cephes
/// polynomial (relative error ~2e-7) written as branch-free scalar code, so that LLVM vectorises
/// the loops that call it; Swift's generic SIMD helpers (pointwiseMin, Int32 conversions) do not
/// compile to single instructions and cost several times more.

@inline(__always)
func fastExp(_ x: Float) -> Float {
    let xc = x < -87.3 ? -87.3 : (x > 88.3 ? 88.3 : x)
    // Adding 1.5 · 2^23 rounds x·log2(e) to an integer n kept in the low mantissa bits.
    let magic: Float = 12_582_912
    let shifted = xc * 1.442_695_04 + magic
    let n = shifted - magic
    // ln 2 split in two so that r = x - n ln2 keeps its low bits.
    let r = (xc - n * 0.693_359_375) + n * 2.121_944_4e-4
    var p: Float = 1.987_569_1e-4
    p = p * r + 1.398_199_9e-3
    p = p * r + 8.333_452e-3
    p = p * r + 4.166_579_6e-2
    p = p * r + 1.666_666_5e-1
    p = p * r + 5.000_000_1e-1
    p = p * r * r + r + 1
    // 2^n: the biased exponent n + 127 moved into the exponent field.
    return p * Float(bitPattern: (shifted.bitPattern &- 0x4B40_0000 &+ 127) &<< 23)
}

@inline(__always)
func fastSigmoid(_ x: Float) -> Float { 1 / (1 + fastExp(-x)) }

/// tanh(x) = 1 − 2 / (exp(2x) + 1): exact limits ±1 through the clamp in fastExp; the absolute
/// error near 0 (~6e-8) is far below what float training notices.
@inline(__always)
func fastTanh(_ x: Float) -> Float { 1 - 2 / (fastExp(x + x) + 1) }

func sigmoidInPlace(_ p: UnsafeMutablePointer<Float>, _ n: Int) {
    for i in 0..<n { p[i] = fastSigmoid(p[i]) }
}

func tanhInPlace(_ p: UnsafeMutablePointer<Float>, _ n: Int) {
    for i in 0..<n { p[i] = fastTanh(p[i]) }
}

typealias V16 = SIMD16<Float>

@inline(__always)
func load(_ p: UnsafePointer<Float>) -> V16 {
    UnsafeRawPointer(p).loadUnaligned(as: V16.self)
}
