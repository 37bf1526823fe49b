import Foundation

/// A LoRA adapter's settings in Python PEFT's `adapter_config.json` vocabulary.
///
/// ```swift
/// var config = LoRAConfig(r: 8, alpha: 16, dropout: 0.05, targetModules: .names(["q_proj", "v_proj"]))
/// config.scaling   // alpha / r (alpha / sqrt(r) with rsLoRA)
/// ```
public struct LoRAConfig: Sendable, Equatable {
    /// `target_modules`: names matched against the end of module names, `all-linear`, or one regex
    /// (a plain string in PEFT) matched against the whole module name.
    public enum Targets: Sendable, Equatable {
        case names([String])
        case allLinear
        case regex(String)
    }

    public var r: Int
    public var alpha: Double
    public var dropout: Double
    public var targetModules: Targets
    public var useRSLoRA: Bool
    public var baseModelNameOrPath: String?
    public var layersToTransform: [Int]?
    /// Per-module rank / alpha overrides (keys are patterns matched against the end of module names).
    public var rankPattern: [String: Int]
    public var alphaPattern: [String: Double]
    /// DoRA: the weight is split into a trainable magnitude and a LoRA-updated direction (`use_dora`).
    public var useDoRA: Bool
    /// `target_parameters`: LoRA on a mixture's stacked expert parameters (`mlp.experts.gate_up_proj`,
    /// `mlp.experts.down_proj`).
    public var targetParameters: [String] = []

    /// The experts' parameters `target_parameters` may name; and the router's.
    public static let expertParameters = ["mlp.experts.gate_up_proj", "mlp.experts.down_proj"]
    public static let routerParameter = "mlp.gate.weight"

    public init(r: Int = 8, alpha: Double = 16, dropout: Double = 0.05,
                targetModules: Targets = .names(["q_proj", "v_proj"]), useRSLoRA: Bool = false,
                baseModelNameOrPath: String? = nil, layersToTransform: [Int]? = nil,
                rankPattern: [String: Int] = [:], alphaPattern: [String: Double] = [:], useDoRA: Bool = false) {
        self.useDoRA = useDoRA
        self.r = r
        self.alpha = alpha
        self.dropout = dropout
        self.targetModules = targetModules
        self.useRSLoRA = useRSLoRA
        self.baseModelNameOrPath = baseModelNameOrPath
        self.layersToTransform = layersToTransform
        self.rankPattern = rankPattern
        self.alphaPattern = alphaPattern
    }

    /// The factor applied to B·A for a module of rank `r` and alpha `alpha`.
    public static func scaling(r: Int, alpha: Double, rsLoRA: Bool) -> Float {
        Float(rsLoRA ? alpha / Double(r).squareRoot() : alpha / Double(r))
    }

    public var scaling: Float { Self.scaling(r: r, alpha: alpha, rsLoRA: useRSLoRA) }

    /// The settings that decide what an adapter computes (names sorted, base model path dropped): equal for a
    /// run and the checkpoints it saved.
    public var comparable: LoRAConfig {
        var c = self
        c.baseModelNameOrPath = nil
        if case .names(let names) = targetModules { c.targetModules = .names(names.sorted()) }
        return c
    }

    /// Largest rank accepted (far above any practical adapter; guards against absurd allocations).
    public static let maxRank = 4096

    /// Range checks for settings that come from flags (files are checked when parsed).
    public func validate() throws {
        guard (1...Self.maxRank).contains(r) else { throw AdapterError.config(path: "--lora-r", reason: "must be within 1...\(Self.maxRank)") }
        guard alpha.isFinite, abs(alpha) <= 1e9 else { throw AdapterError.config(path: "--lora-alpha", reason: "must be a finite number") }
        guard (0..<1).contains(dropout) else { throw AdapterError.config(path: "--lora-dropout", reason: "must be in [0, 1)") }
        try Self.checkTargetParameters(targetParameters, dropout: dropout, dora: useDoRA, path: "--target-parameters")
    }

    /// PEFT's LoRA on parameters: only the experts' two stacked matrices, each once, with no dropout and no DoRA (PEFT
    /// refuses both there).
    static func checkTargetParameters(_ parameters: [String], dropout: Double, dora: Bool, path: String) throws {
        guard !parameters.isEmpty else { return }
        let supported = expertParameters + [routerParameter]
        if let bad = parameters.first(where: { !supported.contains($0) }) {
            throw AdapterError.unsupported(path: path, reason: "target_parameters '\(bad)' is not supported (only \(supported.joined(separator: ", ")): LoRA on a mixture's experts and router)")
        }
        guard Set(parameters).count == parameters.count else {
            throw AdapterError.config(path: path, reason: "target_parameters names a parameter twice")
        }
        guard dropout == 0 else {
            throw AdapterError.config(path: path, reason: "LoRA on parameters takes no dropout (PEFT refuses it): set lora_dropout to 0 (--lora-dropout 0)")
        }
        guard !dora else { throw AdapterError.unsupported(path: path, reason: "DoRA on target_parameters is not supported (nor in PEFT)") }
    }

    /// Parses a comma-separated CLI list (`q_proj,v_proj` or `all-linear`).
    public static func targets(fromList text: String) -> Targets {
        let items = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        if items == ["all-linear"] { return .allLinear }
        return .names(items)
    }
}

// MARK: - adapter_config.json

extension LoRAConfig.Targets {
    /// PEFT's `target_modules`: a list of names (`["all-linear"]` too) or one regex string.
    public init(object obj: [String: Any], path: String) throws {
        if let list = obj["target_modules"] as? [String] {
            self = list == ["all-linear"] ? .allLinear : .names(list.sorted())
        } else if let s = obj["target_modules"] as? String {
            self = s == "all-linear" ? .allLinear : .regex(s)
        } else {
            throw AdapterError.config(path: path, reason: "missing 'target_modules'")
        }
    }

    /// The value adapter_config.json stores.
    public var json: Any {
        switch self {
        case .names(let names): names.sorted()
        case .allLinear: "all-linear"
        case .regex(let pattern): pattern
        }
    }
}

extension LoRAConfig {
    /// PEFT's `layers_to_transform`: one layer or a list, nil for all.
    static func layersToTransform(_ obj: [String: Any]) -> [Int]? {
        if let n = obj["layers_to_transform"] as? NSNumber { return [n.intValue] }
        return (obj["layers_to_transform"] as? [NSNumber])?.map(\.intValue)
    }
}

extension LoRAConfig {
    /// Reads PEFT's adapter_config.json. Fails clearly on adapter kinds and options this engine does not implement.
    public init(json data: Data, path: String) throws {
        guard let obj = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw AdapterError.config(path: path, reason: "not a JSON object")
        }
        let type = (obj["peft_type"] as? String) ?? "LORA"
        guard type == "LORA" else {
            throw AdapterError.unsupported(path: path, reason: "peft_type \(type) is not a LoRA adapter")
        }
        if let bias = obj["bias"] as? String, bias != "none" {
            throw AdapterError.unsupported(path: path, reason: "bias \"\(bias)\" is not supported (only \"none\")")
        }
        if let modules = obj["modules_to_save"] as? [Any], !modules.isEmpty {
            throw AdapterError.unsupported(path: path, reason: "modules_to_save \(modules) is not supported")
        }
        if (obj["fan_in_fan_out"] as? Bool) == true {
            throw AdapterError.unsupported(path: path, reason: "fan_in_fan_out is only for GPT-2 style Conv1D layers")
        }
        guard let r = (obj["r"] as? NSNumber).flatMap({ Int(exactly: $0.doubleValue) }), (1...Self.maxRank).contains(r) else {
            throw AdapterError.config(path: path, reason: "missing or invalid 'r' (1...\(Self.maxRank))")
        }
        // PEFT allows target_parameters alone (the experts only).
        let onlyParameters = (obj["target_modules"] == nil || obj["target_modules"] is NSNull)
            && !((obj["target_parameters"] as? [String]) ?? []).isEmpty
        let targets = onlyParameters ? Targets.names([]) : try Targets(object: obj, path: path)
        let layers = Self.layersToTransform(obj)
        let ranks = ((obj["rank_pattern"] as? [String: NSNumber]) ?? [:]).mapValues(\.doubleValue)
        let alphas = ((obj["alpha_pattern"] as? [String: NSNumber]) ?? [:]).mapValues(\.doubleValue)
        let alpha = (obj["lora_alpha"] as? NSNumber)?.doubleValue ?? 8
        let dropout = (obj["lora_dropout"] as? NSNumber)?.doubleValue ?? 0
        guard ranks.values.allSatisfy({ Int(exactly: $0).map { (1...Self.maxRank).contains($0) } ?? false }),
              ([alpha] + Array(alphas.values)).allSatisfy({ $0.isFinite && abs($0) <= 1e9 }), (0..<1).contains(dropout) else {
            throw AdapterError.config(path: path, reason: "rank_pattern, lora_alpha, alpha_pattern or lora_dropout out of range")
        }
        self.init(r: r, alpha: alpha, dropout: dropout, targetModules: targets,
                  useRSLoRA: (obj["use_rslora"] as? Bool) ?? false,
                  baseModelNameOrPath: obj["base_model_name_or_path"] as? String, layersToTransform: layers,
                  rankPattern: ranks.mapValues { Int($0) }, alphaPattern: alphas,
                  useDoRA: (obj["use_dora"] as? Bool) ?? false)
        targetParameters = (obj["target_parameters"] as? [String]) ?? []
        try Self.checkTargetParameters(targetParameters, dropout: dropout, dora: useDoRA, path: path)
    }

    /// adapter_config.json as Python PEFT writes it (the fields every PEFT release since 0.7 reads).
    public func json() -> Data {
        (try? JSONSerialization.data(withJSONObject: object(), options: [.prettyPrinted, .sortedKeys])) ?? Data()
    }

    /// adapter_config.json's object.
    public func object() -> [String: Any] {
        var obj: [String: Any] = [
            "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": r, "lora_alpha": alpha, "lora_dropout": dropout,
            "use_rslora": useRSLoRA, "use_dora": useDoRA, "bias": "none", "fan_in_fan_out": false,
            "inference_mode": true, "init_lora_weights": true, "modules_to_save": NSNull(),
            "layers_to_transform": layersToTransform.map { $0 as Any } ?? NSNull(), "layers_pattern": NSNull(),
            "rank_pattern": rankPattern, "alpha_pattern": alphaPattern, "revision": NSNull(),
            "base_model_name_or_path": baseModelNameOrPath.map { $0 as Any } ?? NSNull(),
        ]
        obj["target_modules"] = targetModules.json
        obj["target_parameters"] = targetParameters.isEmpty ? NSNull() : targetParameters.sorted()   // as PEFT saves them
        // lora_alpha is an int in PEFT when it is whole.
        if let whole = Int(exactly: alpha) { obj["lora_alpha"] = whole }
        return obj
    }
}
