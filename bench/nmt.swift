import SDLSTMCore

/// The translation shape: 64 pairs of 20-token sources and 20-token targets (22 ids with
/// <bos> and <eos>, 21 predicted), vocabularies of 10,000 on both sides, embedding 500, 2 layers ×
/// 500 with a bidirectional encoder and input feeding (OpenNMT-py's RNN defaults); dropout p = 0.3
/// (OpenNMT-py's default; `--p-percent N` for another) on the input, between and output sites.
/// Random ids: the step's cost does not depend on them.
func benchTranslator() throws {
    let (b, s, t, vocab) = (64, 20, 22, 10_000)
    let p = Float(option("--p-percent", 30)) / 100
    let model = try Translator(ModelConfig(task: .seq2seq))
    try model.setNumThreads(threads)
    model.optimizer.learningRate = 1
    model.optimizer.clipNorm = 5
    var rng = Random(seed: 7)
    let inputs = (0..<(b * s)).map { _ in Int32(rng.next() % UInt64(vocab)) }
    let targets = (0..<(b * t)).map { _ in Int32(rng.next() % UInt64(vocab)) }
    var variants = selectVariants([Variant(policy: .none, rh: false), Variant(policy: .standard, rh: false),
                                   Variant(policy: .structured, rh: false), Variant(policy: .standard, rh: true),
                                   Variant(policy: .structured, rh: true)])
    try inputs.withUnsafeBufferPointer { i in
        try targets.withUnsafeBufferPointer { o in
            var batch = Batch(batchSize: b, seqLen: s, inputs: i.baseAddress!, targets: o.baseAddress!)
            batch.targetLen = t
            try timeSteps(model, batch, p: p, sites: [.input, .between, .output], &variants)
        }
    }
    report(variants, [("model", "nmt"), ("batch", b), ("source_len", s), ("target_len", t - 2)], words: b * (t - 1), p: p)
}
