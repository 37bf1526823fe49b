/// The linear projections of a decoder layer by role, with the names Llama-layout checkpoints give them. A family
/// that fuses some of them into one matrix (Qwen v1's `c_attn`, Phi-3's `qkv_proj` and `gate_up_proj`,
/// InternLM2's `wqkv`, Baichuan2's `W_pack`) has `qkv` / `gateUp` in place of the parts: `ModelConfig.projections`
/// lists the ones a model has, and `WeightLayout` names them as its checkpoints do.
public enum Projection: String, CaseIterable, Sendable, Codable, Comparable {
    case q = "q_proj", k = "k_proj", v = "v_proj", qkv = "qkv_proj", o = "o_proj"
    case gate = "gate_proj", up = "up_proj", gateUp = "gate_up_proj", down = "down_proj"

    /// The block it belongs to in Llama-layout names (`self_attn` or `mlp`).
    public var module: String { isAttention ? "self_attn" : "mlp" }

    public var isAttention: Bool {
        switch self {
        case .q, .k, .v, .qkv, .o: true
        case .gate, .up, .gateUp, .down: false
        }
    }

    public static func < (a: Projection, b: Projection) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}

/// One projection of one layer: where an adapter side-car attaches.
public struct ProjectionSite: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var layer: Int
    public var projection: Projection

    public init(layer: Int, projection: Projection) {
        self.layer = layer
        self.projection = projection
    }

    /// `layer 3 q_proj` (checkpoint names come from the model's `WeightLayout`).
    public var description: String { "layer \(layer) \(projection.rawValue)" }

    public static func < (a: ProjectionSite, b: ProjectionSite) -> Bool {
        (a.layer, Projection.allCases.firstIndex(of: a.projection)!) < (b.layer, Projection.allCases.firstIndex(of: b.projection)!)
    }
}

/// What a forward or backward pass is doing, for side-cars that behave differently when training.
public struct PassContext: Sendable {
    /// Dropout and other training-only behaviour is on.
    public var training: Bool
    /// Names the random stream of this micro-batch (dropout masks are a pure function of it).
    public var randomKey: UInt64

    /// Incremental decoding: quantized weights may multiply activations rounded to 8 bits (llama.cpp's numerics).
    public var decode: Bool = false

    /// Per-sequence random streams of a packed batch: sequence i (rows `sequenceRows[i]` long, packed in order) draws
    /// its dropout masks from `sequenceKeys[i]`, so a mask is a function of the example, not of the batch it is
    /// packed into (data-parallel ranks reproduce a single process's masks). Empty: `randomKey` for the whole pass.
    public var sequenceKeys: [UInt64] = []
    public var sequenceRows: [Int] = []

    /// Mixture-of-experts training: the weight of the router's load-balancing loss in this pass's total (the config's
    /// router_aux_loss_coef, shared among a step's micro-batches); 0 leaves it out.
    public var routerAuxLossWeight: Float = 0

    /// Positions as training treats them (no log-n query scaling, dynamic NTK's alpha 1) in a pass without training:
    /// the reference and KL passes of preference training, which TRL runs with the model in train mode.
    public var positionsAsTraining = false
    /// Inference-only position handling (Qwen v1's log-n scaling and dynamic NTK) applies.
    public var inferencePositions: Bool { !training && !positionsAsTraining }

    public init(training: Bool, randomKey: UInt64 = 0) {
        self.training = training
        self.randomKey = randomKey
    }

    public static let inference = PassContext(training: false)
    public static let decoding: PassContext = {
        var c = PassContext(training: false)
        c.decode = true
        return c
    }()

    /// Products must use the f32 activations (everything but decoding).
    public var exact: Bool { !decode }
}
