import Foundation
import Transformer

/// Bottleneck adapter settings in the AdapterHub `adapters` library's vocabulary (its `BnConfig` fields that matter
/// for decoder models, whose layers have no post-norm: `layer_norm` is None there).
public struct BottleneckConfig: Sendable, Equatable {
    public enum Placement: String, Sendable { case houlsby, pfeiffer, parallel }
    public enum Activation: String, Sendable { case relu, swish, gelu }

    /// After attention (`mh_adapter`) and/or after the feed-forward block (`output_adapter`).
    public var mhAdapter: Bool
    public var outputAdapter: Bool
    /// Sequential: the adapter reads the block output plus its residual (`original_ln_before`, Pfeiffer) or the block
    /// output alone (Houlsby). Parallel: it reads the block's input residual (`is_parallel`).
    public var originalLnBefore: Bool
    public var isParallel: Bool
    public var reductionFactor: Double
    public var nonLinearity: Activation
    public var scaling: Double
    /// `bert` (weights N(0, 0.02), zero biases) or `mam_adapter` (down Kaiming-uniform, up zero).
    public var initWeights: String
    public var leaveOut: [Int]

    /// The library's names for the three placements.
    public var architectureName: String {
        isParallel ? "par_bn" : (mhAdapter ? "double_seq_bn" : "seq_bn")
    }

    /// The library's defaults for each placement (`DoubleSeqBnConfig`, `SeqBnConfig`, `ParBnConfig`).
    public init(_ placement: Placement) {
        switch placement {
        case .houlsby:
            (mhAdapter, outputAdapter, originalLnBefore, isParallel) = (true, true, false, false)
            (reductionFactor, nonLinearity, scaling, initWeights) = (16, .swish, 1, "bert")
        case .pfeiffer:
            (mhAdapter, outputAdapter, originalLnBefore, isParallel) = (false, true, true, false)
            (reductionFactor, nonLinearity, scaling, initWeights) = (16, .relu, 1, "bert")
        case .parallel:
            (mhAdapter, outputAdapter, originalLnBefore, isParallel) = (false, true, false, true)
            (reductionFactor, nonLinearity, scaling, initWeights) = (2, .relu, 4, "mam_adapter")
        }
        leaveOut = []
    }

    /// The bottleneck width for hidden size `c` (the library's `int(c // reduction_factor)`, at least 1).
    public func downSample(_ c: Int) -> Int { max(1, Int((Double(c) / reductionFactor).rounded(.down))) }

    /// Reads the `config` object of an AdapterHub adapter_config.json; every option this engine does not compute
    /// exactly is refused by name.
    public init(object obj: [String: Any], path: String) throws {
        func flag(_ key: String, _ fallback: Bool) -> Bool { (obj[key] as? Bool) ?? fallback }
        if let arch = obj["architecture"] as? String, arch != "bottleneck" {
            throw AdapterError.unsupported(path: path, reason: "AdapterHub architecture '\(arch)' is not supported (bottleneck adapters only)")
        }
        let fixed: [(String, Bool)] = [("ln_before", false), ("ln_after", false), ("adapter_residual_before_ln", false),
                                       ("use_gating", false), ("phm_layer", false), ("original_ln_after", true)]
        for (key, expected) in fixed where flag(key, expected) != expected {
            throw AdapterError.unsupported(path: path, reason: "bottleneck option \(key) = \(!expected) is not supported")
        }
        if let r = obj["residual_before_ln"], (r as? Bool) != true {
            throw AdapterError.unsupported(path: path, reason: "bottleneck option residual_before_ln = \(r) is not supported")
        }
        if let d = (obj["stochastic_depth"] as? NSNumber)?.doubleValue, d != 0 {
            throw AdapterError.unsupported(path: path, reason: "stochastic_depth \(d) is not supported")
        }
        if obj["inv_adapter"] is String {
            throw AdapterError.unsupported(path: path, reason: "invertible adapters (inv_adapter) are not supported")
        }
        mhAdapter = flag("mh_adapter", false)
        outputAdapter = flag("output_adapter", true)
        originalLnBefore = flag("original_ln_before", false)
        isParallel = flag("is_parallel", false)
        guard mhAdapter || outputAdapter else {
            throw AdapterError.config(path: path, reason: "neither mh_adapter nor output_adapter is set: the adapter attaches nowhere")
        }
        if let r = (obj["reduction_factor"] as? NSNumber)?.doubleValue {
            reductionFactor = r
        } else if let map = obj["reduction_factor"] as? [String: Any], map.count == 1, let r = (map["default"] as? NSNumber)?.doubleValue {
            reductionFactor = r
        } else {
            throw AdapterError.unsupported(path: path, reason: "reduction_factor must be a number (per-layer mappings are not supported)")
        }
        guard reductionFactor > 0, reductionFactor.isFinite else { throw AdapterError.config(path: path, reason: "reduction_factor must be positive") }
        let name = ((obj["non_linearity"] as? String) ?? "relu").lowercased()
        guard let act = Activation(rawValue: name == "silu" ? "swish" : name) else {
            throw AdapterError.unsupported(path: path, reason: "non_linearity '\(name)' is not supported (relu, swish, gelu)")
        }
        nonLinearity = act
        guard let s = (obj["scaling"] as? NSNumber)?.doubleValue ?? (obj["scaling"] == nil ? 1 : nil) else {
            throw AdapterError.unsupported(path: path, reason: "scaling '\(obj["scaling"] ?? "")' is not supported (a number only)")
        }
        scaling = s
        initWeights = (obj["init_weights"] as? String) ?? "bert"
        leaveOut = (obj["leave_out"] as? [NSNumber])?.map(\.intValue) ?? []
        if let dropout = (obj["dropout"] as? NSNumber)?.doubleValue, dropout != 0 {
            throw AdapterError.unsupported(path: path, reason: "adapter dropout \(dropout) is not supported")
        }
    }

    /// The `config` object as `adapters` 1.3 writes it (all BnConfig fields).
    public func object() -> [String: Any] {
        [
            "adapter_residual_before_ln": false, "cross_adapter": false, "dropout": 0.0, "factorized_phm_W": true,
            "factorized_phm_rule": false, "hypercomplex_nonlinearity": "glorot-uniform", "init_weights": initWeights,
            "init_weights_seed": NSNull(), "inv_adapter": NSNull(), "inv_adapter_reduction_factor": NSNull(),
            "is_parallel": isParallel, "learn_phm": true, "leave_out": leaveOut, "ln_after": false, "ln_before": false,
            "mh_adapter": mhAdapter, "non_linearity": nonLinearity.rawValue, "original_ln_after": true,
            "original_ln_before": originalLnBefore, "output_adapter": outputAdapter, "phm_bias": true,
            "phm_c_init": "normal", "phm_dim": 4, "phm_init_range": 0.0001, "phm_layer": false, "phm_rank": 1,
            "reduction_factor": Int(exactly: reductionFactor).map { $0 as Any } ?? reductionFactor,
            "residual_before_ln": true, "scaling": scaling, "shared_W_phm": false, "shared_phm_rule": true,
            "stochastic_depth": 0.0, "use_gating": false,
        ]
    }
}
