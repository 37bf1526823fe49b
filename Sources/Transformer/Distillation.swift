import Foundation
import Kernels

/// Knowledge distillation's per-token divergence: the generalized Jensen-Shannon divergence of TRL's GKD
/// (`generalized_jsd_loss`) between the student's and the teacher's next-token distributions at temperature T:
/// with s = softmax(z_s / T), t = softmax(z_t / T) and the mixture m = (1 - beta) s + beta t,
/// JSD_beta = beta KL(t || m) + (1 - beta) KL(s || m); beta = 0 is the forward KL(t || s), beta = 1 the reverse
/// KL(s || t). (No T^2 factor, as TRL.)
public enum DistillationLoss {
    /// The divergence of one row over the first `count` logits of each, and, when `gradient` is given, its
    /// derivative with respect to the student's logits z_s written there (`count` floats).
    public static func row(student zs: UnsafePointer<Float>, teacher zt: UnsafePointer<Float>, count v: Int,
                           beta: Double, temperature: Double, gradient: UnsafeMutablePointer<Float>?) -> Double {
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: 2 * max(1, v))
        defer { scratch.deallocate() }
        return row(student: zs, teacher: zt, count: v, beta: beta, temperature: temperature, gradient: gradient,
                   scratch: scratch)
    }

    /// `row` with caller-owned scratch of 2 x `count` floats.
    public static func row(student zs: UnsafePointer<Float>, teacher zt: UnsafePointer<Float>, count v: Int,
                           beta: Double, temperature: Double, gradient: UnsafeMutablePointer<Float>?,
                           scratch: UnsafeMutablePointer<Float>) -> Double {
        Ops.generalizedJSD(student: zs, teacher: zt, count: v, beta: Float(beta), inverseTemperature: Float(1 / temperature),
                           gradient: gradient, scratch: scratch)
    }
}

/// The teacher side of a distillation pass: the teacher's logits at the student's labelled rows (in row order),
/// the divergence's settings, and the sums the pass adds up.
public final class Distillation: @unchecked Sendable {
    /// [labelled rows, teacherVocab]
    public let teacherLogits: FloatBuffer
    public let teacherVocab: Int
    /// Logits compared: the first `vocab` of each side (a larger padded vocabulary's extra rows are cut).
    public let vocab: Int
    public let beta: Double
    public let temperature: Double
    /// Weight of the reference answers' cross-entropy in the objective (0: the divergence alone).
    public let ceWeight: Double
    /// Sums over the labelled rows of the last pass: the divergence and the cross-entropy.
    public internal(set) var distillSum = 0.0
    public internal(set) var ceSum = 0.0

    public init(teacherLogits: FloatBuffer, teacherVocab: Int, studentVocab: Int, beta: Double, temperature: Double,
                ceWeight: Double) {
        self.teacherLogits = teacherLogits
        self.teacherVocab = teacherVocab
        vocab = min(teacherVocab, studentVocab)
        self.beta = beta
        self.temperature = temperature
        self.ceWeight = ceWeight
    }
}

extension TransformerModel {
    /// Logits [rows with a label >= 0, V] of `batch` in row order (inference), e.g. a teacher's at a student's
    /// answer tokens.
    public func labelledLogits(_ batch: PackedBatch, labels: [Int32]) -> FloatBuffer {
        let rows = labels.indices.filter { labels[$0] >= 0 }
        let V = config.vocabSize, C = config.hiddenSize
        let out = FloatBuffer(count: max(1, rows.count * V))
        guard !rows.isEmpty else { return out }
        let b = makeBuffers(batches: [batch.fullLengths], policy: .inference)
        let (run, _) = prepare(batch, labels: nil)
        forwardStack(run, buffers: b, context: .inference)
        // Rows shift past the adapter's virtual tokens of each sequence.
        let nv = adapter?.virtualTokenCount ?? 0
        var map: [Int] = []
        map.reserveCapacity(labels.count)
        for (s, length) in batch.lengths.enumerated() {
            for r in 0..<length { map.append(batch.starts[s] + s * nv + nv + r) }
        }
        let gathered = FloatBuffer(count: rows.count * C)
        for (j, r) in rows.enumerated() { (gathered.pointer + j * C).update(from: b.finalNormed.pointer + map[r] * C, count: C) }
        headLogits(gathered.pointer, rows: rows.count, into: out.pointer)
        return out
    }
}
