import Foundation

/// The Unicode normalization a `tokenizer.json` applies before pre-tokenization (`normalizer` field).
/// Supported: `null`, `NFC`, `NFD`, `NFKC`, `NFKD` and a `Sequence` of those; anything else is rejected at load.
/// ```swift
/// let nfkc = Normalizer(forms: [.nfkc])
/// String(decoding: nfkc.apply(Array("ＡＢＣ".utf8)[...]), as: UTF8.self)   // "ABC"
/// ```
struct Normalizer: Sendable, Equatable {
    enum Form: String, Sendable {
        case nfc = "NFC", nfd = "NFD", nfkc = "NFKC", nfkd = "NFKD"
    }

    /// Applied in order; empty means the text is used as is.
    let forms: [Form]

    init(forms: [Form]) {
        self.forms = forms
    }

    /// Reads the `normalizer` field (nil or `null` for none).
    init(json field: JSONField?) throws {
        guard let field else {
            self.init(forms: [])
            return
        }
        let type = try field.required("type").string()
        if let form = Form(rawValue: type) {
            self.init(forms: [form])
        } else if type == "Sequence" {
            let parts = try field.required("normalizers").array().map { try Normalizer(json: $0) }
            self.init(forms: parts.flatMap(\.forms))
        } else {
            throw try field.required("type").unsupported(type)
        }
    }

    var isIdentity: Bool { forms.isEmpty }

    /// The normalized UTF-8 of `bytes` (ASCII text is returned unchanged by every form).
    func apply(_ bytes: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        guard !forms.isEmpty, bytes.contains(where: { $0 >= 0x80 }) else { return bytes }
        var text = String(decoding: bytes, as: UTF8.self)
        for form in forms {
            switch form {
            case .nfc: text = text.precomposedStringWithCanonicalMapping
            case .nfd: text = text.decomposedStringWithCanonicalMapping
            case .nfkc: text = text.precomposedStringWithCompatibilityMapping
            case .nfkd: text = text.decomposedStringWithCompatibilityMapping
            }
        }
        return Array(text.utf8)[...]
    }
}
