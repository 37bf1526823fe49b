import Adapters
import ArgumentParser
import Foundation
import Tokenizer
import Transformer

/// `--method` and the flags of each method (`train`, and the methods `demo` trains). A flag given to a method it
/// does not belong to is an error rather than silently ignored.
struct MethodOptions: ParsableArguments {
    @Option(help: "Fine-tuning method: lora, dora, ia3, prompt (prompt tuning), ptuning (P-tuning), prefix (prefix tuning / P-tuning v2), adapter (bottleneck adapters), full (every weight) or freeze (the last layers).")
    var method: String = "lora"
    @Option(help: "lora, dora: rank (default 8).") var loraR: Int?
    @Option(help: "lora, dora: alpha; scaling = alpha / r (default 16).") var loraAlpha: Double?
    @Option(help: "lora, dora: dropout on the adapter input (default 0.05; 0 with --target-parameters, which takes none).") var loraDropout: Double?
    @Flag(help: "lora, dora: rsLoRA scaling alpha / sqrt(r).") var useRslora = false
    @Option(help: "lora, dora, ia3: projections to adapt, a comma list (q_proj,v_proj,...) or all-linear (default q_proj,v_proj, or the fused q/k/v module such as c_attn, wqkv, qkv_proj, W_pack; ia3: k_proj,v_proj,down_proj or the fused q/k/v and the MLP output).")
    var targetModules: String?
    @Option(help: "lora: also LoRA on a mixture's stacked experts and router, PEFT's target_parameters: any of mlp.experts.gate_up_proj, mlp.experts.down_proj, mlp.gate.weight, comma separated (Qwen2-MoE, Qwen3-MoE, OLMoE; each expert e gets W_e + s B_e A_e; no dropout). With --target-modules none, these alone.")
    var targetParameters: String?
    @Option(help: "ia3: target modules whose input is scaled instead of their output (default down_proj).") var feedforwardModules: String?
    @Option(help: "prompt, ptuning, prefix: virtual tokens (default 20).") var numVirtualTokens: Int?
    @Option(help: "prompt: random (normal) or text (the embeddings of --prompt-init-text).") var promptInit: String?
    @Option(help: "prompt: the text whose token embeddings start the soft prompt (with --prompt-init text).") var promptInitText: String?
    @Option(help: "ptuning: the prompt encoder, mlp (the default) or lstm.") var encoderType: String?
    @Option(help: "ptuning, prefix: hidden size of the encoder (default: the model's hidden size; for prefix, its key/value width).")
    var encoderHiddenSize: Int?
    @Flag(help: "prefix: reparameterise the prefix through a two-layer MLP (tanh).") var prefixProjection = false
    @Option(help: "adapter: houlsby (after attention and feed-forward), pfeiffer (after feed-forward) or parallel (default houlsby).")
    var adapterConfig: String?
    @Option(help: "adapter: hidden size / bottleneck width (default 16; parallel: 2).") var reductionFactor: Double?
    @Option(help: "adapter: relu, swish or gelu (default: swish for houlsby, relu otherwise).") var nonLinearity: String?
    @Option(help: "freeze: the last N layers train (a negative N: the first -N; default 2).") var freezeTrainableLayers: Int?
    @Option(help: "freeze: what trains in those layers: all, mlp, self_attn, input_layernorm, post_attention_layernorm or projection names, comma separated (default all).")
    var freezeTrainableModules: String?
    @Option(help: "freeze: also train these, comma separated: embed_tokens, norm, lm_head.") var freezeExtraModules: String?

    /// The methods `--method` accepts.
    static var methodList: String { AdapterMethod.allCases.map(\.rawValue).joined(separator: ", ") }

    var resolvedMethod: AdapterMethod {
        get throws {
            guard let m = AdapterMethod(rawValue: method) else {
                throw ValidationError("unknown --method '\(method)'; choose one of: \(Self.methodList)")
            }
            return m
        }
    }

    /// The flags given, with the methods each belongs to.
    private var givenFlags: [(flag: String, methods: [AdapterMethod])] {
        var list: [(String, [AdapterMethod])] = []
        if loraR != nil { list.append(("--lora-r", [.lora, .dora])) }
        if loraAlpha != nil { list.append(("--lora-alpha", [.lora, .dora])) }
        if loraDropout != nil { list.append(("--lora-dropout", [.lora, .dora])) }
        if useRslora { list.append(("--use-rslora", [.lora, .dora])) }
        if targetModules != nil { list.append(("--target-modules", [.lora, .dora, .ia3])) }
        if targetParameters != nil { list.append(("--target-parameters", [.lora])) }
        if feedforwardModules != nil { list.append(("--feedforward-modules", [.ia3])) }
        if numVirtualTokens != nil { list.append(("--num-virtual-tokens", [.prompt, .ptuning, .prefix])) }
        if promptInit != nil { list.append(("--prompt-init", [.prompt])) }
        if promptInitText != nil { list.append(("--prompt-init-text", [.prompt])) }
        if encoderType != nil { list.append(("--encoder-type", [.ptuning])) }
        if encoderHiddenSize != nil { list.append(("--encoder-hidden-size", [.ptuning, .prefix])) }
        if prefixProjection { list.append(("--prefix-projection", [.prefix])) }
        if adapterConfig != nil { list.append(("--adapter-config", [.adapter])) }
        if reductionFactor != nil { list.append(("--reduction-factor", [.adapter])) }
        if nonLinearity != nil { list.append(("--non-linearity", [.adapter])) }
        if freezeTrainableLayers != nil { list.append(("--freeze-trainable-layers", [.freeze])) }
        if freezeTrainableModules != nil { list.append(("--freeze-trainable-modules", [.freeze])) }
        if freezeExtraModules != nil { list.append(("--freeze-extra-modules", [.freeze])) }
        return list
    }

    func validate() throws {
        let m = try resolvedMethod
        for (flag, methods) in givenFlags where !methods.contains(m) {
            throw ValidationError("\(flag) belongs to --method \(methods.map(\.rawValue).joined(separator: "/")), not \(m.rawValue)")
        }
        if let n = numVirtualTokens, n < 1 || n > PromptLearningConfig.maxVirtualTokens {
            throw ValidationError("--num-virtual-tokens must be within 1...\(PromptLearningConfig.maxVirtualTokens)")
        }
        if let p = promptInit, !["random", "text"].contains(p) { throw ValidationError("--prompt-init must be random or text") }
        if promptInit == "text", (promptInitText ?? "").isEmpty { throw ValidationError("--prompt-init text needs --prompt-init-text") }
        if promptInitText != nil, promptInit != "text" { throw ValidationError("--prompt-init-text needs --prompt-init text") }
        if let e = encoderType, !["mlp", "lstm"].contains(e) { throw ValidationError("--encoder-type must be mlp or lstm") }
        if let h = encoderHiddenSize, h < 1 || h > 65_536 { throw ValidationError("--encoder-hidden-size must be within 1...65536") }
        if let c = adapterConfig, BottleneckConfig.Placement(rawValue: c) == nil {
            throw ValidationError("unknown --adapter-config '\(c)'; choose houlsby, pfeiffer or parallel")
        }
        if let r = reductionFactor, !(r >= 1 && r <= 65_536) { throw ValidationError("--reduction-factor must be within 1...65536") }
        if let n = nonLinearity, BottleneckConfig.Activation(rawValue: n) == nil {
            throw ValidationError("unknown --non-linearity '\(n)'; choose relu, swish or gelu")
        }
    }

    /// The learning rate a method trains well with when --lr is not given (PEFT's examples and the papers' values).
    var defaultLearningRate: Double {
        switch (try? resolvedMethod) ?? .lora {
        case .lora, .dora: 2e-4
        case .ia3: 3e-3
        case .prompt: 3e-2
        case .ptuning: 1e-3
        case .prefix: 1e-2
        case .adapter: 1e-4
        case .full, .freeze: 1e-5
        }
    }

    /// A freshly initialised adapter of the chosen method for `model` (PEFT's initialisation for each method).
    func makeAdapter(model: TransformerModel, tokenizer: Tokenizer, seed: UInt64, baseModel: String,
                     baseDirectory: URL) throws -> TrainableAdapter {
        let method = try resolvedMethod
        let c = model.config
        switch method {
        case .lora, .dora:
            let parameters = (targetParameters ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            let modules = targetModules == "none" && !parameters.isEmpty ? LoRAConfig.Targets.names([])
                : LoRAConfig.targets(fromList: targetModules ?? c.defaultLoRATargets.joined(separator: ","))
            var lora = LoRAConfig(r: loraR ?? 8, alpha: loraAlpha ?? 16, dropout: loraDropout ?? (parameters.isEmpty ? 0.05 : 0),
                                  targetModules: modules, useRSLoRA: useRslora, useDoRA: method == .dora)
            lora.targetParameters = parameters
            let adapter = try LoRAAdapter(config: lora, model: c)
            adapter.initialize(seed: seed, weights: model.weights)
            return adapter
        case .ia3:
            let defaults = c.defaultIA3Targets
            let ff = (feedforwardModules ?? defaults.feedforward.joined(separator: ",")).split(separator: ",")
                .map { $0.trimmingCharacters(in: .whitespaces) }
            let config = IA3Config(targetModules: LoRAConfig.targets(fromList: targetModules ?? defaults.targets.joined(separator: ",")),
                                   feedforwardModules: ff.filter { !$0.isEmpty })
            try IA3Adapter.validate(config)
            return try IA3Adapter(config: config, model: c)
        case .prompt, .ptuning, .prefix:
            var config = PromptLearningConfig(method: method, virtualTokens: numVirtualTokens ?? 20)
            config.encoderHiddenSize = encoderHiddenSize
            config.prefixProjection = prefixProjection
            if encoderType == "lstm" { config.encoderType = .lstm }
            var textIDs: [Int32]? = nil
            if promptInit == "text", let text = promptInitText {
                config.promptInit = .text
                config.initText = text
                config.tokenizerName = baseModel
                textIDs = tokenizer.encode(text)
                guard !(textIDs ?? []).isEmpty else { throw ValidationError("--prompt-init-text encodes to no tokens") }
            }
            let adapter = try PromptLearningAdapter(config: config, model: c)
            adapter.initialize(seed: seed, textIDs: textIDs, embedding: model.weights.embedding)
            return adapter
        case .adapter:
            var config = BottleneckConfig(BottleneckConfig.Placement(rawValue: adapterConfig ?? "houlsby") ?? .houlsby)
            if let r = reductionFactor { config.reductionFactor = r }
            if let n = nonLinearity.flatMap(BottleneckConfig.Activation.init(rawValue:)) { config.nonLinearity = n }
            let adapter = try BottleneckAdapter(config: config, model: c)
            adapter.initialize(seed: seed)
            return adapter
        case .full:
            return try BaseFineTuning(model: model, baseDirectory: baseDirectory, freeze: nil)
        case .freeze:
            func list(_ s: String?) -> [String]? {
                s.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }
            }
            let freeze = FreezeConfig(trainableLayers: freezeTrainableLayers ?? 2,
                                      trainableModules: list(freezeTrainableModules) ?? ["all"],
                                      extraModules: list(freezeExtraModules) ?? [])
            return try BaseFineTuning(model: model, baseDirectory: baseDirectory, freeze: freeze)
        }
    }
}
