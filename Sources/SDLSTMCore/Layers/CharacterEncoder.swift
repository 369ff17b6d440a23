/// Character features of words (Lample et al. 2016, §4.1): each word's characters are embedded and
/// read by a small BiLSTM, forwards and backwards; the feature is the two final states,
///
///     c(word) = [ →h after the last character | ←h after the first character ]     (width C)
///
/// The words of a batch are the BiLSTM's batch: N words × W character steps, each word right-padded
/// to W, so `PaddedLSTM` gives every word its own length. No dropout acts inside the encoder; the
/// tagger's input site drops the concatenated [word embedding | c(word)].
public final class CharacterEncoder {
    public let embedding: Embedding
    let lstm: PaddedLSTM
    /// C: both directions together.
    public let width: Int
    private var ids: [Int32] = []      // N × W, batch-major for `Embedding`; 0 beyond a word's end
    private var lengths: [Int] = []    // N
    private(set) var features: Buffer  // N × C
    private(set) var words = 0, maxLength = 0

    /// Parameters `\(name)_embedding.weight` and PyTorch's names of a bidirectional `nn.LSTM` `\(name)_lstm`.
    init(vocabSize: Int, embedSize: Int, hiddenSize: Int, name: String) throws(SDLSTMError) {
        width = hiddenSize
        embedding = try Embedding(vocabSize: vocabSize, width: embedSize, name: "\(name)_embedding.weight")
        lstm = try PaddedLSTM(inputSize: embedSize, hiddenSize: hiddenSize / 2, name: "\(name)_lstm", layer: 0)
        features = try Buffer(0)
    }

    var parameters: [Parameter] { [embedding.table] + lstm.parameters }

    /// Sizes the workspaces for N words of up to W characters.
    func prepare(words n: Int, maxLength w: Int) throws(SDLSTMError) {
        words = n
        maxLength = w
        try embedding.prepare(steps: w, batch: n)
        try lstm.prepare(steps: w, batch: n)
        if features.count < n * width { features = try Buffer(n * width) }
    }

    /// Features of the words at `positions` of the batch's arrays: word i's characters are
    /// chars[positions[i] * W ..< + wordLengths[positions[i]]].
    func forward(chars: UnsafePointer<Int32>, wordLengths: UnsafePointer<Int32>, positions: [Int]) {
        let w = maxLength
        refill(&ids, 0, count: words * w)
        lengths = positions.map { Int(wordLengths[$0]) }
        for (i, p) in positions.enumerated() {
            for c in 0..<lengths[i] { ids[i * w + c] = chars[p * w + c] }
        }
        let x = ids.withUnsafeBufferPointer { embedding.forward($0.baseAddress!) }
        lstm.forward(x, lengths: lengths, dropout: false)
        lstm.finalStates(into: features.ptr)
    }

    /// Backward from ∂loss/∂features (N × C): the BiLSTM's and the embedding's gradients.
    func backward(_ dFeatures: UnsafePointer<Float>) {
        lstm.backward(outputGradient: nil, finalHidden: dFeatures, needInputGradient: true)
        ids.withUnsafeBufferPointer { embedding.backward($0.baseAddress!, lstm.dx.ptr) }
    }
}
