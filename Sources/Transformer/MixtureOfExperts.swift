import Foundation
import Kernels

/// One gated MLP: down(act(gate(x)) * up(x)).
public struct ExpertWeights: @unchecked Sendable {
    public var gate: Linear
    public var up: Linear
    public var down: Linear

    public init(gate: Linear, up: Linear, down: Linear) {
        (self.gate, self.up, self.down) = (gate, up, down)
    }

    public var byteCount: Int { [gate, up, down].reduce(0) { $0 + $1.weight.byteCount } }
}

/// Sees the inputs of a mixture-of-experts layer's experts during a forward pass (pruning statistics): set as the
/// model's `expertObserver`.
public protocol ExpertObserver: AnyObject {
    /// `x` [rows, cols]: the rows routed to expert `expert` of layer `layer` as its gate and up projections read them
    /// (`down` false), or its down projection's input act(gate) * up (`down` true); `expert` -1 is the shared expert.
    func observe(layer: Int, expert: Int, down: Bool, x: UnsafePointer<Float>, rows: Int, cols: Int)
}

/// The frozen weights of a mixture-of-experts MLP (Qwen2-MoE, Qwen3-MoE).
public struct MoEWeights: @unchecked Sendable {
    /// [E, C]: router logits = x · router^T.
    public var router: WeightMatrix
    public var experts: [ExpertWeights]
    /// Qwen2-MoE's always-on expert and its sigmoid gate [1, C].
    public var shared: ExpertWeights?
    public var sharedGate: WeightMatrix?

    public init(router: WeightMatrix, experts: [ExpertWeights], shared: ExpertWeights?, sharedGate: WeightMatrix?) {
        self.router = router
        self.experts = experts
        self.shared = shared
        self.sharedGate = sharedGate
    }

    public var byteCount: Int {
        router.byteCount + experts.reduce(0) { $0 + $1.byteCount } + (shared?.byteCount ?? 0) + (sharedGate?.byteCount ?? 0)
    }
}

/// The load-balancing loss of a training pass (Switch Transformer's, as transformers' `load_balancing_loss_func`
/// computes it over every sparse layer's rows together): E * sum_e f_e * P_e with f_e the share of top-k slots that
/// chose expert e and P_e its mean router probability. Its gradient reaches each row's router logits through P_e only.
public final class RouterStatistics {
    let experts: Int
    var counts: [Double] = []
    var probabilitySums: [Double] = []
    var rows = 0
    /// Rows are counted only in a pass's first forward (not when checkpointing recomputes a layer).
    var collecting = false
    /// d(weighted aux loss)/d(probability of expert e), the same for every row of every sparse layer.
    var probabilityGradient: [Float] = []
    /// The last pass's loss (unweighted), nil when it was not computed.
    public private(set) var auxLoss: Double?

    init(experts: Int) { self.experts = experts }

    /// Starts counting a pass's rows.
    func begin() {
        counts = Array(repeating: 0, count: experts)
        probabilitySums = Array(repeating: 0, count: experts)
        rows = 0
        probabilityGradient = []
        collecting = true
    }

    /// Ends collection: the loss, and its gradient scaled by `weight` (the coefficient the total loss carries).
    func finish(weight: Float) {
        collecting = false
        guard rows > 0 else { auxLoss = nil; return }
        let n = Double(rows), e = Double(experts)
        auxLoss = e * zip(counts, probabilitySums).reduce(0) { $0 + ($1.0 / n) * ($1.1 / n) }
        probabilityGradient = counts.map { Float(Double(weight) * e * $0 / (n * n)) }
    }

    func end() { probabilityGradient = [] }
}

/// The routing of a pass: for each row its top-k experts and their weights, and the router's probabilities.
final class Routing {
    let topK: Int
    let experts: Int
    /// Shared by every layer's routing of one set of buffers.
    var statistics: RouterStatistics?
    var probabilities: [Float] = []   // [N, E]
    var chosen: [Int32] = []          // [N, k]
    var weights: [Float] = []         // [N, k]
    /// Training: each expert's gate and up outputs for its rows, experts in order ([N * k, I] each), and the shared
    /// expert's ([N, S] each), so the backward multiplies no expert forward again.
    var gate = FloatBuffer(count: 0), up = FloatBuffer(count: 0)
    var sharedGate = FloatBuffer(count: 0), sharedUp = FloatBuffer(count: 0)

    /// Room for the saved outputs of passes of up to `rows` rows of `config`'s mixture.
    func reserveSaved(rows: Int, config: ModelConfig) {
        let slots = rows * topK, width = config.moe?.intermediateSize ?? 0, sharedWidth = config.moe?.sharedIntermediateSize ?? 0
        if gate.count < slots * width { (gate, up) = (FloatBuffer(count: slots * width), FloatBuffer(count: slots * width)) }
        if sharedGate.count < rows * sharedWidth {
            (sharedGate, sharedUp) = (FloatBuffer(count: rows * sharedWidth), FloatBuffer(count: rows * sharedWidth))
        }
    }

    init(topK: Int, experts: Int) {
        self.topK = topK
        self.experts = experts
    }

    /// Rows routed to expert e, with the slot (row * k + j) each came through, in row order.
    func assignments() -> [[Int]] {
        var lists = [[Int]](repeating: [], count: experts)
        for (slot, e) in chosen.enumerated() { lists[Int(e)].append(slot) }
        return lists
    }
}

/// Work buffers of the mixture (grown on demand, kept between passes).
final class MoEScratch {
    var x = FloatBuffer(count: 0), g = FloatBuffer(count: 0), u = FloatBuffer(count: 0), a = FloatBuffer(count: 0)
    var y = FloatBuffer(count: 0), dy = FloatBuffer(count: 0), dg = FloatBuffer(count: 0), du = FloatBuffer(count: 0)
    var da = FloatBuffer(count: 0), dx = FloatBuffer(count: 0)

    /// Room for passes of up to `n` rows of `config`'s mixture.
    func reserve(rows n: Int, config: ModelConfig) {
        let c = config.hiddenSize, i = Self.width(config)
        if x.count < n * c { (x, y, dy, dx) = (FloatBuffer(count: n * c), FloatBuffer(count: n * c), FloatBuffer(count: n * c), FloatBuffer(count: n * c)) }
        if g.count < n * i {
            (g, u, a) = (FloatBuffer(count: n * i), FloatBuffer(count: n * i), FloatBuffer(count: n * i))
            (dg, du, da) = (FloatBuffer(count: n * i), FloatBuffer(count: n * i), FloatBuffer(count: n * i))
        }
    }

    /// The floats `reserve(rows:config:)` holds: four [n, C], six [n, widest expert].
    static func floatCount(rows n: Int, config: ModelConfig) -> Int { n * (4 * config.hiddenSize + 6 * width(config)) }

    /// The widest expert: the routed ones' or the shared one's.
    private static func width(_ config: ModelConfig) -> Int {
        max(config.moe?.intermediateSize ?? 0, config.moe?.sharedIntermediateSize ?? 0)
    }
}

extension TransformerModel {
    /// Routes rows of x [n, C]: softmax over the router's logits, the top k, renormalised when the config says so.
    func route(_ moe: MoEWeights, layer l: Int, x: UnsafePointer<Float>, rows n: Int, into r: Routing, lora: ExpertAdapter? = nil) {
        let e = r.experts, k = r.topK
        var logits = [Float](repeating: 0, count: n * e)
        logits.withUnsafeMutableBufferPointer {
            moe.router.forward(x, rows: n, into: $0.baseAddress!)
            if let lora, lora.adaptsRouter(layer: l) { lora.addRouter(layer: l, x: x, rows: n, logits: $0.baseAddress!) }
        }
        r.probabilities = [Float](repeating: 0, count: n * e)
        r.chosen = [Int32](repeating: 0, count: n * k)
        r.weights = [Float](repeating: 0, count: n * k)
        let normalize = config.moe?.normalizeTopK ?? false
        for row in 0..<n {
            let z = logits[(row * e)..<((row + 1) * e)], top = z.max() ?? 0
            var sum = 0.0
            for j in 0..<e { sum += Double(expf(z[row * e + j] - top)) }
            for j in 0..<e { r.probabilities[row * e + j] = Float(Double(expf(z[row * e + j] - top)) / sum) }
            // The k largest (the lower index first among equals, as a stable descending sort).
            let order = (0..<e).sorted { r.probabilities[row * e + $0] > r.probabilities[row * e + $1] }
            var picked: Float = 0
            for j in 0..<k {
                r.chosen[row * k + j] = Int32(order[j])
                r.weights[row * k + j] = r.probabilities[row * e + order[j]]
                picked += r.weights[row * k + j]
            }
            if normalize { for j in 0..<k { r.weights[row * k + j] /= picked } }
        }
        if let st = r.statistics, st.collecting {
            st.rows += n
            for row in 0..<n {
                for j in 0..<k { st.counts[Int(r.chosen[row * k + j])] += 1 }
                for j in 0..<e { st.probabilitySums[j] += Double(r.probabilities[row * e + j]) }
            }
        }
    }

    /// out[n, C] = the mixture's output for the normed rows x [n, C]; `routing` keeps the choice for the backward,
    /// and with `save` the experts' gate and up outputs too.
    func mixtureForward(_ moe: MoEWeights, layer l: Int, x: UnsafePointer<Float>, rows n: Int, out: UnsafeMutablePointer<Float>,
                        routing r: Routing, scratch s: MoEScratch, exact: Bool, save: Bool = false, experts lora: ExpertAdapter? = nil) {
        let adapted = lora?.adaptsExperts(layer: l) ?? (gateUp: false, down: false)
        let c = config.hiddenSize, iw = config.moe?.intermediateSize ?? 0, sw = config.moe?.sharedIntermediateSize ?? 0
        route(moe, layer: l, x: x, rows: n, into: r, lora: lora)
        s.reserve(rows: n, config: config)
        if save { r.reserveSaved(rows: n, config: config) }
        out.update(repeating: 0, count: n * c)
        var at = 0
        for (e, slots) in r.assignments().enumerated() where !slots.isEmpty {
            let m = slots.count
            for (j, slot) in slots.enumerated() { (s.x.pointer + j * c).update(from: x + (slot / r.topK) * c, count: c) }
            expertForward(moe.experts[e], x: s.x.pointer, rows: m, s, exact: exact, layer: l, expert: e, lora: lora, adapted: adapted)
            if save {
                (r.gate.pointer + at * iw).update(from: s.g.pointer, count: m * iw)
                (r.up.pointer + at * iw).update(from: s.u.pointer, count: m * iw)
            }
            at += m
            for (j, slot) in slots.enumerated() {
                Ops.axpy(r.weights[slot], s.y.pointer + j * c, out + (slot / r.topK) * c, count: c)
            }
        }
        if let shared = moe.shared, let gate = moe.sharedGate {
            expertForward(shared, x: x, rows: n, s, exact: exact, layer: l, expert: -1)
            if save {
                r.sharedGate.copy(from: s.g.pointer, count: n * sw)
                r.sharedUp.copy(from: s.u.pointer, count: n * sw)
            }
            var logit = [Float](repeating: 0, count: n)
            logit.withUnsafeMutableBufferPointer { gate.forward(x, rows: n, into: $0.baseAddress!) }
            for row in 0..<n { Ops.axpy(1 / (1 + expf(-logit[row])), s.y.pointer + row * c, out + row * c, count: c) }
        }
    }

    /// s.y [m, C] = expert(x [m, C]), keeping s.g, s.u and s.a (= act(g) * u).
    private func expertForward(_ w: ExpertWeights, x: UnsafePointer<Float>, rows m: Int, _ s: MoEScratch, exact: Bool,
                               layer: Int, expert: Int, lora: ExpertAdapter? = nil, adapted: (gateUp: Bool, down: Bool) = (false, false)) {
        w.gate.forward(x, rows: m, into: s.g.pointer, exact: exact)
        w.up.forward(x, rows: m, into: s.u.pointer, exact: exact)
        if adapted.gateUp { lora?.addGateUp(layer: layer, expert: expert, x: x, rows: m, gate: s.g.pointer, up: s.u.pointer) }
        activate(gate: s.g.pointer, up: s.u.pointer, out: s.a.pointer, count: m * w.gate.outFeatures)
        if let o = expertObserver {
            o.observe(layer: layer, expert: expert, down: false, x: x, rows: m, cols: w.gate.inFeatures)
            o.observe(layer: layer, expert: expert, down: true, x: s.a.pointer, rows: m, cols: w.down.inFeatures)
        }
        w.down.forward(s.a.pointer, rows: m, into: s.y.pointer, exact: exact)
        if adapted.down { lora?.addDown(layer: layer, expert: expert, a: s.a.pointer, rows: m, y: s.y.pointer) }
    }

    /// d(x) [n, C] (written) of the mixture, from dOut [n, C] and the forward's routing and saved gate/up outputs
    /// (`mixtureForward(save: true)`); x is the forward's input. The frozen experts and router pass gradients
    /// through; the routing weights' share reaches x via the router. A chosen expert's output y = W_down a enters only
    /// through dOut · y = (dOut W_down) · a, so no expert product is recomputed.
    func mixtureBackward(_ moe: MoEWeights, layer l: Int, x: UnsafePointer<Float>, dOut: UnsafePointer<Float>, rows n: Int,
                         dx: UnsafeMutablePointer<Float>, routing r: Routing, scratch s: MoEScratch, experts lora: ExpertAdapter? = nil) {
        let adapted = lora?.adaptsExperts(layer: l) ?? (gateUp: false, down: false)
        let c = config.hiddenSize, k = r.topK, e = r.experts
        let iw = config.moe?.intermediateSize ?? 0, sw = config.moe?.sharedIntermediateSize ?? 0
        s.reserve(rows: n, config: config)
        dx.update(repeating: 0, count: n * c)
        var dWeights = [Float](repeating: 0, count: n * k)
        var at = 0
        for (expert, slots) in r.assignments().enumerated() where !slots.isEmpty {
            let m = slots.count, w = moe.experts[expert]
            for (j, slot) in slots.enumerated() { (s.dy.pointer + j * c).update(from: dOut + (slot / k) * c, count: c) }
            let g = r.gate.pointer + at * iw, u = r.up.pointer + at * iw
            at += m
            w.down.backwardInput(s.dy.pointer, rows: m, into: s.da.pointer, accumulate: false)
            activate(gate: g, up: u, out: s.a.pointer, count: m * iw)
            if adapted.down, let lora {
                let weights = slots.map { r.weights[$0] }
                weights.withUnsafeBufferPointer {
                    lora.backwardDown(layer: l, expert: expert, a: s.a.pointer, dy: s.dy.pointer, weights: $0.baseAddress!,
                                      rows: m, da: s.da.pointer)
                }
            }
            for (j, slot) in slots.enumerated() {
                let da = s.da.pointer + j * iw
                dWeights[slot] = Ops.dot(da, s.a.pointer + j * iw, count: iw)
                let weight = r.weights[slot]
                for i in 0..<iw { da[i] *= weight }
            }
            expertBackward(w, gate: g, up: u, rows: m, s)
            if adapted.gateUp, let lora {
                for (j, slot) in slots.enumerated() { (s.x.pointer + j * c).update(from: x + (slot / k) * c, count: c) }
                lora.backwardGateUp(layer: l, expert: expert, x: s.x.pointer, dgate: s.dg.pointer, dup: s.du.pointer,
                                    rows: m, dx: s.dx.pointer)
            }
            for (j, slot) in slots.enumerated() { Ops.add(s.dx.pointer + j * c, into: dx + (slot / k) * c, count: c) }
        }
        // Through the routing weights: w = p (or p / sum of the chosen p), then the softmax, then the router.
        var dLogits = [Float](repeating: 0, count: n * e)
        let normalize = config.moe?.normalizeTopK ?? false
        for row in 0..<n {
            var dp = [Float](repeating: 0, count: e)
            if normalize {
                var picked: Float = 0, inner: Float = 0
                for j in 0..<k { picked += r.probabilities[row * e + Int(r.chosen[row * k + j])] }
                for j in 0..<k { inner += dWeights[row * k + j] * r.weights[row * k + j] }
                for j in 0..<k { dp[Int(r.chosen[row * k + j])] = (dWeights[row * k + j] - inner) / picked }
            } else {
                for j in 0..<k { dp[Int(r.chosen[row * k + j])] = dWeights[row * k + j] }
            }
            // The load-balancing loss's share (training with a router auxiliary loss).
            if let g = r.statistics?.probabilityGradient, !g.isEmpty { for j in 0..<e { dp[j] += g[j] } }
            var dot: Float = 0
            for j in 0..<e { dot += dp[j] * r.probabilities[row * e + j] }
            for j in 0..<e { dLogits[row * e + j] = r.probabilities[row * e + j] * (dp[j] - dot) }
        }
        dLogits.withUnsafeBufferPointer {
            moe.router.backwardInput($0.baseAddress!, rows: n, into: dx, accumulate: true)
            if let lora, lora.adaptsRouter(layer: l) { lora.backwardRouter(layer: l, x: x, dLogits: $0.baseAddress!, rows: n, dx: dx) }
        }
        if let shared = moe.shared, let gate = moe.sharedGate {
            var logit = [Float](repeating: 0, count: n)
            logit.withUnsafeMutableBufferPointer { gate.forward(x, rows: n, into: $0.baseAddress!) }
            shared.down.backwardInput(dOut, rows: n, into: s.da.pointer, accumulate: false)
            activate(gate: r.sharedGate.pointer, up: r.sharedUp.pointer, out: s.a.pointer, count: n * sw)
            var dLogit = [Float](repeating: 0, count: n)
            for row in 0..<n {
                let sig = 1 / (1 + expf(-logit[row])), da = s.da.pointer + row * sw
                dLogit[row] = Ops.dot(da, s.a.pointer + row * sw, count: sw) * sig * (1 - sig)
                for i in 0..<sw { da[i] *= sig }
            }
            expertBackward(shared, gate: r.sharedGate.pointer, up: r.sharedUp.pointer, rows: n, s)
            Ops.add(s.dx.pointer, into: dx, count: n * c)
            dLogit.withUnsafeBufferPointer { gate.backwardInput($0.baseAddress!, rows: n, into: dx, accumulate: true) }
        }
    }

    /// s.dx [m, C] = d(expert input) from s.da [m, I] = d(act(gate) * up), given the forward's gate and up outputs.
    private func expertBackward(_ w: ExpertWeights, gate: UnsafePointer<Float>, up: UnsafePointer<Float>, rows m: Int,
                                _ s: MoEScratch) {
        let i = w.gate.outFeatures
        switch config.activation {
        case .silu: Ops.swigluBackward(s.da.pointer, gate: gate, up: up, dgate: s.dg.pointer, dup: s.du.pointer, count: m * i)
        case .geluTanh: Ops.gegluBackward(s.da.pointer, gate: gate, up: up, dgate: s.dg.pointer, dup: s.du.pointer, count: m * i)
        }
        w.gate.backwardInput(s.dg.pointer, rows: m, into: s.dx.pointer, accumulate: false)
        w.up.backwardInput(s.du.pointer, rows: m, into: s.dx.pointer, accumulate: true)
    }
}
