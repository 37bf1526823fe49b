import Foundation
import Kernels
import TestSupport
import Transformer
import XCTest

/// The generalized JSD of distillation against TRL's `generalized_jsd_loss` (scripts/make_distill_fixtures.py),
/// a naive restatement, and finite differences.
final class DistillationLossTests: XCTestCase {
    struct Golden: Decodable {
        struct Case: Decodable { let beta: Double; let temperature: Double; let loss: Double; let grad: [Double] }
        let student: [Float]
        let teacher: [Float]
        let labels: [Int]
        let vocab: Int
        let cases: [Case]
    }

    /// Mean over the unmasked rows of `DistillationLoss.row`, and the gradient of that mean.
    func ours(_ g: Golden, beta: Double, temperature: Double) -> (Double, [Float]) {
        let v = g.vocab, rows = g.labels.indices.filter { g.labels[$0] != -100 }
        var grad = [Float](repeating: 0, count: g.student.count), total = 0.0
        g.student.withUnsafeBufferPointer { s in
            g.teacher.withUnsafeBufferPointer { t in
                grad.withUnsafeMutableBufferPointer { gp in
                    for r in rows {
                        total += DistillationLoss.row(student: s.baseAddress! + r * v, teacher: t.baseAddress! + r * v, count: v,
                                                      beta: beta, temperature: temperature, gradient: gp.baseAddress! + r * v)
                    }
                }
            }
        }
        return (total / Double(rows.count), grad.map { $0 / Float(rows.count) })
    }

    func testMatchesTRL() throws {
        let g = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: fixtureURL("golden/distill-jsd.json")))
        for c in g.cases {
            let (loss, grad) = ours(g, beta: c.beta, temperature: c.temperature)
            XCTAssertEqual(loss, c.loss, accuracy: 1e-5 * abs(c.loss), "beta \(c.beta) T \(c.temperature)")
            let scale = c.grad.map(abs).max() ?? 1
            for (i, (a, b)) in zip(grad, c.grad).enumerated() {
                XCTAssertEqual(Double(a), b, accuracy: 1e-5 * scale, "beta \(c.beta) T \(c.temperature) grad \(i)")
            }
        }
    }

    /// A restatement with explicit distributions in Double (no log-space mixture) agrees on random rows, within the
    /// f32 kernel's rounding.
    func testNaiveRestatement() {
        var rng = SeededGenerator(seed: 3)
        let v = 40
        for beta in [0.0, 0.2, 0.5, 0.9, 1.0] {
            for temperature in [0.7, 1.0, 3.0] {
                let s = (0..<v).map { _ in Float.random(in: -4...4, using: &rng) }
                let t = (0..<v).map { _ in Float.random(in: -4...4, using: &rng) }
                func softmax(_ z: [Float]) -> [Double] {
                    let u = z.map { Double($0) / temperature }, m = u.max()!
                    let e = u.map { exp($0 - m) }, sum = e.reduce(0, +)
                    return e.map { $0 / sum }
                }
                let ps = softmax(s), pt = softmax(t)
                let mix = zip(ps, pt).map { (1 - beta) * $0 + beta * $1 }
                func kl(_ p: [Double], _ q: [Double]) -> Double { zip(p, q).reduce(0) { $0 + $1.0 * log($1.0 / $1.1) } }
                let want = beta == 0 ? kl(pt, ps) : beta == 1 ? kl(ps, pt) : beta * kl(pt, mix) + (1 - beta) * kl(ps, mix)
                let got = s.withUnsafeBufferPointer { sp in
                    t.withUnsafeBufferPointer { tp in
                        DistillationLoss.row(student: sp.baseAddress!, teacher: tp.baseAddress!, count: v, beta: beta,
                                             temperature: temperature, gradient: nil)
                    }
                }
                XCTAssertEqual(got, want, accuracy: 1e-7 + 1e-5 * want, "beta \(beta) T \(temperature)")
            }
        }
    }

    /// Central differences of the loss in the student's logits.
    func testGradientByFiniteDifferences() {
        var rng = SeededGenerator(seed: 9)
        let v = 16
        for beta in [0.0, 0.35, 1.0] {
            let s = (0..<v).map { _ in Float.random(in: -3...3, using: &rng) }
            let t = (0..<v).map { _ in Float.random(in: -3...3, using: &rng) }
            func loss(_ z: [Float], _ grad: UnsafeMutablePointer<Float>?) -> Double {
                z.withUnsafeBufferPointer { zp in
                    t.withUnsafeBufferPointer { tp in
                        DistillationLoss.row(student: zp.baseAddress!, teacher: tp.baseAddress!, count: v, beta: beta,
                                             temperature: 1.5, gradient: grad)
                    }
                }
            }
            var grad = [Float](repeating: 0, count: v)
            _ = grad.withUnsafeMutableBufferPointer { loss(s, $0.baseAddress!) }
            let h: Float = 1e-2
            for i in 0..<v {
                var up = s, down = s
                up[i] += h
                down[i] -= h
                let numeric = (loss(up, nil) - loss(down, nil)) / Double(up[i] - down[i])
                XCTAssertEqual(Double(grad[i]), numeric, accuracy: 2e-4, "beta \(beta) logit \(i)")
            }
        }
    }
}
