import Foundation
import TestSupport
import Training
import XCTest

/// The preference objectives against TRL 1.16 (scripts/make_preference_fixtures.py) and finite differences.
final class PreferenceLossTests: XCTestCase {
    struct Golden: Decodable {
        struct Case: Decodable {
            let loss_type: String
            let beta: Double
            let label_smoothing: Double
            let simpo_gamma: Double
            let loss: [Double]
            let d_chosen: [Double]
            let d_rejected: [Double]
            let chosen_rewards: [Double]
            let rejected_rewards: [Double]
        }
        let chosen: [Double]
        let rejected: [Double]
        let ref_chosen: [Double]
        let ref_rejected: [Double]
        let chosen_tokens: [Int]
        let rejected_tokens: [Int]
        let cases: [Case]

        func pair(_ i: Int) -> PreferenceLoss.Pair {
            .init(chosen: chosen[i], rejected: rejected[i], refChosen: ref_chosen[i], refRejected: ref_rejected[i],
                  chosenTokens: chosen_tokens[i], rejectedTokens: rejected_tokens[i])
        }
    }

    func settings(_ c: Golden.Case) -> PreferenceLoss.Settings {
        var s = PreferenceLoss.Settings()
        s.beta = c.beta
        s.labelSmoothing = c.label_smoothing
        s.simpoGamma = c.simpo_gamma
        return s
    }

    func testMatchesTRL() throws {
        let g = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: fixtureURL("golden/preference-losses.json")))
        for c in g.cases {
            let kind = try XCTUnwrap(PreferenceLoss(rawValue: c.loss_type))
            for i in g.chosen.indices {
                let v = kind.value(g.pair(i), settings(c))
                let label = "\(c.loss_type) beta \(c.beta) pair \(i)"
                func close(_ a: Double, _ b: Double, _ what: String) {
                    XCTAssertEqual(a, b, accuracy: 1e-5 * max(abs(b), 1e-3), "\(label) \(what)")
                }
                close(v.loss, c.loss[i], "loss")
                close(v.dChosen, c.d_chosen[i], "d chosen")
                close(v.dRejected, c.d_rejected[i], "d rejected")
                close(v.chosenReward, c.chosen_rewards[i], "chosen reward")
                close(v.rejectedReward, c.rejected_rewards[i], "rejected reward")
            }
        }
    }

    func testDerivativesByFiniteDifferences() {
        var s = PreferenceLoss.Settings()
        s.beta = 0.3
        s.labelSmoothing = 0.1
        let base = PreferenceLoss.Pair(chosen: -12.5, rejected: -15.25, refChosen: -13, refRejected: -14, chosenTokens: 7, rejectedTokens: 9)
        for kind in PreferenceLoss.allCases where kind != .hinge && kind.isPaired {
            let v = kind.value(base, s)
            let h = 1e-5
            var up = base, down = base
            up.chosen += h; down.chosen -= h
            XCTAssertEqual(v.dChosen, (kind.value(up, s).loss - kind.value(down, s).loss) / (2 * h), accuracy: 1e-6, "\(kind) chosen")
            up = base; down = base
            up.rejected += h; down.rejected -= h
            XCTAssertEqual(v.dRejected, (kind.value(up, s).loss - kind.value(down, s).loss) / (2 * h), accuracy: 1e-6, "\(kind) rejected")
        }
        XCTAssertEqual(PreferenceLoss.orpo.needsReference, false)
        XCTAssertEqual(PreferenceLoss.ipo.needsReference, true)
    }

    /// KTO's derivative in the answer's log-probability, desirable and not, on both sides of the KL estimate.
    func testKTODerivativeByFiniteDifferences() {
        var s = PreferenceLoss.Settings()
        s.beta = 0.7
        s.desirableWeight = 1.0
        s.undesirableWeight = 1.33
        for desirable in [true, false] {
            for (logp, ref, kl) in [(-12.5, -13.0, 0.0), (-15.25, -14.0, 0.4), (-3.0, -9.0, 2.5)] {
                let v = PreferenceLoss.unpaired(logp: logp, ref: ref, kl: kl, desirable: desirable, s)
                let h = 1e-5
                let up = PreferenceLoss.unpaired(logp: logp + h, ref: ref, kl: kl, desirable: desirable, s).loss
                let down = PreferenceLoss.unpaired(logp: logp - h, ref: ref, kl: kl, desirable: desirable, s).loss
                XCTAssertEqual(v.dChosen, (up - down) / (2 * h), accuracy: 1e-8, "desirable \(desirable)")
                // TRL's terms: 1 - sigmoid(beta (ratio - kl)) or 1 - sigmoid(beta (kl - ratio)), weighted.
                let z = desirable ? s.beta * ((logp - ref) - kl) : s.beta * (kl - (logp - ref))
                XCTAssertEqual(v.loss, (desirable ? 1.0 : 1.33) * (1 - 1 / (1 + exp(-z))), accuracy: 1e-12)
                XCTAssertEqual(v.chosenReward, s.beta * (logp - ref), accuracy: 1e-12)
            }
        }
        XCTAssertTrue(PreferenceLoss.kto.needsReference)
        XCTAssertFalse(PreferenceLoss.kto.isPaired)
    }
}
