/// Vectorised element-wise math for the LSTM cell and the softmax.
///
/// Glibc's scalar expf/tanhf cost more than the GEMMs for a 10k-word softmax, so exp is the
/// Cephes polynomial evaluated 16 lanes at a time (relative error ~2e-7 in float), and
/// sigmoid/tanh are built on it.

typealias V16 = SIMD16<Float>

@inline(__always)
func vexp(_ x: V16) -> V16 {
    let xc = x.clamped(lowerBound: V16(repeating: -87.3), upperBound: V16(repeating: 88.3))
    let n = (xc * 1.442_695_04).rounded(.toNearestOrEven)
    // ln 2 split in two so that r = x - n ln2 keeps its low bits.
    var r = xc - n * 0.693_359_375
    r = r + n * 2.121_944_4e-4
    var p = V16(repeating: 1.987_569_1e-4)
    p = p * r + 1.398_199_9e-3
    p = p * r + 8.333_452e-3
    p = p * r + 4.166_579_6e-2
    p = p * r + 1.666_666_5e-1
    p = p * r + 5.000_000_1e-1
    p = p * r * r + r + 1
    let bits = (SIMD16<Int32>(n) &+ 127) &<< 23
    return p * unsafeBitCast(bits, to: V16.self)
}

@inline(__always)
func vsigmoid(_ x: V16) -> V16 { 1 / (1 + vexp(-x)) }

@inline(__always)
func vtanh(_ x: V16) -> V16 {
    // tanh(x) = 1 - 2 / (exp(2x) + 1): no cancellation trouble in float for the range LSTMs see,
    // and exact limits ±1 through vexp's clamp.
    1 - 2 / (vexp(x + x) + 1)
}

@inline(__always)
func load(_ p: UnsafePointer<Float>) -> V16 {
    UnsafeRawPointer(p).loadUnaligned(as: V16.self)
}

@inline(__always)
func store(_ v: V16, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: V16.self)
}

/// Applies `f` to n floats in place, 16 at a time, the tail through a padded vector.
@inline(__always)
func mapInPlace(_ p: UnsafeMutablePointer<Float>, _ n: Int, _ f: (V16) -> V16) {
    var i = 0
    while i + 16 <= n { store(f(load(p + i)), p + i); i += 16 }
    if i < n {
        var v = V16(repeating: 0)
        for j in 0..<(n - i) { v[j] = p[i + j] }
        let r = f(v)
        for j in 0..<(n - i) { p[i + j] = r[j] }
    }
}

func scalarSigmoid(_ x: Float) -> Float { vsigmoid(V16(repeating: x))[0] }
func scalarTanh(_ x: Float) -> Float { vtanh(V16(repeating: x))[0] }
