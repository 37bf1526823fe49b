/// The seven linear projections of a decoder layer, named as in Hugging Face checkpoints.
public enum Projection: String, CaseIterable, Sendable, Codable, Comparable {
    case q = "q_proj", k = "k_proj", v = "v_proj", o = "o_proj"
    case gate = "gate_proj", up = "up_proj", down = "down_proj"

    /// The parent module in Hugging Face names (`self_attn` or `mlp`).
    public var module: String {
        switch self {
        case .q, .k, .v, .o: "self_attn"
        case .gate, .up, .down: "mlp"
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

    /// `model.layers.3.self_attn.q_proj`
    public var moduleName: String { "model.layers.\(layer).\(projection.module).\(projection.rawValue)" }

    public var description: String { moduleName }

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

    public init(training: Bool, randomKey: UInt64 = 0) {
        self.training = training
        self.randomKey = randomKey
    }

    public static let inference = PassContext(training: false)
}

/// A side-car that adds to a projection's output, attached at the model's single projection choke point.
/// Base weights are never modified; the side-car owns its parameters and their gradients.
public protocol ProjectionAdapter: AnyObject {
    /// True when this side-car modifies `site`.
    func attaches(to site: ProjectionSite) -> Bool
    /// The lowest layer holding a trainable parameter (backward stops below it), nil when nothing trains.
    var lowestTrainableLayer: Int? { get }
    /// y[rows, out] += delta(x[rows, in]). May keep what backward needs, per site.
    func forward(site: ProjectionSite, x: UnsafePointer<Float>, rows: Int, y: UnsafeMutablePointer<Float>,
                 context: PassContext)
    /// Accumulates parameter gradients for `site` from dy[rows, out] and x[rows, in] (the same x forward saw);
    /// adds the input gradient into dx[rows, in] when dx is not nil.
    func backward(site: ProjectionSite, x: UnsafePointer<Float>, dy: UnsafePointer<Float>, rows: Int,
                  dx: UnsafeMutablePointer<Float>?, context: PassContext)
}
