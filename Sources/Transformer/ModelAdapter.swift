import Kernels

/// A fine-tuning method attached to the model. The model has exactly one place per hook point, and every method
/// implements only the hooks it uses (the others keep their do-nothing defaults):
///
/// 1. input embeddings: `virtualTokenCount` rows prepended to every sequence (prompt tuning, P-tuning);
/// 2. attention keys and values: `prefixLength` cached rows in front of every layer's keys and values
///    (prefix tuning / P-tuning v2);
/// 3. projections: `project` replaces the frozen `linear(x)` at the sites it `attaches(to:)` (LoRA, DoRA, IA3);
/// 4. sublayer outputs: the output of a layer's attention or feed-forward block, before it joins the residual
///    stream, is rewritten (bottleneck adapters).
///
/// Real tokens sit after the virtual rows and prefixes: their positions start at `virtualTokenCount + prefixLength`,
/// as in PEFT, where the prompt occupies the first positions of the sequence or of the key/value cache.
public protocol ModelAdapter: AnyObject {
    /// Rows of learned embeddings prepended to every sequence.
    var virtualTokenCount: Int { get }
    /// virtual[nv, C]: the learned input embeddings (valid until the parameters change).
    func virtualEmbeddings() -> UnsafePointer<Float>
    /// Adds d(loss)/d(virtual)[nv, C] of one sequence.
    func accumulateVirtualGradient(_ grad: UnsafePointer<Float>)

    /// Key/value rows in front of every layer's attention.
    var prefixLength: Int { get }
    /// Layer `layer`'s prefix keys and values, each [np, kvDim] with row stride `stride` floats.
    func prefix(layer: Int) -> (keys: UnsafePointer<Float>, values: UnsafePointer<Float>, stride: Int)
    /// Adds d(loss)/d(prefix keys) and d(loss)/d(prefix values) of one sequence, each [np, kvDim] contiguous.
    func accumulatePrefixGradient(layer: Int, keys: UnsafePointer<Float>, values: UnsafePointer<Float>)

    /// True when `project` handles `site`.
    func attaches(to site: ProjectionSite) -> Bool
    /// out[rows, outFeatures] = the adapted projection of x[rows, inFeatures] (`linear` is the frozen layer).
    func project(site: ProjectionSite, linear: Linear, x: UnsafePointer<Float>, rows: Int,
                 out: UnsafeMutablePointer<Float>, context: PassContext)
    /// Parameter gradients of `project` from dy[rows, out] and the x forward saw; the input gradient goes into
    /// dx[rows, in] (added when `accumulate`) unless dx is nil.
    /// `out` holds the frozen product of these rows; make it `project`'s result (see the default implementation).
    func refineProjection(site: ProjectionSite, linear: Linear, x: UnsafePointer<Float>, rows: Int,
                          out: UnsafeMutablePointer<Float>, context: PassContext)
    func projectBackward(site: ProjectionSite, linear: Linear, x: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                         rows: Int, dx: UnsafeMutablePointer<Float>?, accumulate: Bool, context: PassContext)

    /// True when `sublayerForward` rewrites the output of `sublayer` in `layer`.
    func adapts(_ sublayer: Sublayer, layer: Int) -> Bool
    /// output[rows, C] (the block's output, which is then added to residual[rows, C]) is rewritten in place.
    func sublayerForward(_ sublayer: Sublayer, layer: Int, residual: UnsafePointer<Float>,
                         output: UnsafeMutablePointer<Float>, rows: Int, context: PassContext)
    /// Backward of `sublayerForward` from dOutput[rows, C] = d(loss)/d(rewritten output): adds parameter gradients,
    /// writes d(loss)/d(original output) into dOriginal[rows, C] and adds d(loss)/d(residual) into dResidual.
    func sublayerBackward(_ sublayer: Sublayer, layer: Int, dOutput: UnsafePointer<Float>, rows: Int,
                          dOriginal: UnsafeMutablePointer<Float>, dResidual: UnsafeMutablePointer<Float>,
                          context: PassContext)

    /// LoRA on a mixture's experts (PEFT's target_parameters), nil when the adapter has none.
    var expertAdapter: ExpertAdapter? { get }

    /// The gradient buffer of a base tensor that trains (full and freeze fine-tuning), nil for a frozen one. The
    /// backward adds d(loss)/d(tensor) into it (shape of the tensor, f32).
    func baseGradient(_ tensor: BaseTensor) -> UnsafeMutablePointer<Float>?

    /// The lowest layer whose backward produces a parameter gradient (backward stops below it); nil when nothing
    /// trains below the LM head. Input-embedding methods need the gradient of layer 0's input.
    var lowestTrainableLayer: Int? { get }
}

extension ModelAdapter {
    public var virtualTokenCount: Int { 0 }
    public func virtualEmbeddings() -> UnsafePointer<Float> { preconditionFailure("no virtual tokens") }
    public func accumulateVirtualGradient(_ grad: UnsafePointer<Float>) {}
    public var prefixLength: Int { 0 }
    public func prefix(layer: Int) -> (keys: UnsafePointer<Float>, values: UnsafePointer<Float>, stride: Int) {
        preconditionFailure("no prefix")
    }
    public func accumulatePrefixGradient(layer: Int, keys: UnsafePointer<Float>, values: UnsafePointer<Float>) {}
    public func baseGradient(_ tensor: BaseTensor) -> UnsafeMutablePointer<Float>? { nil }
    public var expertAdapter: ExpertAdapter? { nil }
    public func adapts(_ sublayer: Sublayer, layer: Int) -> Bool { false }
    public func sublayerForward(_ sublayer: Sublayer, layer: Int, residual: UnsafePointer<Float>,
                                output: UnsafeMutablePointer<Float>, rows: Int, context: PassContext) {}
    public func sublayerBackward(_ sublayer: Sublayer, layer: Int, dOutput: UnsafePointer<Float>, rows: Int,
                                 dOriginal: UnsafeMutablePointer<Float>, dResidual: UnsafeMutablePointer<Float>,
                                 context: PassContext) {}
    public func attaches(to site: ProjectionSite) -> Bool { false }
    public func project(site: ProjectionSite, linear: Linear, x: UnsafePointer<Float>, rows: Int,
                        out: UnsafeMutablePointer<Float>, context: PassContext) {
        linear.forward(x, rows: rows, into: out, exact: context.exact)
    }
    public func projectBackward(site: ProjectionSite, linear: Linear, x: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                                rows: Int, dx: UnsafeMutablePointer<Float>?, accumulate: Bool, context: PassContext) {
        if let dx { linear.backwardInput(dy, rows: rows, into: dx, accumulate: accumulate) }
    }

    /// Inference with the frozen product shared by rows of several adapters: `out` holds `linear(x)` for these rows;
    /// rewrite it into what `project` computes. By default `project` runs again on the rows (a second pass over the
    /// weight); methods whose change is cheap on top of the frozen product (LoRA, IA3 on outputs) override it.
    public func refineProjection(site: ProjectionSite, linear: Linear, x: UnsafePointer<Float>, rows: Int,
                                 out: UnsafeMutablePointer<Float>, context: PassContext) {
        project(site: site, linear: linear, x: x, rows: rows, out: out, context: context)
    }

    /// Rows in front of the real tokens of a sequence (positions of real tokens start here).
    public var leadingRows: Int { virtualTokenCount + prefixLength }
}

/// Low-rank updates of a mixture's experts, added to the frozen expert products of the rows routed to each (PEFT's
/// LoRA on `mlp.experts.gate_up_proj` and `mlp.experts.down_proj`). Experts run one after another; the gradients
/// accumulate in the adapter.
public protocol ExpertAdapter: AnyObject {
    /// Whether `layer`'s experts have an update of their gate/up products and of their down product.
    func adaptsExperts(layer: Int) -> (gateUp: Bool, down: Bool)
    /// gate, up [m, I] += expert `expert`'s gate_up update of its rows x [m, C].
    func addGateUp(layer: Int, expert: Int, x: UnsafePointer<Float>, rows: Int,
                   gate: UnsafeMutablePointer<Float>, up: UnsafeMutablePointer<Float>)
    /// y [m, C] += the down update of a [m, I] (= act(gate) * up).
    func addDown(layer: Int, expert: Int, a: UnsafePointer<Float>, rows: Int, y: UnsafeMutablePointer<Float>)
    /// da [m, I] += d(down update · dy)/da for dy [m, C] (the rows' output gradients before their routing weights);
    /// the parameter gradients take each row's dy times weights[row].
    func backwardDown(layer: Int, expert: Int, a: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                      weights: UnsafePointer<Float>, rows: Int, da: UnsafeMutablePointer<Float>)
    /// dx [m, C] += the gate_up update's input gradient for dgate, dup [m, I]; its parameter gradients.
    func backwardGateUp(layer: Int, expert: Int, x: UnsafePointer<Float>, dgate: UnsafePointer<Float>,
                        dup: UnsafePointer<Float>, rows: Int, dx: UnsafeMutablePointer<Float>)
    /// Whether `layer`'s router (`mlp.gate.weight`) has an update.
    func adaptsRouter(layer: Int) -> Bool
    /// logits [n, E] += the router update of x [n, C].
    func addRouter(layer: Int, x: UnsafePointer<Float>, rows: Int, logits: UnsafeMutablePointer<Float>)
    /// dx [n, C] += the router update's input gradient for dLogits [n, E]; its parameter gradients.
    func backwardRouter(layer: Int, x: UnsafePointer<Float>, dLogits: UnsafePointer<Float>, rows: Int,
                        dx: UnsafeMutablePointer<Float>)
}

/// The two blocks of a decoder layer whose outputs join the residual stream.
public enum Sublayer: String, Sendable, CaseIterable {
    case attention, mlp
}

extension Linear {
    /// out[rows, out] = x[rows, in] · W^T + b (`exact`: see `WeightMatrix.forward`).
    public func forward(_ x: UnsafePointer<Float>, rows: Int, into out: UnsafeMutablePointer<Float>, exact: Bool = true) {
        weight.forward(x, rows: rows, into: out, exact: exact)
        if let b = bias { Ops.addBias(b.pointer, to: out, rows: rows, cols: outFeatures) }
    }

    /// dx[rows, in] (+)= dy[rows, out] · W.
    public func backwardInput(_ dy: UnsafePointer<Float>, rows: Int, into dx: UnsafeMutablePointer<Float>,
                              accumulate: Bool) {
        weight.backwardInput(dy, rows: rows, into: dx, accumulate: accumulate)
    }
}
