import Foundation

extension SentencePieceVocabulary {
    /// Reads a SentencePiece `tokenizer.model` (a serialized `ModelProto`): the pieces (field 1: piece, score, type),
    /// the trainer spec (field 2: model type, byte_fallback, unk/bos/eos/pad ids) and the normalizer spec (field 3:
    /// add_dummy_prefix, remove_extra_whitespaces). Only BPE models are accepted; Unigram ones are refused by name.
    /// A normalization rule other than identity (a non-empty precompiled charsmap) is refused too, since it would
    /// change the text before encoding.
    public init(modelFile data: Data, file: String) throws {
        var reader = ProtobufReader(bytes: [UInt8](data), file: file)
        var pieces: [Piece] = []
        var trainer: [UInt8] = [], normalizer: [UInt8] = []
        while let (field, wire) = try reader.nextField() {
            switch (field, wire) {
            case (1, 2): pieces.append(try Self.piece(try reader.lengthDelimited(), file: file, index: pieces.count))
            case (2, 2): trainer = try reader.lengthDelimited()
            case (3, 2): normalizer = try reader.lengthDelimited()
            default: try reader.skip(wire)
            }
        }
        guard !pieces.isEmpty else { throw reader.error("the model has no pieces") }
        self.init(pieces: pieces)
        // Proto defaults: model_type UNIGRAM, byte_fallback false, unk 0, bos 1, eos 2, pad -1.
        var modelType = 1
        var ids: [Int: Int] = [40: 0, 41: 1, 42: 2, 43: -1]
        byteFallback = false
        var spec = ProtobufReader(bytes: trainer, file: file)
        while let (field, wire) = try spec.nextField() {
            switch (field, wire) {
            case (3, 0): modelType = Int(truncatingIfNeeded: try spec.varint())
            case (35, 0): byteFallback = try spec.varint() != 0
            case (40...43, 0): ids[field] = Int(Int32(truncatingIfNeeded: try spec.varint()))
            default: try spec.skip(wire)
            }
        }
        guard modelType == 2 else {
            let name = [1: "UNIGRAM", 3: "WORD", 4: "CHAR"][modelType] ?? "\(modelType)"
            throw TokenizerError.unsupported(file: file, field: "trainer_spec.model_type", value: "\(name) (only BPE models are supported)")
        }
        func id(_ field: Int) -> TokenID? {
            guard let value = ids[field], value >= 0, value < pieces.count else { return nil }
            return TokenID(value)
        }
        unknownID = id(40)
        bosID = id(41)
        eosID = id(42)
        padID = id(43)
        addsDummyPrefix = true
        removesExtraWhitespaces = true
        var norm = ProtobufReader(bytes: normalizer, file: file)
        while let (field, wire) = try norm.nextField() {
            switch (field, wire) {
            case (2, 2):
                if !(try norm.lengthDelimited()).isEmpty {
                    throw TokenizerError.unsupported(file: file, field: "normalizer_spec.precompiled_charsmap",
                                                     value: "a normalization rule (only identity is supported)")
                }
            case (3, 0): addsDummyPrefix = try norm.varint() != 0
            case (4, 0): removesExtraWhitespaces = try norm.varint() != 0
            case (5, 0):
                if try norm.varint() == 0 {
                    throw TokenizerError.unsupported(file: file, field: "normalizer_spec.escape_whitespaces", value: "false")
                }
            default: try norm.skip(wire)
            }
        }
    }

    /// One `SentencePiece` message: piece (1), score (2, float), type (3).
    private static func piece(_ bytes: [UInt8], file: String, index: Int) throws -> Piece {
        var reader = ProtobufReader(bytes: bytes, file: file)
        var text = "", score: Float = 0, type = PieceType.normal
        while let (field, wire) = try reader.nextField() {
            switch (field, wire) {
            case (1, 2):
                let raw = try reader.lengthDelimited()
                guard let decoded = String(validating: raw, as: UTF8.self) else { throw reader.error("piece \(index) is not UTF-8") }
                text = decoded
            case (2, 5): score = Float(bitPattern: try reader.fixed32())
            case (3, 0):
                let raw = try reader.varint()
                guard let parsed = PieceType(rawValue: Int(truncatingIfNeeded: raw)) else {
                    throw reader.error("piece \(index) has type \(raw), expected 1...6")
                }
                type = parsed
            default: try reader.skip(wire)
            }
        }
        guard !text.isEmpty else { throw reader.error("piece \(index) is empty") }
        return Piece(text: text, score: score, type: type)
    }
}
