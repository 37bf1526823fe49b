import Foundation
import Transformer

/// Settings of the prompt-learning methods (prompt tuning, P-tuning, prefix tuning) in PEFT's vocabulary.
public struct PromptLearningConfig: Sendable, Equatable {
    public enum PromptInit: String, Sendable { case random = "RANDOM", text = "TEXT" }
    public enum EncoderType: String, Sendable { case mlp = "MLP", lstm = "LSTM" }

    public var method: AdapterMethod
    public var virtualTokens: Int
    /// Prompt tuning: how the soft prompt starts (random normal, or the embeddings of `initText`'s tokens).
    public var promptInit: PromptInit = .random
    public var initText: String?
    public var tokenizerName: String?
    /// P-tuning: the reparameterisation network.
    public var encoderType: EncoderType = .mlp
    /// P-tuning / prefix tuning: hidden width of the encoder (PEFT's default: `token_dim`).
    public var encoderHiddenSize: Int?
    /// Prefix tuning: reparameterise the prefix through an MLP.
    public var prefixProjection = false

    /// Most virtual tokens accepted.
    public static let maxVirtualTokens = 65_536

    public init(method: AdapterMethod, virtualTokens: Int = 20) {
        self.method = method
        self.virtualTokens = virtualTokens
    }

    /// Width of one virtual token's row: the hidden size for input prompts; all layers' keys and values for
    /// prefixes (PEFT's `num_layers * 2 * token_dim`, token_dim = key/value width under grouped-query attention).
    public func width(_ model: ModelConfig) -> Int {
        method == .prefix ? model.layerCount * 2 * model.kvDim : model.hiddenSize
    }

    /// PEFT's `token_dim` for this model.
    public func tokenDim(_ model: ModelConfig) -> Int { method == .prefix ? model.kvDim : model.hiddenSize }

    public func validate(model: ModelConfig?) throws {
        guard virtualTokens >= 1 && virtualTokens <= Self.maxVirtualTokens else {
            throw AdapterError.config(path: "--num-virtual-tokens", reason: "must be within 1...\(Self.maxVirtualTokens)")
        }
        if let model, virtualTokens >= model.maxPositionEmbeddings {
            throw AdapterError.config(path: "--num-virtual-tokens", reason: "\(virtualTokens) virtual tokens leave no room in the model's context of \(model.maxPositionEmbeddings)")
        }
        if let h = encoderHiddenSize, !(1...65_536).contains(h) {
            throw AdapterError.config(path: "--encoder-hidden-size", reason: "must be within 1...65536")
        }
        if promptInit == .text, (initText ?? "").isEmpty {
            throw AdapterError.config(path: "--prompt-init-text", reason: "--prompt-init text needs a non-empty --prompt-init-text")
        }
    }

    /// Reads PEFT's adapter_config.json object.
    public init(object obj: [String: Any], method: AdapterMethod, path: String) throws {
        guard let n = (obj["num_virtual_tokens"] as? NSNumber).flatMap({ Int(exactly: $0.doubleValue) }),
              (1...Self.maxVirtualTokens).contains(n) else {
            throw AdapterError.config(path: path, reason: "missing or invalid 'num_virtual_tokens'")
        }
        self.init(method: method, virtualTokens: n)
        if let s = obj["prompt_tuning_init"] as? String { promptInit = PromptInit(rawValue: s) ?? .random }
        initText = obj["prompt_tuning_init_text"] as? String
        tokenizerName = obj["tokenizer_name_or_path"] as? String
        if let s = obj["encoder_reparameterization_type"] as? String { encoderType = EncoderType(rawValue: s) ?? .mlp }
        encoderHiddenSize = (obj["encoder_hidden_size"] as? NSNumber)?.intValue
        prefixProjection = (obj["prefix_projection"] as? Bool) ?? false
        if let subs = (obj["num_transformer_submodules"] as? NSNumber)?.intValue, subs != 1 {
            throw AdapterError.unsupported(path: path, reason: "num_transformer_submodules \(subs) is for encoder-decoder models")
        }
    }

    /// The model sizes a saved config records, checked against `model`; each difference is one problem.
    static func modelProblems(_ obj: [String: Any], method: AdapterMethod, model: ModelConfig) -> [String] {
        var problems: [String] = []
        let expected: [(String, Int)] = [
            ("token_dim", method == .prefix ? model.kvDim : model.hiddenSize), ("num_layers", model.layerCount),
            ("num_attention_heads", method == .prefix ? model.kvHeadCount : model.headCount),
        ]
        for (key, value) in expected {
            if let v = (obj[key] as? NSNumber)?.intValue, v != value {
                problems.append("\(key) is \(v), this model needs \(value)")
            }
        }
        return problems
    }

    /// adapter_config.json as PEFT 0.21 writes it.
    public func object(model: ModelConfig, baseModel: String?) -> [String: Any] {
        var obj: [String: Any] = [
            "peft_type": method.peftType, "task_type": "CAUSAL_LM", "num_virtual_tokens": virtualTokens,
            "token_dim": tokenDim(model), "num_transformer_submodules": 1, "num_layers": model.layerCount,
            "num_attention_heads": method == .prefix ? model.kvHeadCount : model.headCount,
            "inference_mode": true, "modules_to_save": NSNull(), "revision": NSNull(),
            "base_model_name_or_path": baseModel.map { $0 as Any } ?? NSNull(),
        ]
        switch method {
        case .prompt:
            obj["prompt_tuning_init"] = promptInit.rawValue
            obj["prompt_tuning_init_text"] = initText.map { $0 as Any } ?? NSNull()
            obj["tokenizer_name_or_path"] = tokenizerName.map { $0 as Any } ?? NSNull()
            obj["tokenizer_kwargs"] = NSNull()
        case .ptuning:
            obj["encoder_reparameterization_type"] = encoderType.rawValue
            obj["encoder_hidden_size"] = encoderHiddenSize ?? tokenDim(model)
            obj["encoder_num_layers"] = 2
            obj["encoder_dropout"] = 0.0
        case .prefix:
            obj["encoder_hidden_size"] = encoderHiddenSize ?? tokenDim(model)
            obj["prefix_projection"] = prefixProjection
            obj["init_weights"] = NSNull()
        default: break
        }
        return obj
    }
}
