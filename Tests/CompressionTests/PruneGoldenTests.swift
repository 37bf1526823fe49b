import Compression
import Foundation
import ModelIO
import TestSupport
import Transformer
import XCTest

/// Pruning against the published algorithms as scripts/make_prune_fixtures.py runs them in float64 on the same
/// calibration token ids: masks, SparseGPT's updated weights, the pruned model's loss and logits, layer scores.
final class PruneGoldenTests: XCTestCase {
    struct Calibration: Decodable {
        struct Removal: Decodable {
            let removed: [Int]
            let logits: [Float]
            let lossAfter: Double
            enum CodingKeys: String, CodingKey { case removed, logits = "logits_sample0_last3", lossAfter = "loss_after" }
        }
        let samples: [[Int32]]
        let lossBefore: Double
        let blockInfluence: [Double]
        let angular: [Double]
        let removeLayers1: Removal
        let removeBlock2: Removal
        enum CodingKeys: String, CodingKey {
            case samples, lossBefore = "loss_before", blockInfluence = "block_influence",
                 angular = "angular_distance_block2", removeLayers1 = "remove_layers1", removeBlock2 = "remove_block2"
        }
    }

    struct Run: Decodable {
        let lossAfter: Double
        let logits: [Float]
        enum CodingKeys: String, CodingKey { case lossAfter = "loss_after", logits = "logits_sample0_last3" }
    }

    let modelURL = modelFixture("tiny-qwen2-prune")

    func calibration() throws -> Calibration {
        try JSONDecoder().decode(Calibration.self, from: Data(contentsOf: fixtureURL("golden/prune-calibration.json")))
    }

    /// Logits of the last 3 positions of `ids`.
    func lastLogits(_ model: TransformerModel, _ ids: [Int32]) -> [Float] {
        let all = model.logits(PackedBatch(sequences: [ids]))
        return Array(all.suffix(3 * model.config.vocabSize))
    }

    func check(method: PruneMethod, sparsity: Double, pattern: SparsityPattern, tag: String, weights: Bool) throws {
        let cal = try calibration()
        let model = try TransformerModel.load(directory: modelURL, dtype: .float32)
        let pruner = Pruner(model: model, samples: cal.samples)
        XCTAssertEqual(pruner.calibrationLoss(), cal.lossBefore, accuracy: 1e-5)
        let matrices = try pruner.prune(PruneSettings(method: method, sparsity: sparsity, pattern: pattern))
        XCTAssertEqual(matrices.count, 4 * 7)
        let golden = try SafetensorsFile(path: fixtureURL("golden/prune-\(tag).safetensors").path)
        var mismatched = 0, total = 0, worst: Float = 0
        for l in 0..<4 {
            for p in model.config.projections {
                let name = model.config.layout.moduleName(ProjectionSite(layer: l, projection: p)) + ".weight"
                let w = model.weights.layers[l].linear(p).weight.toFloat()
                let mask = try XCTUnwrap(golden.tensors[name + ".mask"])
                let m = mask.data.assumingMemoryBound(to: UInt8.self)
                for i in 0..<mask.elementCount {
                    total += 1
                    if (w.pointer[i] == 0) != (m[i] == 1) { mismatched += 1 }
                }
                if weights {
                    let ref = try XCTUnwrap(golden.tensors[name]).floatBuffer()
                    for i in 0..<mask.elementCount { worst = max(worst, abs(ref.pointer[i] - w.pointer[i])) }
                }
                let reported = matrices.first { $0.name == name }
                XCTAssertNotNil(reported, name)
                XCTAssertEqual(reported?.sparsity ?? -1, Masks.zeroShare(w.pointer, count: mask.elementCount), accuracy: 1e-12)
            }
        }
        XCTAssertEqual(mismatched, 0, "\(tag): \(mismatched) of \(total) mask entries differ from the reference")
        if weights { XCTAssertLessThan(worst, 1e-4, "\(tag): largest weight difference \(worst)") }
        let run = try JSONDecoder().decode(Run.self, from: Data(contentsOf: fixtureURL("golden/prune-\(tag).json")))
        XCTAssertEqual(pruner.calibrationLoss(), run.lossAfter, accuracy: 1e-4, tag)
        let logits = lastLogits(model, cal.samples[0])
        XCTAssertEqual(logits.count, run.logits.count)
        let diff = zip(logits, run.logits).map { abs($0 - $1) }.max() ?? 1
        XCTAssertLessThan(diff, 1e-3, "\(tag): logits differ by \(diff)")
    }

    func testMagnitudeUnstructured() throws { try check(method: .magnitude, sparsity: 0.5, pattern: .unstructured, tag: "magnitude-u50", weights: false) }
    func testMagnitude2of4() throws { try check(method: .magnitude, sparsity: 0.5, pattern: .nOfM(n: 2, m: 4), tag: "magnitude-2-4", weights: false) }
    func testWandaUnstructured() throws { try check(method: .wanda, sparsity: 0.5, pattern: .unstructured, tag: "wanda-u50", weights: false) }
    func testWanda2of4() throws { try check(method: .wanda, sparsity: 0.5, pattern: .nOfM(n: 2, m: 4), tag: "wanda-2-4", weights: false) }
    func testSparseGPTUnstructured() throws { try check(method: .sparsegpt, sparsity: 0.5, pattern: .unstructured, tag: "sparsegpt-u50", weights: true) }
    func testSparseGPT30Percent() throws { try check(method: .sparsegpt, sparsity: 0.3, pattern: .unstructured, tag: "sparsegpt-u30", weights: false) }
    func testSparseGPT2of4() throws { try check(method: .sparsegpt, sparsity: 0.5, pattern: .nOfM(n: 2, m: 4), tag: "sparsegpt-2-4", weights: true) }

    func testLayerScoresAndRemovedModels() throws {
        let cal = try calibration()
        let model = try TransformerModel.load(directory: modelURL, dtype: .float32)
        let scores = LayerRemoval.scores(model: model, samples: cal.samples, block: 2)
        for (a, b) in zip(scores.blockInfluence, cal.blockInfluence) { XCTAssertEqual(a, b, accuracy: 1e-5 * max(1, abs(b))) }
        XCTAssertEqual(scores.angularDistance?.count, cal.angular.count)
        for (a, b) in zip(scores.angularDistance ?? [], cal.angular) { XCTAssertEqual(a, b, accuracy: 1e-5) }
        for (layers, block, golden) in [(1, nil, cal.removeLayers1), (nil, 2, cal.removeBlock2)] as [(Int?, Int?, Calibration.Removal)] {
            let removed = LayerRemoval.choose(scores, layers: layers, block: block)
            XCTAssertEqual(removed, golden.removed)
            let pruner = Pruner(model: model, samples: cal.samples)
            XCTAssertEqual(pruner.calibrationLoss(skipping: Set(removed)), golden.lossAfter, accuracy: 1e-5)
            // The written folder is an ordinary smaller model with the reference's logits.
            let out = FileManager.default.temporaryDirectory.appendingPathComponent("prune-layers-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: out) }
            _ = try PrunedModelWriter.write(source: modelURL, model: model, replaced: [], removedLayers: removed,
                                            report: Data("{}".utf8), output: out)
            let smaller = try TransformerModel.load(directory: out, dtype: .float32)
            XCTAssertEqual(smaller.config.layerCount, 4 - removed.count)
            let logits = lastLogits(smaller, cal.samples[0])
            let diff = zip(logits, golden.logits).map { abs($0 - $1) }.max() ?? 1
            XCTAssertLessThan(diff, 1e-3, "removed \(removed): logits differ by \(diff)")
            let dir = try ModelDirectory(url: out)
            XCTAssertFalse(dir.contains("model.layers.\(4 - removed.count).input_layernorm.weight"))
        }
    }

    /// The written folder holds the pruned weights (zeros included) under the source's names and dtype.
    func testPrunedFolderRoundTrips() throws {
        let cal = try calibration()
        let model = try TransformerModel.load(directory: modelURL, dtype: .float32)
        let matrices = try Pruner(model: model, samples: cal.samples).prune(PruneSettings(method: .wanda, sparsity: 0.5))
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("prune-out-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: out) }
        _ = try PrunedModelWriter.write(source: modelURL, model: model, replaced: Set(matrices.map(\.name)), removedLayers: [],
                                        report: Data("{}".utf8), output: out)
        let back = try TransformerModel.load(directory: out, dtype: .float32)
        for l in 0..<4 {
            for p in model.config.projections {
                let a = model.weights.layers[l].linear(p).weight.toFloat(), b = back.weights.layers[l].linear(p).weight.toFloat()
                let n = model.weights.layers[l].linear(p).weight.rows * model.weights.layers[l].linear(p).weight.cols
                XCTAssertEqual(Array(UnsafeBufferPointer(start: a.pointer, count: n)), Array(UnsafeBufferPointer(start: b.pointer, count: n)))
                XCTAssertEqual(Masks.zeroShare(b.pointer, count: n), 0.5, accuracy: 1e-12)
            }
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent(PrunedModelWriter.reportFileName).path))
        // A second write over a folder that is not an earlier prune is refused.
        let other = FileManager.default.temporaryDirectory.appendingPathComponent("prune-other-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: other, withIntermediateDirectories: true)
        try Data("x".utf8).write(to: other.appendingPathComponent("keep.txt"))
        defer { try? FileManager.default.removeItem(at: other) }
        XCTAssertThrowsError(try PrunedModelWriter.write(source: modelURL, model: model, replaced: [], removedLayers: [],
                                                         report: Data("{}".utf8), output: other))
    }

    // MARK: Mixture of experts

    struct MoECalibration: Decodable {
        let samples: [[Int32]]
        let lossBefore: Double
        let blockInfluence: [Double]
        let removeLayers1: Calibration.Removal
        enum CodingKeys: String, CodingKey {
            case samples, lossBefore = "loss_before", blockInfluence = "block_influence", removeLayers1 = "remove_layers1"
        }
    }

    /// tiny-qwen2-moe (layer 0: 4 experts, top-2, a shared expert; layer 1 dense): every expert's and the shared
    /// expert's projections are pruned with statistics over the rows routed to them, as the reference prunes
    /// them; the written folder holds every pruned matrix under its checkpoint name.
    func checkMoE(method: PruneMethod, pattern: SparsityPattern, tag: String) throws {
        let cal = try JSONDecoder().decode(MoECalibration.self, from: Data(contentsOf: fixtureURL("golden/prune-moe-calibration.json")))
        let source = modelFixture("tiny-qwen2-moe")
        let model = try TransformerModel.load(directory: source, dtype: .float32)
        let pruner = Pruner(model: model, samples: cal.samples)
        XCTAssertEqual(pruner.calibrationLoss(), cal.lossBefore, accuracy: 1e-5)
        let matrices = try pruner.prune(PruneSettings(method: method, sparsity: 0.5, pattern: pattern))
        XCTAssertTrue(pruner.unreachedExperts.isEmpty, "every expert gets calibration rows here")
        let golden = try SafetensorsFile(path: fixtureURL("golden/prune-moe-\(tag).safetensors").path)
        let names = golden.tensors.keys.filter { $0.hasSuffix(".mask") }.map { String($0.dropLast(5)) }.sorted()
        // Layer 0: q, k, v, o, 4 experts x 3, the shared expert's 3; layer 1: the 7 dense projections.
        XCTAssertEqual(names.count, 26)
        XCTAssertEqual(Set(matrices.map(\.name)), Set(names))
        XCTAssertFalse(names.contains { $0.contains("mlp.gate.weight") || $0.contains("shared_expert_gate") })
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("prune-moe-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: out) }
        _ = try PrunedModelWriter.write(source: source, model: model, replaced: Set(matrices.map(\.name)), removedLayers: [],
                                        report: Data("{}".utf8), output: out)
        let written = try ModelDirectory(url: out)
        var mismatched = 0, total = 0, worst: Float = 0
        for name in names {
            let w = try written.tensor(name).floatBuffer()
            let mask = try XCTUnwrap(golden.tensors[name + ".mask"])
            let m = mask.data.assumingMemoryBound(to: UInt8.self)
            for i in 0..<mask.elementCount {
                total += 1
                if (w.pointer[i] == 0) != (m[i] == 1) { mismatched += 1 }
            }
            if method == .sparsegpt {
                let ref = try XCTUnwrap(golden.tensors[name]).floatBuffer()
                for i in 0..<mask.elementCount { worst = max(worst, abs(ref.pointer[i] - w.pointer[i])) }
            }
        }
        XCTAssertEqual(mismatched, 0, "\(tag): \(mismatched) of \(total) mask entries differ from the reference")
        XCTAssertLessThan(worst, 1e-4, "\(tag): largest weight difference \(worst)")
        // The router and the shared expert's gate are copied untouched.
        let src = try ModelDirectory(url: source)
        for name in ["model.layers.0.mlp.gate.weight", "model.layers.0.mlp.shared_expert_gate.weight"] {
            let a = try src.tensor(name).floatBuffer(), b = try written.tensor(name).floatBuffer()
            let n = try src.tensor(name).elementCount
            XCTAssertEqual(Array(UnsafeBufferPointer(start: a.pointer, count: n)), Array(UnsafeBufferPointer(start: b.pointer, count: n)))
        }
        let run = try JSONDecoder().decode(Run.self, from: Data(contentsOf: fixtureURL("golden/prune-moe-\(tag).json")))
        XCTAssertEqual(pruner.calibrationLoss(), run.lossAfter, accuracy: 1e-4, tag)
        let back = try TransformerModel.load(directory: out, dtype: .float32)
        let diff = zip(lastLogits(back, cal.samples[0]), run.logits).map { abs($0 - $1) }.max() ?? 1
        XCTAssertLessThan(diff, 1e-3, "\(tag): logits of the written model differ by \(diff)")
    }

    func testMoEMagnitude() throws { try checkMoE(method: .magnitude, pattern: .unstructured, tag: "magnitude-u50") }
    func testMoEWanda() throws { try checkMoE(method: .wanda, pattern: .unstructured, tag: "wanda-u50") }
    func testMoEWanda2of4() throws { try checkMoE(method: .wanda, pattern: .nOfM(n: 2, m: 4), tag: "wanda-2-4") }
    func testMoESparseGPT() throws { try checkMoE(method: .sparsegpt, pattern: .unstructured, tag: "sparsegpt-u50") }

    /// Layer removal of a mixture of experts: the kept layers keep their kind (the config names the dense ones
    /// among the new indices) and the written model has the reference's logits.
    func testMoELayerRemoval() throws {
        let cal = try JSONDecoder().decode(MoECalibration.self, from: Data(contentsOf: fixtureURL("golden/prune-moe-calibration.json")))
        let source = modelFixture("tiny-qwen2-moe")
        let model = try TransformerModel.load(directory: source, dtype: .float32)
        let scores = LayerRemoval.scores(model: model, samples: cal.samples, block: nil)
        for (a, b) in zip(scores.blockInfluence, cal.blockInfluence) { XCTAssertEqual(a, b, accuracy: 1e-5 * max(1, abs(b))) }
        let removed = LayerRemoval.choose(scores, layers: 1, block: nil)
        XCTAssertEqual(removed, cal.removeLayers1.removed)
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("prune-moe-layers-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: out) }
        _ = try PrunedModelWriter.write(source: source, model: model, replaced: [], removedLayers: removed,
                                        report: Data("{}".utf8), output: out)
        let smaller = try TransformerModel.load(directory: out, dtype: .float32)
        XCTAssertEqual(smaller.config.layerCount, 1)
        // The kept layer is the other one of the two, sparse (0) or dense (1), and stays so.
        XCTAssertEqual(smaller.config.isSparse(layer: 0), model.config.isSparse(layer: removed == [0] ? 1 : 0))
        let diff = zip(lastLogits(smaller, cal.samples[0]), cal.removeLayers1.logits).map { abs($0 - $1) }.max() ?? 1
        XCTAssertLessThan(diff, 1e-3, "removed \(removed): logits differ by \(diff)")
        // Removing the sparse layer instead: the dense layer moves to index 0 and stays dense.
        let other = FileManager.default.temporaryDirectory.appendingPathComponent("prune-moe-layers-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: other) }
        _ = try PrunedModelWriter.write(source: source, model: model, replaced: [], removedLayers: [0],
                                        report: Data("{}".utf8), output: other)
        let dense = try TransformerModel.load(directory: other, dtype: .float32)
        XCTAssertFalse(dense.config.isSparse(layer: 0))
        XCTAssertNil(dense.weights.layers[0].moe)
        let a = model.weights.layers[1].linear(.down).weight.toFloat(), b = dense.weights.layers[0].linear(.down).weight.toFloat()
        let n = model.weights.layers[1].linear(.down).weight.rows * model.weights.layers[1].linear(.down).weight.cols
        XCTAssertEqual(Array(UnsafeBufferPointer(start: a.pointer, count: n)), Array(UnsafeBufferPointer(start: b.pointer, count: n)))
    }
}
