import Foundation
import Kernels
import ModelIO
import Transformer

/// Folds an adapter into a copy of its base model: LoRA's W + s B A, DoRA's m / ||W + s B A|| (W + s B A), (IA)³'s
/// scaled rows (with the bias) or columns, computed in f32 and stored back in each tensor's original dtype. The
/// shard layout, config and tokenizer files are kept, so transformers loads the result like the original. A pruned
/// base (a tensor with at least 10% exact zeros) keeps its zeros: the merged values are masked back onto them.
/// Prompt-learning adapters have nothing to fold and are refused.
///
/// ```swift
/// try AdapterMerger.merge(model: baseURL, adapter: lora, output: mergedURL)
/// ```
public enum AdapterMerger {
    public struct Report: Sendable {
        public var mergedTensors: Int
        public var files: Int
        public var bytes: Int
        /// Merged tensors of a pruned base whose zeros were kept (`sparseZeroShare`).
        public var remaskedTensors = 0
    }

    /// Written into every merged directory; a directory holding it may be replaced by a new merge.
    public static let markerFileName = "peft_merge.json"

    public static func merge(model modelURL: URL, adapter: TrainableAdapter, output: URL) throws -> Report {
        if let why = adapter.method.mergeRefusal {
            throw AdapterError.unsupported(path: output.path, reason: why)
        }
        let source = modelURL.standardizedFileURL.resolvingSymlinksInPath()
        let target = output.standardizedFileURL.resolvingSymlinksInPath()
        guard source.path != target.path else {
            throw AdapterError.io(path: output.path, reason: "the output must differ from the base model directory")
        }
        // Never replace a directory that holds the inputs, or anything that is not an earlier merge.
        if source.path.hasPrefix(target.path + "/") {
            throw AdapterError.io(path: output.path, reason: "the output contains the base model; choose a new directory")
        }
        let fm = FileManager.default
        if let items = try? fm.contentsOfDirectory(atPath: target.path), !items.isEmpty,
           !items.contains(markerFileName) {
            throw AdapterError.io(path: output.path, reason: "the output directory exists and is not an earlier merge; remove it or choose a new directory")
        }
        var report = Report(mergedTensors: 0, files: 0, bytes: 0, remaskedTensors: 0)
        try AtomicFile.writeDirectory(output) { dir in report = try writeFiles(from: modelURL, adapter: adapter, into: dir) }
        return report
    }

    /// Writes the adapted model's files into the existing directory `url`, beside what it holds (a training run's
    /// log and checkpoints): staged in full first, then each file renamed into place.
    @discardableResult
    public static func writeModel(from modelURL: URL, adapter: TrainableAdapter, into url: URL) throws -> Report {
        let fm = FileManager.default
        try fm.createDirectory(at: url, withIntermediateDirectories: true)
        let staging = url.appendingPathComponent(".model-staging-\(getpid())")
        try? fm.removeItem(at: staging)
        try fm.createDirectory(at: staging, withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: staging) }
        let report = try writeFiles(from: modelURL, adapter: adapter, into: staging)
        for item in try fm.contentsOfDirectory(atPath: staging.path) {
            guard rename(staging.appendingPathComponent(item).path, url.appendingPathComponent(item).path) == 0 else {
                throw AdapterError.io(path: url.appendingPathComponent(item).path, reason: "cannot write: \(String(cString: strerror(errno)))")
            }
        }
        return report
    }

    /// The base model's files with every tensor the adapter touches replaced, written into the empty `dir`.
    static func writeFiles(from modelURL: URL, adapter: TrainableAdapter, into dir: URL) throws -> Report {
        let directory = try ModelDirectory(url: modelURL)
        let touched = Set(adapter.mergedTensorNames.filter { !$0.hasSuffix(".bias") || directory.contains($0) })
        for name in touched where !directory.contains(name) {
            throw AdapterError.mismatches(path: modelURL.path, problems: ["the base model has no tensor \(name)"])
        }
        var merged = 0, remasked = 0
        let marker: [String: Any] = ["base_model": modelURL.path, "adapter": adapter.method.rawValue,
                                     "summary": adapter.summary, "merged_tensors": touched.count]
        try JSONSerialization.data(withJSONObject: marker, options: [.prettyPrinted, .sortedKeys])
            .write(to: dir.appendingPathComponent(markerFileName))
        let written = try DerivedModelFolder.write(
            from: modelURL, directory: directory, into: dir, skipFile: { $0 == markerFileName }, replaceFile: { _ in nil },
            rename: { $0 },
            unsupported: { v in
                // Non-float tensors are not expected in decoder checkpoints; refuse rather than guess.
                AdapterError.io(path: v.file.path, reason: "tensor \(v.name) has dtype \(v.dtypeName), which merge does not handle")
            }) { entry, view, out in
                guard touched.contains(entry.name) else { return false }
                // Trained tensors replace the base's values: its bytes are never read (or paged in).
                let w = adapter.mergeOverwrites ? FloatBuffer(count: view.elementCount) : try view.floatBuffer()
                let folded = withExtendedLifetime(w) { () -> Bool in
                    // A pruned (sparse) base keeps its zeros: the merged update is masked back onto them.
                    let zeros = adapter.mergeOverwrites ? [] : sparseZeros(w.pointer, count: view.elementCount)
                    guard adapter.merge(tensor: entry.name, values: w.pointer, shape: view.shape) else { return false }
                    for i in zeros { w.pointer[i] = 0 }
                    if !zeros.isEmpty { remasked += 1 }
                    Convert.fromFloat(w.pointer, dtype: entry.dtype, into: out.baseAddress!, count: view.elementCount)
                    return true
                }
                guard folded else {
                    throw AdapterError.mismatches(path: modelURL.path, problems: ["\(entry.name) has shape \(view.shape), which the adapter's update does not fit"])
                }
                merged += 1
                return true
            }
        return Report(mergedTensors: merged, files: written.files, bytes: written.bytes, remaskedTensors: remasked)
    }

    /// A tensor with at least this share of exact zeros is a pruned one (dense checkpoints hold next to none).
    public static let sparseZeroShare = 0.1

    /// The indices of the zeros of a sparse tensor; empty for a dense one.
    static func sparseZeros(_ values: UnsafePointer<Float>, count: Int) -> [Int] {
        var zeros: [Int] = []
        for i in 0..<count where values[i] == 0 { zeros.append(i) }
        return Double(zeros.count) >= sparseZeroShare * Double(count) && count > 0 ? zeros : []
    }
}
