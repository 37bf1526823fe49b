import Foundation

/// The bundled Chinese patent-medicine Q&A set (Alpaca format; see DATA_CARD.md): 80 training and 20 test
/// records, 20 over-the-counter medicines. Not medical advice.
public enum DemoData {
    public static let instruction = "使用中医知识正确回答适合这个病例的中成药。"
    /// Extracts the medicine name from the first line of an answer.
    public static let nameRegex = "推荐用药：([^。\\n]+)"

    /// Writes train.jsonl, test.jsonl and DATA_CARD.md into `directory`.
    public static func write(to directory: URL) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try Data((DemoAssets.trainJSONL + "\n").utf8).write(to: directory.appendingPathComponent("train.jsonl"))
        try Data((DemoAssets.testJSONL + "\n").utf8).write(to: directory.appendingPathComponent("test.jsonl"))
        try Data((DemoAssets.dataCard + "\n").utf8).write(to: directory.appendingPathComponent("DATA_CARD.md"))
    }
}
