import Foundation
import Kernels
import ModelIO
import Transformer

/// Bottleneck adapters (Houlsby, Pfeiffer, parallel) at the sublayer-output hook, computed as the AdapterHub
/// `adapters` library computes them for pre-norm decoders: with h the block's output and r its residual input,
/// the block contributes `h + s * f(x)` instead of h, where `f(x) = W_up act(W_down x + b_down) + b_up` and x is h
/// (Houlsby), r + h (Pfeiffer) or r (parallel). Saved in the library's layout (`adapter_config.json` with a
/// `config` object, `adapter.safetensors`), so `load_adapter` reads ours.
public final class BottleneckAdapter: TrainableAdapter, @unchecked Sendable {
    /// One adapter module: W_down [D, C], b_down [D], W_up [C, D], b_up [C] at these offsets.
    public struct Site: Sendable {
        public let layer: Int
        public let sublayer: Sublayer
        public let down: Int
        public let downBias: Int
        public let up: Int
        public let upBias: Int
    }

    public static let defaultName = "bottleneck"
    public let config: BottleneckConfig
    public let name: String
    public let model: ModelConfig
    public let hidden: Int
    public let bottleneck: Int
    public let sites: [Site]
    private let byKey: [String: Site]
    public let parameters: FloatBuffer
    public let gradients: FloatBuffer
    public var method: AdapterMethod { .adapter }

    // Per-site input x [rows, C] and pre-activation [rows, D] kept from forward for backward.
    private var savedInput: [String: FloatBuffer] = [:]
    private var savedPre: [String: FloatBuffer] = [:]
    private var capacity = 0
    private let lock = NSLock()

    public init(config: BottleneckConfig, model: ModelConfig, name: String = BottleneckAdapter.defaultName) throws {
        if let bad = config.leaveOut.first(where: { $0 < 0 || $0 >= model.layerCount }) {
            throw AdapterError.config(path: "leave_out", reason: "layer \(bad) does not exist (the model has \(model.layerCount) layers)")
        }
        self.config = config
        self.name = name
        self.model = model
        hidden = model.hiddenSize
        bottleneck = config.downSample(model.hiddenSize)
        let (C, D) = (hidden, bottleneck)
        var list: [Site] = [], offset = 0
        for l in 0..<model.layerCount where !config.leaveOut.contains(l) {
            for sub in Sublayer.allCases where sub == .attention ? config.mhAdapter : config.outputAdapter {
                list.append(Site(layer: l, sublayer: sub, down: offset, downBias: offset + D * C, up: offset + D * C + D,
                                 upBias: offset + 2 * D * C + D))
                offset += 2 * D * C + D + C
            }
        }
        guard !list.isEmpty else { throw AdapterError.config(path: "leave_out", reason: "every layer is left out") }
        sites = list
        byKey = Dictionary(uniqueKeysWithValues: list.map { (Self.key($0.layer, $0.sublayer), $0) })
        parameters = FloatBuffer(count: offset)
        gradients = FloatBuffer(count: offset)
    }

    static func key(_ layer: Int, _ sub: Sublayer) -> String { "\(layer).\(sub.rawValue)" }

    /// The library's initialisation: `bert` (weights N(0, 0.02), biases 0) or `mam_adapter` (W_down
    /// Kaiming-uniform, everything else 0, so the adapter starts as the identity).
    public func initialize(seed: UInt64) {
        var rng = SeededGenerator(seed: seed)
        let (C, D) = (hidden, bottleneck)
        parameters.zero()
        for s in sites {
            if config.initWeights == "mam_adapter" {
                let bound = 1 / Float(C).squareRoot()
                for i in 0..<(D * C) { parameters[s.down + i] = (rng.nextUniform() * 2 - 1) * bound }
            } else {
                for i in 0..<(D * C) { parameters[s.down + i] = rng.nextNormal() * 0.02 }
                for i in 0..<(C * D) { parameters[s.up + i] = rng.nextNormal() * 0.02 }
            }
        }
    }

    // MARK: TrainableAdapter

    private func prefix(_ s: Site) -> String {
        "model.layers.\(s.layer).\(s.sublayer == .attention ? "attention_adapters" : "output_adapters").adapters.\(name)"
    }

    public var namedParameters: [NamedParameter] {
        let (C, D) = (hidden, bottleneck)
        return sites.flatMap { s in [
            NamedParameter(name: prefix(s) + ".adapter_down.0.weight", shape: [D, C], offset: s.down),
            NamedParameter(name: prefix(s) + ".adapter_down.0.bias", shape: [D], offset: s.downBias),
            NamedParameter(name: prefix(s) + ".adapter_up.weight", shape: [C, D], offset: s.up),
            NamedParameter(name: prefix(s) + ".adapter_up.bias", shape: [C], offset: s.upBias),
        ] }
    }

    static let modelClasses: [String: String] = ["qwen2": "Qwen2ForCausalLM", "llama": "LlamaForCausalLM",
                                                 "mistral": "MistralForCausalLM", "qwen3": "Qwen3ForCausalLM"]

    /// adapter_config.json as `adapters` 1.3 writes it.
    public func peftConfig(baseModel: String?) -> [String: Any] {
        let type = model.architecture.rawValue
        return ["config": config.object(), "hidden_size": hidden, "model_class": Self.modelClasses[type] ?? type,
                "model_name": baseModel.map { $0 as Any } ?? NSNull(), "model_type": type, "name": name,
                "version": "adapters.1.3.0"]
    }

    public func savedTensors() -> [(key: String, shape: [Int], values: [Float])] {
        namedParameters.map { ($0.name, $0.shape, Array(UnsafeBufferPointer(start: parameters.pointer + $0.offset, count: $0.count))) }
    }

    public var summary: String {
        let kind = config.isParallel ? "parallel" : (config.mhAdapter ? "Houlsby" : "Pfeiffer")
        return "\(kind) bottleneck adapters (\(config.architectureName), reduction \(config.reductionFactor), \(config.nonLinearity.rawValue)) at \(sites.count) sublayers, width \(bottleneck)"
    }

    public func writeOutput(to url: URL, baseModel: String?) throws {
        try AdapterFiles.saveAdapterHub(self, to: url, baseModel: baseModel)
    }

    static func load(config: BottleneckConfig, name: String, file: SafetensorsFile, url: URL, model: ModelConfig,
                     object: [String: Any]) throws -> BottleneckAdapter {
        var problems: [String] = []
        if let h = (object["hidden_size"] as? NSNumber)?.intValue, h != model.hiddenSize {
            problems.append("hidden_size is \(h), this model needs \(model.hiddenSize) (the adapter was made for another model)")
        }
        if !problems.isEmpty { throw AdapterError.mismatches(path: url.path, problems: problems) }
        let adapter = try BottleneckAdapter(config: config, model: model, name: name)
        var used = Set<String>()
        for p in adapter.namedParameters {
            used.insert(p.name)
            AdapterFiles.copy(p.name, key: p.name, shape: p.shape, from: file.tensors, into: adapter.parameters.pointer + p.offset,
                              problems: &problems)
        }
        for key in file.tensors.keys.sorted() where !used.contains(key) { problems.append("unexpected tensor \(key)") }
        if !problems.isEmpty { throw AdapterError.mismatches(path: url.path, problems: problems) }
        return adapter
    }

    // MARK: ModelAdapter

    public var lowestTrainableLayer: Int? { sites.map(\.layer).min() }

    public func adapts(_ sublayer: Sublayer, layer: Int) -> Bool { byKey[Self.key(layer, sublayer)] != nil }

    public func reserve(rows: Int) {
        lock.lock(); defer { lock.unlock() }
        guard rows > capacity else { return }
        for s in sites {
            savedInput[Self.key(s.layer, s.sublayer)] = FloatBuffer(count: rows * hidden)
            savedPre[Self.key(s.layer, s.sublayer)] = FloatBuffer(count: rows * bottleneck)
        }
        capacity = rows
    }

    private func usesOutput(_ sub: Sublayer) -> Bool { !config.isParallel }
    private func usesResidual(_ sub: Sublayer) -> Bool { config.isParallel || config.originalLnBefore }

    public func sublayerForward(_ sublayer: Sublayer, layer: Int, residual: UnsafePointer<Float>,
                                output: UnsafeMutablePointer<Float>, rows: Int, context: PassContext) {
        let k = Self.key(layer, sublayer)
        guard let s = byKey[k] else { return }
        let (C, D) = (hidden, bottleneck)
        if context.training { reserve(rows: rows) }
        let temp: (FloatBuffer, FloatBuffer)? = context.training ? nil : (FloatBuffer(count: rows * C), FloatBuffer(count: rows * D))
        let x = temp?.0.pointer ?? savedInput[k]!.pointer, pre = temp?.1.pointer ?? savedPre[k]!.pointer
        defer { withExtendedLifetime(temp) {} }
        // x = h, r + h or r
        switch (usesOutput(sublayer), usesResidual(sublayer)) {
        case (true, true): Ops.sum(residual, output, into: x, count: rows * C)
        case (true, false): x.update(from: output, count: rows * C)
        default: x.update(from: residual, count: rows * C)
        }
        let p = parameters.pointer
        // pre[rows, D] = x W_down^T + b_down ; a = act(pre) ; output += s * (a W_up^T + b_up)
        Gemm.multiply(m: rows, n: D, k: C, a: x, lda: C, b: p + s.down, ldb: C, transposeB: true, c: pre, ldc: D)
        Ops.addBias(p + s.downBias, to: pre, rows: rows, cols: D)
        let a = FloatBuffer(count: rows * D), up = FloatBuffer(count: rows * C)
        activate(pre, into: a.pointer, count: rows * D)
        Gemm.multiply(m: rows, n: C, k: D, a: a.pointer, lda: D, b: p + s.up, ldb: D, transposeB: true, c: up.pointer, ldc: C)
        Ops.addBias(p + s.upBias, to: up.pointer, rows: rows, cols: C)
        Ops.axpy(Float(config.scaling), up.pointer, output, count: rows * C)
    }

    public func sublayerBackward(_ sublayer: Sublayer, layer: Int, dOutput: UnsafePointer<Float>, rows: Int,
                                 dOriginal: UnsafeMutablePointer<Float>, dResidual: UnsafeMutablePointer<Float>,
                                 context: PassContext) {
        let k = Self.key(layer, sublayer)
        guard let s = byKey[k], let x = savedInput[k]?.pointer, let pre = savedPre[k]?.pointer else { return }
        let (C, D) = (hidden, bottleneck)
        let p = parameters.pointer, g = gradients.pointer
        let dup = FloatBuffer(count: rows * C), a = FloatBuffer(count: rows * D), da = FloatBuffer(count: rows * D)
        let dIn = FloatBuffer(count: rows * C)
        // dup = s * dOutput ; dW_up += dup^T a ; db_up += sum dup ; da = dup W_up
        for i in 0..<(rows * C) { dup[i] = Float(config.scaling) * dOutput[i] }
        activate(pre, into: a.pointer, count: rows * D)
        Gemm.multiply(m: C, n: D, k: rows, a: dup.pointer, lda: C, transposeA: true, b: a.pointer, ldb: D,
                      c: g + s.up, ldc: D, accumulate: true)
        for r in 0..<rows { Ops.add(dup.pointer + r * C, into: g + s.upBias, count: C) }
        Gemm.multiply(m: rows, n: D, k: C, a: dup.pointer, lda: C, b: p + s.up, ldb: D, c: da.pointer, ldc: D)
        // dpre = da * act'(pre) ; dW_down += dpre^T x ; db_down += sum dpre ; dIn = dpre W_down
        for i in 0..<(rows * D) { da[i] *= derivative(pre[i]) }
        Gemm.multiply(m: D, n: C, k: rows, a: da.pointer, lda: D, transposeA: true, b: x, ldb: C,
                      c: g + s.down, ldc: C, accumulate: true)
        for r in 0..<rows { Ops.add(da.pointer + r * D, into: g + s.downBias, count: D) }
        Gemm.multiply(m: rows, n: C, k: D, a: da.pointer, lda: D, b: p + s.down, ldb: C, c: dIn.pointer, ldc: C)
        // The original output passes straight through (+ dIn when the adapter read it); dResidual may alias dOutput,
        // so it is updated last.
        dOriginal.update(from: dOutput, count: rows * C)
        if usesOutput(sublayer) { Ops.add(dIn.pointer, into: dOriginal, count: rows * C) }
        if usesResidual(sublayer) { Ops.add(dIn.pointer, into: dResidual, count: rows * C) }
    }

    private func activate(_ x: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, count: Int) {
        switch config.nonLinearity {
        case .relu: for i in 0..<count { out[i] = max(0, x[i]) }
        case .swish: for i in 0..<count { out[i] = x[i] / (1 + exp(-x[i])) }
        case .gelu: for i in 0..<count { out[i] = 0.5 * x[i] * (1 + erf(x[i] / Float(2).squareRoot())) }
        }
    }

    private func derivative(_ x: Float) -> Float {
        switch config.nonLinearity {
        case .relu: return x > 0 ? 1 : 0
        case .swish:
            let sg = 1 / (1 + exp(-x))
            return sg * (1 + x * (1 - sg))
        case .gelu:
            let cdf = 0.5 * (1 + erf(x / Float(2).squareRoot()))
            return cdf + x * exp(-0.5 * x * x) / Float(2 * Double.pi).squareRoot()
        }
    }
}
