import Foundation

/// A word-level corpus: whitespace tokens, `<eos>` after every line, ids by descending frequency in
/// the training text (ties by spelling); rarer words than the vocabulary holds become `<unk>`.
struct Corpus {
    let vocabulary: [String]
    let train: [Int32]
    let valid: [Int32]

    init(train trainText: String, valid validText: String, maxVocab: Int) {
        let trainWords = Corpus.words(trainText)
        var counts: [String: Int] = ["<unk>": 0, "<eos>": 0]
        for w in trainWords { counts[w, default: 0] += 1 }
        var ranked = counts.keys.filter { $0 != "<unk>" }.sorted {
            counts[$0]! != counts[$1]! ? counts[$0]! > counts[$1]! : $0 < $1
        }
        ranked = Array(ranked.prefix(maxVocab - 1)) + ["<unk>"]
        let ids = Dictionary(uniqueKeysWithValues: ranked.enumerated().map { ($1, Int32($0)) })
        let unk = ids["<unk>"]!
        vocabulary = ranked
        train = trainWords.map { ids[$0] ?? unk }
        valid = Corpus.words(validText).map { ids[$0] ?? unk }
    }

    static func words(_ text: String) -> [String] {
        text.split(separator: "\n", omittingEmptySubsequences: false).flatMap { line -> [String] in
            let tokens = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            return tokens.isEmpty ? [] : tokens + ["<eos>"]
        }
    }
}

/// The usual LM batching: the stream cut into `batchSize` contiguous rows, read in windows of `seqLen`;
/// a window's targets are its inputs shifted by one. The ragged tail is dropped.
struct Batches: Sequence {
    let stream: [Int32]
    let batchSize: Int
    let seqLen: Int

    var rowLength: Int { stream.count / batchSize }
    var count: Int { (rowLength - 1) / seqLen }

    func makeIterator() -> AnyIterator<(inputs: [Int32], targets: [Int32])> {
        var window = 0
        return AnyIterator {
            guard window < count else { return nil }
            defer { window += 1 }
            var inputs = [Int32](), targets = [Int32]()
            inputs.reserveCapacity(batchSize * seqLen)
            targets.reserveCapacity(batchSize * seqLen)
            for b in 0..<batchSize {
                let start = b * rowLength + window * seqLen
                inputs += stream[start..<start + seqLen]
                targets += stream[start + 1..<start + seqLen + 1]
            }
            return (inputs, targets)
        }
    }
}
