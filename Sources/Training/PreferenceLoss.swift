import Foundation

/// The preference objectives of TRL 1.x on one pair's sequence log-probabilities (summed over the answer tokens;
/// `tokens` gives the averages), with their derivatives in the policy's log-probabilities:
/// - DPO `sigmoid`: -log sigmoid(beta x delta), delta = (chosen - ref chosen) - (rejected - ref rejected);
///   `hinge`: relu(1 - beta x delta); `ipo`: ((per-token delta) - 1/(2 beta))^2; `robust`: the label-smoothed
///   sigmoid loss unbiased by 1 - 2 epsilon;
/// - SimPO: -log sigmoid(beta (mean chosen - mean rejected) - gamma), no reference;
/// - ORPO: -beta x log sigmoid(log odds(mean chosen) - log odds(mean rejected)) (its NLL term is added by the
///   caller), no reference;
/// - KTO (unpaired answers, each desirable or not; `unpaired`): 1 - sigmoid(beta (log-ratio - KL)) for a desirable
///   answer, 1 - sigmoid(beta (KL - log-ratio)) for an undesirable one, weighted, with KL the batch's mean log-ratio
///   of mismatched prompt/answer sequences (no gradient, clamped at 0).
public enum PreferenceLoss: String, CaseIterable, Sendable {
    case sigmoid, hinge, ipo, robust, simpo, orpo, kto

    public struct Pair: Sendable, Equatable {
        public var chosen: Double
        public var rejected: Double
        public var refChosen: Double
        public var refRejected: Double
        public var chosenTokens: Int
        public var rejectedTokens: Int

        public init(chosen: Double, rejected: Double, refChosen: Double = 0, refRejected: Double = 0,
                    chosenTokens: Int, rejectedTokens: Int) {
            (self.chosen, self.rejected, self.refChosen, self.refRejected) = (chosen, rejected, refChosen, refRejected)
            (self.chosenTokens, self.rejectedTokens) = (chosenTokens, rejectedTokens)
        }
    }

    public struct Settings: Sendable {
        public var beta = 0.1
        public var labelSmoothing = 0.0
        public var simpoGamma = 0.5
        /// KTO's weights of the desirable and the undesirable answers' losses.
        public var desirableWeight = 1.0
        public var undesirableWeight = 1.0
        public init() {}
    }

    public struct Value: Sendable, Equatable {
        public var loss: Double
        /// d(loss)/d(summed log-probability) of the chosen and of the rejected answer.
        public var dChosen: Double
        public var dRejected: Double
        /// TRL's logged rewards: beta x (policy - reference) for DPO, beta x the mean log-probability otherwise.
        public var chosenReward: Double
        public var rejectedReward: Double
    }

    /// Whether the objective compares against a reference model.
    public var needsReference: Bool { self != .simpo && self != .orpo }

    /// Whether the examples come in chosen/rejected pairs (all but KTO, whose answers stand alone).
    public var isPaired: Bool { self != .kto }

    /// log sigmoid(x), stable for large |x|.
    static func logSigmoid(_ x: Double) -> Double { x >= 0 ? -log1p(exp(-x)) : x - log1p(exp(x)) }
    static func sigmoid(_ x: Double) -> Double { x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x)) }
    /// log(1 - exp(x)) for x < 0, stable at both ends.
    static func log1mexp(_ x: Double) -> Double { x > -M_LN2 ? log(-expm1(x)) : log1p(-exp(x)) }

    /// KTO's loss of one answer: `logp` and `ref` its summed log-probabilities under the policy and the reference,
    /// `kl` the batch's clamped KL estimate (a constant). `dChosen` carries d(loss)/d(logp) and `chosenReward` the
    /// reward beta x (logp - ref), whichever kind the answer is.
    public static func unpaired(logp: Double, ref: Double, kl: Double, desirable: Bool, _ s: Settings) -> Value {
        let ratio = logp - ref
        // 1 - sigmoid(z) = sigmoid(-z); d/dz = -sigmoid(z) sigmoid(-z).
        let z = desirable ? s.beta * (ratio - kl) : s.beta * (kl - ratio)
        let w = desirable ? s.desirableWeight : s.undesirableWeight
        let dz = -sigmoid(z) * sigmoid(-z)
        return Value(loss: w * sigmoid(-z), dChosen: w * dz * (desirable ? s.beta : -s.beta), dRejected: 0,
                     chosenReward: s.beta * ratio, rejectedReward: 0)
    }

    public func value(_ p: Pair, _ s: Settings) -> Value {
        precondition(isPaired, "KTO's answers are unpaired: PreferenceLoss.unpaired")
        let beta = s.beta
        let nc = Double(max(1, p.chosenTokens)), nr = Double(max(1, p.rejectedTokens))
        switch self {
        case .sigmoid, .hinge, .robust:
            let z = beta * ((p.chosen - p.refChosen) - (p.rejected - p.refRejected))
            let loss: Double, dz: Double
            switch self {
            case .sigmoid:
                loss = -Self.logSigmoid(z)
                dz = -Self.sigmoid(-z)
            case .hinge:
                loss = max(0, 1 - z)
                dz = z < 1 ? -1 : 0
            default:
                let e = s.labelSmoothing
                loss = (-(1 - e) * Self.logSigmoid(z) + e * Self.logSigmoid(-z)) / (1 - 2 * e)
                dz = (-(1 - e) * Self.sigmoid(-z) - e * Self.sigmoid(z)) / (1 - 2 * e)
            }
            return Value(loss: loss, dChosen: beta * dz, dRejected: -beta * dz, chosenReward: beta * (p.chosen - p.refChosen),
                         rejectedReward: beta * (p.rejected - p.refRejected))
        case .ipo:
            let delta = (p.chosen - p.refChosen) / nc - (p.rejected - p.refRejected) / nr
            let d = delta - 1 / (2 * beta)
            return Value(loss: d * d, dChosen: 2 * d / nc, dRejected: -2 * d / nr,
                         chosenReward: beta * (p.chosen - p.refChosen), rejectedReward: beta * (p.rejected - p.refRejected))
        case .simpo:
            let ac = p.chosen / nc, ar = p.rejected / nr
            let z = beta * (ac - ar) - s.simpoGamma
            let e = s.labelSmoothing
            let loss = -(1 - e) * Self.logSigmoid(z) - e * Self.logSigmoid(-z)
            let dz = -(1 - e) * Self.sigmoid(-z) + e * Self.sigmoid(z)
            return Value(loss: loss, dChosen: beta * dz / nc, dRejected: -beta * dz / nr, chosenReward: beta * ac,
                         rejectedReward: beta * ar)
        case .orpo:
            let ac = p.chosen / nc, ar = p.rejected / nr
            let logOdds = (ac - ar) - (Self.log1mexp(ac) - Self.log1mexp(ar))
            let loss = -beta * Self.logSigmoid(logOdds)
            let dOdds = -beta * Self.sigmoid(-logOdds)
            // d log odds / d mean = 1 / (1 - e^mean) for the chosen, minus that for the rejected.
            return Value(loss: loss, dChosen: dOdds / (-expm1(ac)) / nc, dRejected: -dOdds / (-expm1(ar)) / nr,
                         chosenReward: beta * ac, rejectedReward: beta * ar)
        case .kto:
            preconditionFailure()
        }
    }
}
