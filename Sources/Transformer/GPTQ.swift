import Foundation
import Kernels
import ModelIO

/// GPTQ checkpoints (the layout of Qwen's GPTQ-Int4 releases): per projection `qweight` [in/8, out] int32 with eight
/// 4-bit values per word (row i = 8r + j at bits 4j), `qzeros` [in/group, out/8] packed the same way along the
/// output, `scales` [in/group, out] f16 and `g_idx` [in]; `w[o, i] = scale[g_idx[i], o] * (q[i, o] - zero')` with
/// zero' = stored zero + 1 (checkpoint format `gptq`) or the stored zero (`gptq_v2`).
///
/// A symmetric 4-bit checkpoint maps exactly onto q4_0 blocks (d = scale, value - 8), so it runs straight from 4-bit
/// storage without ever being dequantized to bf16; with act-order (desc_act), the inputs are taken in group order.
/// Anything else is refused by name.
struct GPTQConfig: Sendable, Equatable {
    var bits: Int
    var groupSize: Int
    var descAct: Bool
    var sym: Bool
    /// 1 for the `gptq` checkpoint format (stored zeros are one below the real ones), 0 for `gptq_v2`.
    var zeroOffset: Int

    /// The checkpoint's quantization_config, nil when it is not GPTQ; unsupported settings throw.
    init?(configData: Data, path: String) throws {
        guard let obj = (try? JSONSerialization.jsonObject(with: configData)) as? [String: Any],
              let q = obj["quantization_config"] as? [String: Any] else { return nil }
        let method = (q["quant_method"] as? String) ?? ""
        guard method == "gptq" else {
            throw TransformerError.config(path: path, reason: "quantization_config quant_method '\(method)' is not supported (gptq only; or quantize with --quantize / peft quantize)")
        }
        bits = (q["bits"] as? NSNumber)?.intValue ?? 4
        groupSize = (q["group_size"] as? NSNumber)?.intValue ?? 128
        descAct = (q["desc_act"] as? Bool) ?? false
        sym = (q["sym"] as? Bool) ?? true
        zeroOffset = (q["checkpoint_format"] as? String) == "gptq_v2" ? 0 : 1
        guard bits == 4 else { throw TransformerError.config(path: path, reason: "GPTQ with \(bits) bits is not supported (4 bits only)") }
        guard sym else { throw TransformerError.config(path: path, reason: "asymmetric GPTQ (sym: false) is not supported") }
        guard groupSize > 0, groupSize % 32 == 0 else {
            throw TransformerError.config(path: path, reason: "GPTQ group_size \(groupSize) is not supported (a multiple of 32; -1 per-channel is not supported)")
        }
    }

    /// The q4_0 matrix [out, in] of projection `module`.
    func matrix(_ directory: ModelDirectory, module: String, rows out: Int, cols inp: Int) throws -> WeightMatrix {
        func load(_ suffix: String, _ shape: [Int]) throws -> TensorView {
            let t = try directory.tensor(module + "." + suffix)
            guard t.shape == shape else { throw ModelIOError.shapeMismatch(tensor: t.name, expected: shape, found: t.shape) }
            return t
        }
        guard inp % groupSize == 0, inp % 8 == 0, out % 8 == 0 else {
            throw TransformerError.weights(reason: "\(module): GPTQ group size \(groupSize) does not divide the \(inp) inputs")
        }
        let groups = inp / groupSize
        let qweight = try load("qweight", [inp / 8, out]), qzeros = try load("qzeros", [groups, out / 8])
        let scales = try load("scales", [groups, out])
        guard qweight.dtypeName == "I32", qzeros.dtypeName == "I32", scales.dtypeName == "F16" else {
            throw TransformerError.weights(reason: "\(module): GPTQ tensors must be I32 qweight/qzeros and F16 scales")
        }
        // Act-order (desc_act) checkpoints assign inputs to groups out of order (g_idx). Sorting the inputs by group
        // makes every block of 32 share one scale again; the matrix then reads its inputs in that order.
        var order: [Int32]?
        if directory.contains(module + ".g_idx") {
            let g = try load("g_idx", [inp])
            guard g.dtypeName == "I32" else { throw TransformerError.weights(reason: "\(module): GPTQ g_idx must be I32, not \(g.dtypeName)") }
            let idx = g.data.assumingMemoryBound(to: Int32.self)
            if (0..<inp).contains(where: { Int(idx[$0]) != $0 / groupSize }) {
                var members = [[Int32]](repeating: [], count: groups)
                for i in 0..<inp {
                    let gi = Int(idx[i])
                    guard gi >= 0, gi < groups else {
                        throw TransformerError.weights(reason: "\(module): g_idx[\(i)] = \(gi) is outside the \(groups) groups")
                    }
                    members[gi].append(Int32(i))
                }
                if let bad = members.firstIndex(where: { $0.count != groupSize }) {
                    throw TransformerError.weights(reason: "\(module): GPTQ group \(bad) holds \(members[bad].count) inputs, not the group size \(groupSize); such act-order checkpoints are not supported")
                }
                order = members.flatMap { $0 }
            }
        }
        let qw = qweight.data.assumingMemoryBound(to: UInt32.self), qz = qzeros.data.assumingMemoryBound(to: UInt32.self)
        let sc = scales.data.assumingMemoryBound(to: UInt16.self)
        for g in 0..<groups {
            for o in 0..<out {
                let zero = Int((qz[g * (out / 8) + o / 8] >> UInt32(4 * (o % 8))) & 0xF) + zeroOffset
                guard zero == 8 else {
                    throw TransformerError.weights(reason: "\(module): zero point \(zero) in group \(g) is not the symmetric 8; asymmetric GPTQ is not supported")
                }
            }
        }
        // q4_0: per output row, blocks of 32 inputs: f16 scale, byte j = q[j] | q[16 + j] << 4.
        let type = QuantType.q4_0
        // Input at (sorted) position p: order[p]; its group is p / groupSize.
        let source: (Int) -> Int = order.map { o in { Int(o[$0]) } } ?? { $0 }
        func q(_ p: Int, _ o: Int) -> UInt8 {
            let i = source(p)
            return UInt8((qw[(i / 8) * out + o] >> UInt32(4 * (i % 8))) & 0xF)
        }
        var m = WeightMatrix.packing(type, rows: out, cols: inp) { o, row in
            for b in 0..<(inp / 32) {
                let dst = row + b * type.blockBytes
                let scale = sc[(b * 32 / groupSize) * out + o]
                dst[0] = UInt8(scale & 0xFF)
                dst[1] = UInt8(scale >> 8)
                for j in 0..<16 { dst[2 + j] = q(b * 32 + j, o) | (q(b * 32 + 16 + j, o) << 4) }
            }
        }
        if let order { m.inputOrder = WeightMatrix.InputOrder(order) }
        return m
    }
}
