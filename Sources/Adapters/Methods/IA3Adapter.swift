import Foundation
import Kernels
import ModelIO
import Transformer

/// (IA)³ settings in PEFT's `IA3Config` vocabulary.
public struct IA3Config: Sendable, Equatable {
    public var targetModules: LoRAConfig.Targets
    /// Modules whose *input* is scaled (a subset of the targets); the others scale their output.
    public var feedforwardModules: [String]
    public var layersToTransform: [Int]?

    public init(targetModules: LoRAConfig.Targets = .names(["k_proj", "v_proj", "down_proj"]),
                feedforwardModules: [String] = ["down_proj"], layersToTransform: [Int]? = nil) {
        self.targetModules = targetModules
        self.feedforwardModules = feedforwardModules
        self.layersToTransform = layersToTransform
    }

    /// Reads PEFT's adapter_config.json object.
    public init(object obj: [String: Any], path: String) throws {
        let targets = try LoRAConfig.Targets(object: obj, path: path)
        var ff: [String] = []
        if let list = obj["feedforward_modules"] as? [String] { ff = list.sorted() }
        else if let s = obj["feedforward_modules"] as? String { ff = [s] }
        if let modules = obj["modules_to_save"] as? [Any], !modules.isEmpty {
            throw AdapterError.unsupported(path: path, reason: "modules_to_save \(modules) is not supported")
        }
        if (obj["fan_in_fan_out"] as? Bool) == true {
            throw AdapterError.unsupported(path: path, reason: "fan_in_fan_out is only for GPT-2 style Conv1D layers")
        }
        self.init(targetModules: targets, feedforwardModules: ff, layersToTransform: LoRAConfig.layersToTransform(obj))
    }

    public func object(baseModel: String?) -> [String: Any] {
        var obj: [String: Any] = [
            "peft_type": "IA3", "task_type": "CAUSAL_LM", "feedforward_modules": feedforwardModules.sorted(),
            "fan_in_fan_out": false, "init_ia3_weights": true, "inference_mode": true, "modules_to_save": NSNull(),
            "revision": NSNull(), "base_model_name_or_path": baseModel.map { $0 as Any } ?? NSNull(),
            "layers_to_transform": layersToTransform.map { $0 as Any } ?? NSNull(),
        ]
        obj["target_modules"] = targetModules.json
        return obj
    }
}

/// (IA)³: learned vectors that rescale activations. At ordinary modules the output is scaled,
/// `y = (W x + b) * l` (l [out]); at feed-forward modules the input, `y = W (x * l) + b` (l [in]). PEFT's init is 1.
public final class IA3Adapter: TrainableAdapter, @unchecked Sendable {
    public struct Site: Sendable {
        public let site: ProjectionSite
        /// The module's name in the model's checkpoints.
        public let moduleName: String
        public let feedforward: Bool
        public let inFeatures: Int
        public let outFeatures: Int
        public let offset: Int
        public var length: Int { feedforward ? inFeatures : outFeatures }
    }

    public let config: IA3Config
    public let sites: [ProjectionSite: Site]
    public let orderedSites: [Site]
    public let parameters: FloatBuffer
    public let gradients: FloatBuffer
    public var method: AdapterMethod { .ia3 }

    // Per-site y_base (output-scaled sites) kept from forward for backward.
    private var saved: [ProjectionSite: FloatBuffer] = [:]
    private var savedCapacity = 0
    private var scratch = FloatBuffer(count: 0)
    private let lock = NSLock()

    public init(config: IA3Config, model: ModelConfig) throws {
        self.config = config
        let chosen = try TargetModules.sites(config.targetModules, layers: config.layersToTransform, model: model)
        var list: [Site] = [], offset = 0
        for s in chosen {
            let name = model.layout.moduleName(s)
            let ff = config.feedforwardModules.contains { TargetModules.matchesSuffix(name, $0) }
            let (inp, out) = model.features(s.projection)
            let site = Site(site: s, moduleName: name, feedforward: ff, inFeatures: inp, outFeatures: out, offset: offset)
            list.append(site)
            offset += site.length
        }
        orderedSites = list
        sites = Dictionary(uniqueKeysWithValues: list.map { ($0.site, $0) })
        parameters = FloatBuffer(count: offset)
        gradients = FloatBuffer(count: offset)
        for i in 0..<offset { parameters[i] = 1 }
    }

    /// Checks feedforward_modules against target_modules as PEFT does.
    public static func validate(_ config: IA3Config) throws {
        if case .names(let names) = config.targetModules,
           let stray = config.feedforwardModules.first(where: { !names.contains($0) }) {
            throw AdapterError.config(path: "--feedforward-modules", reason: "'\(stray)' is not one of the target modules \(names)")
        }
    }

    static func load(config: IA3Config, file: SafetensorsFile, url: URL, model: ModelConfig) throws -> IA3Adapter {
        let adapter: IA3Adapter
        do { adapter = try IA3Adapter(config: config, model: model) } catch AdapterError.noTargets(let requested, let available) {
            throw AdapterError.mismatches(path: url.path, problems: ["target_modules \(requested) match no projection (available: \(available.joined(separator: ", ")))"])
        }
        let found = AdapterFiles.index(file)
        var problems: [String] = [], used = Set<String>()
        for p in adapter.namedParameters {
            let name = String(p.name.dropFirst("base_model.model.".count))
            used.insert(name)
            AdapterFiles.copy(name, key: p.name, shape: p.shape, from: found, into: adapter.parameters.pointer + p.offset,
                              problems: &problems)
        }
        for name in found.keys.sorted() where !used.contains(name) { problems.append("unexpected tensor \(name)") }
        if !problems.isEmpty { throw AdapterError.mismatches(path: url.path, problems: problems) }
        return adapter
    }

    // MARK: TrainableAdapter

    public var namedParameters: [NamedParameter] {
        orderedSites.map { s in
            NamedParameter(name: "base_model.model.\(s.moduleName).ia3_l",
                           shape: s.feedforward ? [1, s.inFeatures] : [s.outFeatures, 1], offset: s.offset)
        }
    }

    public func peftConfig(baseModel: String?) -> [String: Any] { config.object(baseModel: baseModel) }

    public func savedTensors() -> [(key: String, shape: [Int], values: [Float])] {
        namedParameters.map { ($0.name, $0.shape, Array(UnsafeBufferPointer(start: parameters.pointer + $0.offset, count: $0.count))) }
    }

    public var summary: String {
        let ff = orderedSites.filter(\.feedforward).count
        return "(IA)³ on \(orderedSites.count) projections (\(ff) scaling their input, \(orderedSites.count - ff) their output)"
    }

    public var mergedTensorNames: [String] {
        orderedSites.flatMap { s in [s.moduleName + ".weight"] + (s.feedforward ? [] : [s.moduleName + ".bias"]) }
    }

    /// Output scaling multiplies weight rows and the bias; input scaling multiplies weight columns (as PEFT merges).
    public func merge(tensor name: String, values: UnsafeMutablePointer<Float>, shape: [Int]) -> Bool {
        for s in orderedSites {
            let l = parameters.pointer + s.offset
            if name == s.moduleName + ".weight", shape == [s.outFeatures, s.inFeatures] {
                for j in 0..<s.outFeatures {
                    for i in 0..<s.inFeatures { values[j * s.inFeatures + i] *= s.feedforward ? l[i] : l[j] }
                }
                return true
            }
            if !s.feedforward, name == s.moduleName + ".bias", shape == [s.outFeatures] {
                for j in 0..<s.outFeatures { values[j] *= l[j] }
                return true
            }
        }
        return false
    }

    // MARK: ModelAdapter

    public func attaches(to site: ProjectionSite) -> Bool { sites[site] != nil }
    public var lowestTrainableLayer: Int? { orderedSites.map(\.site.layer).min() }

    public func reserve(rows: Int) {
        lock.lock(); defer { lock.unlock() }
        guard rows > savedCapacity else { return }
        for s in orderedSites where !s.feedforward { saved[s.site] = FloatBuffer(count: rows * s.outFeatures) }
        scratch = FloatBuffer(count: rows * (orderedSites.map { max($0.inFeatures, $0.outFeatures) }.max() ?? 0))
        savedCapacity = rows
    }

    public func project(site ps: ProjectionSite, linear: Linear, x: UnsafePointer<Float>, rows: Int,
                        out: UnsafeMutablePointer<Float>, context: PassContext) {
        guard let s = sites[ps] else { linear.forward(x, rows: rows, into: out, exact: context.exact); return }
        let l = parameters.pointer + s.offset
        if s.feedforward {
            // y = W (x * l) + b
            let temp = FloatBuffer(count: rows * s.inFeatures)
            withExtendedLifetime(temp) {
                Self.scaleColumns(x, by: l, rows: rows, cols: s.inFeatures, into: temp.pointer)
                linear.forward(temp.pointer, rows: rows, into: out, exact: context.exact)
            }
            return
        }
        // y = (W x + b) * l, y_base kept for backward.
        linear.forward(x, rows: rows, into: out, exact: context.exact)
        if context.training {
            reserve(rows: rows)
            saved[ps]!.pointer.update(from: out, count: rows * s.outFeatures)
        }
        Self.scaleColumns(out, by: l, rows: rows, cols: s.outFeatures, into: out)
    }

    /// Inference on top of the frozen product: outputs scaled; a feed-forward site scales the inputs and runs `project`.
    public func refineProjection(site ps: ProjectionSite, linear: Linear, x: UnsafePointer<Float>, rows: Int,
                                 out: UnsafeMutablePointer<Float>, context: PassContext) {
        guard let s = sites[ps] else { return }
        guard !s.feedforward, !context.training else {
            project(site: ps, linear: linear, x: x, rows: rows, out: out, context: context)
            return
        }
        Self.scaleColumns(out, by: parameters.pointer + s.offset, rows: rows, cols: s.outFeatures, into: out)
    }

    public func projectBackward(site ps: ProjectionSite, linear: Linear, x: UnsafePointer<Float>,
                                dy: UnsafePointer<Float>, rows: Int, dx: UnsafeMutablePointer<Float>?,
                                accumulate: Bool, context: PassContext) {
        guard let s = sites[ps] else {
            if let dx { linear.backwardInput(dy, rows: rows, into: dx, accumulate: accumulate) }
            return
        }
        reserve(rows: rows)
        let l = parameters.pointer + s.offset, gl = gradients.pointer + s.offset, t = scratch.pointer
        if s.feedforward {
            // dxs = dy W ; dl_i += sum_rows dxs * x ; dx (+)= dxs * l
            linear.backwardInput(dy, rows: rows, into: t, accumulate: false)
            Self.accumulateColumnProducts(t, x, rows: rows, cols: s.inFeatures, into: gl)
            guard let dx else { return }
            if accumulate {
                for i in 0..<rows { for c in 0..<s.inFeatures { dx[i * s.inFeatures + c] += t[i * s.inFeatures + c] * l[c] } }
            } else {
                Self.scaleColumns(t, by: l, rows: rows, cols: s.inFeatures, into: dx)
            }
            return
        }
        // dl_j += sum_rows dy * y_base ; dx (+)= (dy * l) W
        guard let base = saved[ps] else { return }
        Self.accumulateColumnProducts(dy, base.pointer, rows: rows, cols: s.outFeatures, into: gl)
        guard let dx else { return }
        Self.scaleColumns(dy, by: l, rows: rows, cols: s.outFeatures, into: t)
        linear.backwardInput(t, rows: rows, into: dx, accumulate: accumulate)
    }

    /// out[rows, cols] = x * l (l broadcast over rows); out may alias x.
    static func scaleColumns(_ x: UnsafePointer<Float>, by l: UnsafePointer<Float>, rows: Int, cols: Int,
                             into out: UnsafeMutablePointer<Float>) {
        Parallel.forRanges(rows, minChunk: 16) { r in
            for i in r { for c in 0..<cols { out[i * cols + c] = x[i * cols + c] * l[c] } }
        }
    }

    /// g[c] += sum_rows a * b.
    static func accumulateColumnProducts(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, rows: Int, cols: Int,
                                         into g: UnsafeMutablePointer<Float>) {
        for i in 0..<rows { for c in 0..<cols { g[c] += a[i * cols + c] * b[i * cols + c] } }
    }
}
