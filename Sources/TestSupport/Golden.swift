import Foundation

/// Golden numbers written by `scripts/make_model_fixtures.py` from Python transformers.
public struct GoldenModel: Decodable {
    public let sequences: [[Int32]]
    public let logits: [[Float]]
    public let greedyPrompt: [Int32]
    public let greedyContinuation: [Int32]
    public let vocabSize: Int

    enum CodingKeys: String, CodingKey {
        case sequences, logits
        case greedyPrompt = "greedy_prompt"
        case greedyContinuation = "greedy_continuation"
        case vocabSize = "vocab_size"
    }

    public static func load(_ name: String, file: StaticString = #filePath) throws -> GoldenModel {
        let url = fixtureURL("golden/\(name).json", file: file)
        return try JSONDecoder().decode(GoldenModel.self, from: Data(contentsOf: url))
    }
}

/// A tiny checkpoint directory under Tests/Fixtures/models.
public func modelFixture(_ name: String, file: StaticString = #filePath) -> URL {
    fixtureURL("models/\(name)", file: file)
}
