import Foundation
import Transformer

/// Resolves PEFT's `target_modules` (plus `layers_to_transform`, `rank_pattern`, `alpha_pattern`) against a
/// model's projections, as PEFT does: a name in a list matches a module whose full name equals it or ends
/// with "." + name; a single string is a regex that must match the whole module name; `all-linear` is every
/// projection (never the LM head).
public enum TargetModules {
    public static func sites(for config: LoRAConfig, model: ModelConfig) throws -> [ProjectionSite] {
        try sites(config.targetModules, layers: config.layersToTransform, model: model)
    }

    /// The projections `targets` names (by the model's own module names), restricted to `layers` when given, in
    /// model order.
    public static func sites(_ targets: LoRAConfig.Targets, layers: [Int]? = nil, model: ModelConfig) throws -> [ProjectionSite] {
        let layerCount = model.layerCount, layout = model.layout
        let all = (0..<layerCount).flatMap { l in model.projections(layer: l).map { ProjectionSite(layer: l, projection: $0) } }
        let available = Array(Set(all.map { String(layout.moduleName($0).split(separator: ".").last ?? "") })).sorted()
            + (model.moe == nil ? [] : ["(a mixture's experts: --target-parameters / target_parameters)"])
        var chosen: [ProjectionSite]
        switch targets {
        case .allLinear:
            chosen = all
        case .names(let names):
            chosen = all.filter { site in names.contains { matchesSuffix(layout.moduleName(site), $0) } }
            if chosen.isEmpty {
                throw AdapterError.noTargets(requested: names, available: available)
            }
        case .regex(let pattern):
            guard let re = try? NSRegularExpression(pattern: "^(?:\(pattern))$") else {
                throw AdapterError.config(path: "target_modules", reason: "'\(pattern)' is not a valid regular expression")
            }
            chosen = all.filter { site in
                let n = layout.moduleName(site)
                return re.firstMatch(in: n, range: NSRange(n.startIndex..., in: n)) != nil
            }
            if chosen.isEmpty {
                throw AdapterError.noTargets(requested: [pattern], available: available)
            }
        }
        if let layers {
            if let bad = layers.first(where: { $0 < 0 || $0 >= layerCount }) {
                throw AdapterError.config(path: "layers_to_transform", reason: "layer \(bad) does not exist (the model has \(layerCount) layers)")
            }
            chosen = chosen.filter { layers.contains($0.layer) }
        }
        return chosen.sorted()
    }

    static func matchesSuffix(_ moduleName: String, _ target: String) -> Bool {
        moduleName == target || moduleName.hasSuffix("." + target)
    }

    /// PEFT's pattern lookup: the first key (in sorted order) that matches the end of the module name.
    static func patternValue<T>(_ patterns: [String: T], moduleName: String) -> T? {
        for key in patterns.keys.sorted() {
            guard let re = try? NSRegularExpression(pattern: "^(?:.*\\.)?(?:\(key))$") else { continue }
            if re.firstMatch(in: moduleName, range: NSRange(moduleName.startIndex..., in: moduleName)) != nil {
                return patterns[key]
            }
        }
        return nil
    }
}
