import Foundation
import SDLSTMCore
import XCTest

/// The CRF on its own: its loss and decoding against enumeration of every tag sequence, its
/// gradients (emissions and all three parameters) against finite differences, and the IOB
/// transition constraints.
final class TaggerCRFTests: XCTestCase {
    /// A CRF with random parameters and a padded batch of random emissions (time-major T × B × K).
    struct Setup {
        let crf: CRF
        var emissions: [Float]
        let tags: [Int32]    // B × T batch-major, garbage in the padding
        let lengths: [Int]
        let steps: Int
        var k: Int { crf.numTags }
    }

    func setup(names: [String], scheme: TagScheme, lengths: [Int], seed: UInt64 = 3) throws -> Setup {
        let crf = try CRF(numTags: names.count, name: "crf")
        try crf.setConstraints(TransitionConstraints(names: names, scheme: scheme))
        var rng = Random(seed: seed)
        for p in crf.parameters { for i in 0..<p.count { p.value[i] = 2 * rng.uniform() - 1 } }
        let (k, b, t) = (names.count, lengths.count, lengths.max()! + 1)
        let emissions = (0..<(t * b * k)).map { _ in 3 * rng.uniform() - 1.5 }
        // Gold tags: the best allowed sequence under fresh random scores, so they satisfy the scheme.
        var tags = [Int32](repeating: -7, count: b * t)
        let constraints = crf.constraints
        for i in 0..<b {
            var previous = -1
            for j in 0..<lengths[i] {
                let ok = (0..<k).filter { previous < 0 ? constraints.allowedStart[$0] : constraints.allowed[previous * k + $0] }
                previous = ok[Int(rng.next() % UInt64(ok.count))]
                tags[i * t + j] = Int32(previous)
            }
        }
        return Setup(crf: crf, emissions: emissions, tags: tags, lengths: lengths, steps: t)
    }

    /// log Z, the gold score and the best allowed sequence of sentence b, by enumeration.
    func enumerate(_ s: Setup, sentence b: Int) -> (logZ: Double, gold: Double, best: [Int32]) {
        let (k, n, batch) = (s.k, s.lengths[b], s.lengths.count)
        let c = s.crf.constraints
        func score(_ y: [Int]) -> Double? {
            guard c.allowedStart[y[0]] else { return nil }
            var total = Double(s.crf.start.value[y[0]]) + Double(s.crf.end.value[y[n - 1]])
            for t in 0..<n { total += Double(s.emissions[(t * batch + b) * k + y[t]]) }
            for t in 1..<n {
                guard c.allowed[y[t - 1] * k + y[t]] else { return nil }
                total += Double(s.crf.transitions.value[y[t - 1] * k + y[t]])
            }
            return total
        }
        var scores: [Double] = [], best: [Int] = [], bestScore = -Double.infinity
        var y = [Int](repeating: 0, count: n)
        while true {
            if let v = score(y) {
                scores.append(v)
                if v > bestScore { bestScore = v; best = y }
            }
            var i = n - 1
            while i >= 0 && y[i] == k - 1 { y[i] = 0; i -= 1 }
            if i < 0 { break }
            y[i] += 1
        }
        let m = scores.max()!
        let logZ = m + log(scores.reduce(0) { $0 + exp($1 - m) })
        let gold = score((0..<n).map { Int(s.tags[b * s.steps + $0]) })!
        return (logZ, gold, best.map(Int32.init))
    }

    func loss(_ s: Setup) -> Double {
        s.emissions.withUnsafeBufferPointer { e in
            s.tags.withUnsafeBufferPointer { s.crf.forward(e.baseAddress!, tags: $0.baseAddress!, lengths: s.lengths, steps: s.steps) }
        }
    }

    let conll = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]

    func testLossAndViterbiMatchEnumeration() throws {
        for scheme in TagScheme.allCases {
            let s = try setup(names: conll, scheme: scheme, lengths: [4, 1, 3, 5])
            var expected = 0.0
            var decoded = [Int32](repeating: 0, count: s.lengths.count * s.steps)
            s.emissions.withUnsafeBufferPointer { s.crf.decode($0.baseAddress!, lengths: s.lengths, steps: s.steps, into: &decoded) }
            for b in 0..<s.lengths.count {
                let e = enumerate(s, sentence: b)
                expected += e.logZ - e.gold
                XCTAssertEqual(Array(decoded[(b * s.steps)..<(b * s.steps + s.lengths[b])]), e.best, "\(scheme) Viterbi, sentence \(b)")
                XCTAssertTrue(decoded[(b * s.steps + s.lengths[b])..<((b + 1) * s.steps)].allSatisfy { $0 == -1 }, "padding")
            }
            XCTAssertEqual(loss(s), expected, accuracy: 1e-9 * max(1, abs(expected)), "\(scheme) loss")
        }
    }

    /// Decoding never takes a forbidden transition, even when the emissions push hard for one.
    func testViterbiRespectsIOB2() throws {
        var s = try setup(names: conll, scheme: .iob2, lengths: [6, 6])
        for i in stride(from: 0, to: s.emissions.count, by: s.k) { s.emissions[i + 2] += 10 }  // I-PER everywhere
        var decoded = [Int32](repeating: 0, count: 2 * s.steps)
        s.emissions.withUnsafeBufferPointer { s.crf.decode($0.baseAddress!, lengths: s.lengths, steps: s.steps, into: &decoded) }
        for b in 0..<2 {
            let y = decoded[(b * s.steps)..<(b * s.steps + 6)].map { conll[Int($0)] }
            XCTAssertEqual(y.first, "B-PER", "\(y)")
            XCTAssertEqual(Array(y.dropFirst()), [String](repeating: "I-PER", count: 5), "\(y)")
        }
    }

    /// Finite differences of the summed loss in Double precision against `backward`, for the
    /// emissions (padded ones must get exactly 0) and the start, end and transition scores.
    func testGradientCheck() throws {
        for scheme in [TagScheme.none, .iob2, .iob1] {
            let s = try setup(names: conll, scheme: scheme, lengths: [4, 1, 3, 5])
            var dEmissions = [Float](repeating: .nan, count: s.emissions.count)
            s.emissions.withUnsafeBufferPointer { e in
                s.tags.withUnsafeBufferPointer {
                    _ = s.crf.forward(e.baseAddress!, tags: $0.baseAddress!, lengths: s.lengths, steps: s.steps)
                    s.crf.backward(e.baseAddress!, tags: $0.baseAddress!, lengths: s.lengths, steps: s.steps,
                                   scale: 1, dEmissions: &dEmissions)
                }
            }
            func numeric(_ read: () -> Float, _ write: (Float) -> Void) -> Double {
                let saved = read(), eps: Float = 1e-3
                write(saved + eps)
                let up = loss(s), hi = read()
                write(saved - eps)
                let down = loss(s), lo = read()
                write(saved)
                return (up - down) / Double(hi - lo)
            }
            // `loss` reads the emissions of the setup it is given: perturb a copy.
            let numericE = (0..<s.emissions.count).map { i in
                var e = s.emissions
                e[i] = s.emissions[i] + 1e-3
                let (up, hi) = (loss(Setup(crf: s.crf, emissions: e, tags: s.tags, lengths: s.lengths, steps: s.steps)), e[i])
                e[i] = s.emissions[i] - 1e-3
                let (down, lo) = (loss(Setup(crf: s.crf, emissions: e, tags: s.tags, lengths: s.lengths, steps: s.steps)), e[i])
                return (up - down) / Double(hi - lo)
            }
            assertClose(dEmissions, numericE, atol: 1e-5, rtol: 1e-4, "\(scheme) emissions")
            let batch = s.lengths.count
            for b in 0..<batch {
                for t in s.lengths[b]..<s.steps {
                    for j in 0..<s.k { XCTAssertEqual(dEmissions[(t * batch + b) * s.k + j], 0, "padded emission gradient") }
                }
            }
            for p in s.crf.parameters {
                let analytic = p.grad.array
                let numeric = (0..<p.count).map { i in numeric({ p.value[i] }, { p.value[i] = $0 }) }
                XCTAssertGreaterThan(numeric.map(abs).max()!, 1e-2, "\(p.pytorchName): gradient too small to check")
                assertClose(analytic, numeric, atol: 1e-5, rtol: 1e-4, "\(scheme) \(p.pytorchName)")
            }
            // A forbidden transition takes no probability: its gradient is exactly 0.
            for i in 0..<(s.k * s.k) where !s.crf.constraints.allowed[i] {
                XCTAssertEqual(s.crf.transitions.grad[i], 0, "\(scheme): forbidden transition \(i)")
            }
        }
    }

    func testConstraints() {
        let iob2 = TransitionConstraints(names: conll, scheme: .iob2)
        let k = conll.count
        func allowed(_ c: TransitionConstraints, _ from: String, _ to: String) -> Bool {
            c.allowed[conll.firstIndex(of: from)! * k + conll.firstIndex(of: to)!]
        }
        XCTAssertEqual(iob2.allowedStart, [true, true, false, true, false])
        XCTAssertFalse(allowed(iob2, "O", "I-PER"))
        XCTAssertFalse(allowed(iob2, "B-LOC", "I-PER"))
        XCTAssertFalse(allowed(iob2, "I-LOC", "I-PER"))
        XCTAssertTrue(allowed(iob2, "B-PER", "I-PER"))
        XCTAssertTrue(allowed(iob2, "I-PER", "I-PER"))
        XCTAssertTrue(allowed(iob2, "I-PER", "B-PER"))
        XCTAssertTrue(allowed(iob2, "O", "B-LOC"))
        XCTAssertEqual(iob2.allowed.filter { !$0 }.count, 2 * 3)  // each I-X forbids O and the other type's B, I

        let iob1 = TransitionConstraints(names: conll, scheme: .iob1)
        XCTAssertEqual(iob1.allowedStart, [true, false, true, false, true])
        XCTAssertFalse(allowed(iob1, "O", "B-PER"))
        XCTAssertFalse(allowed(iob1, "I-LOC", "B-PER"))
        XCTAssertTrue(allowed(iob1, "I-PER", "B-PER"))
        XCTAssertTrue(allowed(iob1, "B-PER", "B-PER"))
        XCTAssertTrue(allowed(iob1, "O", "I-PER"))
        XCTAssertTrue(allowed(iob1, "I-LOC", "I-PER"))

        XCTAssertTrue(TransitionConstraints(names: conll, scheme: .none).isEmpty)
        // Names outside the scheme are never constrained.
        let odd = TransitionConstraints(names: ["<pad>", "I-X", "B-X"], scheme: .iob2)
        XCTAssertEqual(odd.allowedStart, [true, false, true])
        XCTAssertEqual(odd.allowed, [true, false, true, true, true, true, true, true, true])
    }

    func testGoldSequenceBreakingTheSchemeIsInvalid() throws {
        let s = try setup(names: conll, scheme: .iob2, lengths: [3])
        let bad: [Int32] = [0, 2, 2, 0]  // O I-PER: forbidden
        XCTAssertThrowsError(try bad.withUnsafeBufferPointer {
            try s.crf.checkAllowed($0.baseAddress!, lengths: [3], steps: 4, names: conll)
        }) { error in
            XCTAssertTrue((error as? SDLSTMError)?.message.contains("I-PER after O") ?? false, "\(error)")
        }
        let first: [Int32] = [4, 4, 0, 0]  // starts with I-LOC
        XCTAssertThrowsError(try first.withUnsafeBufferPointer {
            try s.crf.checkAllowed($0.baseAddress!, lengths: [3], steps: 4, names: conll)
        })
    }
}
