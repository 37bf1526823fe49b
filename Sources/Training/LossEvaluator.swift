import Foundation
import Kernels
import Transformer

/// Token-weighted mean next-token loss over a set of examples (forward only).
public enum LossEvaluator {
    public struct Result: Sendable, Codable, Equatable {
        public var loss: Double
        public var perplexity: Double
        public var tokens: Int
        public var examples: Int
    }

    /// Runs `examples` through `model` in packed batches of `batchSize`; `progress(done, total)` after each batch.
    public static func evaluate(model: TransformerModel, examples: [TrainingExample], batchSize: Int,
                                progress: ((Int, Int) -> Void)? = nil) throws -> Result {
        guard batchSize >= 1 else { throw TrainingError.options("batch size must be at least 1") }
        guard !examples.isEmpty else { return Result(loss: .nan, perplexity: .nan, tokens: 0, examples: 0) }
        try TrainingExample.validate(examples, for: model)
        let batches = stride(from: 0, to: examples.count, by: batchSize).map {
            Array(examples[$0..<min(examples.count, $0 + batchSize)])
        }
        let buffers = model.makeBuffers(batches: batches.map { $0.map(\.ids.count) }, policy: .inference)
        var sum = 0.0, count = 0, done = 0
        for batch in batches {
            let packed = PackedBatch(sequences: batch.map(\.ids))
            let (s, n) = model.loss(packed, labels: batch.flatMap(\.labels), buffers: buffers)
            sum += s
            count += n
            done += batch.count
            progress?(done, examples.count)
        }
        let mean = count > 0 ? sum / Double(count) : .nan
        return Result(loss: mean, perplexity: exp(mean), tokens: count, examples: examples.count)
    }
}
