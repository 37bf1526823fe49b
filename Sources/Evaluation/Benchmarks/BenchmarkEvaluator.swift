import Foundation
import Kernels
import Tokenizer
import Transformer

/// Multiple-choice accuracy as LLaMA-Factory's evaluator computes it: plain few-shot text (no chat template), the
/// first `nShot` dev questions of the subject, and the letter whose token has the largest logit at the last
/// position; or lm-evaluation-harness's variant, the largest log-probability of " A" .. " D" after the prompt.
public struct BenchmarkEvaluator {
    public enum Scoring: String, CaseIterable, Sendable {
        case argmax, loglikelihood
    }

    public struct SubjectResult: Sendable, Equatable {
        public var subject: String
        public var name: String
        public var category: String
        /// Predicted letters in file order.
        public var predictions: [String]
        /// Each question's four scores (the letters' logits, or the continuations' log-probabilities).
        public var scores: [[Double]]
        public var correct: Int
        /// Questions with a known answer.
        public var answered: Int
        public var accuracy: Double? { answered > 0 ? Double(correct) / Double(answered) : nil }
    }

    public struct Result: Sendable {
        public var subjects: [SubjectResult]
        /// Micro accuracy over the questions of each category, and over all ("average").
        public var categories: [String: Double]
        public var average: Double?
        public var questions: Int
        public var droppedShots: Int
    }

    public let model: TransformerModel
    public let tokenizer: Tokenizer
    public let kind: BenchmarkKind
    public var nShot = 5
    public var scoring = Scoring.argmax
    public var batchSize = 4
    /// Keep the key/value cache of the header and shots, which every question of a subject shares, and run only
    /// each question's own tokens (the scores are those of the full prompt); false: packed batches of whole
    /// prompts.
    public var reuseSharedPrefix = true

    static let letters = ["A", "B", "C", "D"]

    public init(model: TransformerModel, tokenizer: Tokenizer, kind: BenchmarkKind) {
        self.model = model
        self.tokenizer = tokenizer
        self.kind = kind
    }

    /// The header LLaMA-Factory's en / zh evaluation templates put before the first question.
    func header(_ subject: BenchmarkSubject) -> String {
        kind.chinese ? "以下是中国关于\(subject.name)考试的单项选择题，请选出其中的正确答案。\n\n"
                     : "The following are multiple choice questions (with answers) about \(subject.name).\n\n"
    }

    /// A question with its options and the answer cue.
    func text(_ q: BenchmarkQuestion) -> String {
        var s = q.question
        for (letter, option) in zip(Self.letters, q.options) { s += "\n\(letter). \(option)" }
        return s + (kind.chinese ? "\n答案：" : "\nAnswer:")
    }

    /// Token ids of the prompt for `q` with `shots` dev questions: each message encoded on its own and the ids
    /// joined (as LLaMA-Factory's few-shot template encodes them), the header on the first, each shot's answer
    /// followed by a blank line.
    public func prompt(_ subject: BenchmarkSubject, _ q: BenchmarkQuestion, shots: Int) -> [Int32] {
        var pieces: [String] = []
        for shot in subject.dev.prefix(shots) {
            pieces.append(text(shot))
            pieces.append((shot.answer ?? "") + "\n\n")
        }
        pieces.append(text(q))
        pieces[0] = header(subject) + pieces[0]
        var ids: [Int32] = []
        for (i, p) in pieces.enumerated() { ids += tokenizer.encode(p, addSpecialTokens: i == 0) }
        return ids
    }

    /// The prompt that fits the model's context: shots dropped from the back of the list until it does.
    func fittedPrompt(_ subject: BenchmarkSubject, _ q: BenchmarkQuestion, reserve: Int) -> (ids: [Int32], dropped: Int) {
        let limit = model.config.maxPositionEmbeddings - reserve
        var shots = min(nShot, subject.dev.count)
        var ids = prompt(subject, q, shots: shots)
        let wanted = shots
        while ids.count > limit && shots > 0 {
            shots -= 1
            ids = prompt(subject, q, shots: shots)
        }
        if ids.count > limit { ids = Array(ids.suffix(limit)) }
        return (ids, wanted - shots)
    }

    public func evaluate(_ subjects: [BenchmarkSubject], progress: ((Int, Int) -> Void)? = nil) throws -> Result {
        let total = subjects.reduce(0) { $0 + $1.questions.count }
        // argmax: the last token of each letter; loglikelihood: the tokens of " A" .. " D".
        let letterIDs = Self.letters.map { tokenizer.encode($0, addSpecialTokens: false).last ?? 0 }
        let continuations = Self.letters.map { tokenizer.encode(" " + $0, addSpecialTokens: false) }
        if let bad = (letterIDs + continuations.flatMap { $0 }).first(where: { Int($0) >= model.config.vocabSize || $0 < 0 }) {
            throw TransformerError.input(reason: "the tokenizer's id \(bad) for an answer letter is outside the model's vocabulary")
        }
        let reserve = scoring == .loglikelihood ? continuations.map(\.count).max() ?? 1 : 0
        var done = 0, dropped = 0
        var results: [SubjectResult] = []
        for subject in subjects {
            var predictions: [String] = [], scores: [[Double]] = []
            let session = reuseSharedPrefix ? DecodeSession(model: model, capacity: model.config.maxPositionEmbeddings) : nil
            var start = 0
            while start < subject.questions.count {
                let batch = Array(subject.questions[start..<min(subject.questions.count, start + batchSize)])
                let prompts = batch.map { fittedPrompt(subject, $0, reserve: reserve) }
                dropped += prompts.reduce(0) { $0 + $1.dropped }
                let scored = try session.map { s in
                    try prompts.map { try score($0.ids, session: s, letterIDs: letterIDs, continuations: continuations) }
                } ?? score(prompts.map(\.ids), letterIDs: letterIDs, continuations: continuations)
                scores += scored
                predictions += scored.map { row in
                    Self.letters[row.indices.max { row[$0] < row[$1] || (row[$0] == row[$1] && $0 > $1) }!]
                }
                start += batch.count
                done += batch.count
                progress?(done, total)
            }
            var correct = 0, answered = 0
            for (p, q) in zip(predictions, subject.questions) where q.answer != nil {
                answered += 1
                if p == q.answer { correct += 1 }
            }
            results.append(SubjectResult(subject: subject.id, name: subject.name, category: subject.category,
                                         predictions: predictions, scores: scores, correct: correct, answered: answered))
        }
        var categories: [String: Double] = [:]
        for c in BenchmarkData.categories {
            let members = results.filter { $0.category == c }
            let n = members.reduce(0) { $0 + $1.answered }
            if n > 0 { categories[c] = Double(members.reduce(0) { $0 + $1.correct }) / Double(n) }
        }
        let answered = results.reduce(0) { $0 + $1.answered }
        let average = answered > 0 ? Double(results.reduce(0) { $0 + $1.correct }) / Double(answered) : nil
        return Result(subjects: results, categories: categories, average: average, questions: total, droppedShots: dropped)
    }

    /// The four scores of one prompt through a session that may already hold its beginning (the header and shots
    /// of the previous question).
    func score(_ prompt: [Int32], session: DecodeSession, letterIDs: [Int32], continuations: [[Int32]]) throws -> [Double] {
        let shared = zip(session.tokens, prompt).prefix { $0 == $1 }.count
        session.truncate(to: min(shared, prompt.count - 1))
        let logits = try session.append(Array(prompt[session.tokens.count...]))
        switch scoring {
        case .argmax:
            return letterIDs.map { Double(logits[Int($0)]) }
        case .loglikelihood:
            func logp(_ row: [Float], _ id: Int32) -> Double {
                row.withUnsafeBufferPointer { Double($0[Int(id)] - Ops.logSumExp($0.baseAddress!, count: row.count).lse) }
            }
            return try continuations.map { c in
                var sum = logp(logits, c[0])
                if c.count > 1 {
                    for j in 1..<c.count { sum += logp(try session.append([c[j - 1]]), c[j]) }
                    session.truncate(to: prompt.count)
                }
                return sum
            }
        }
    }

    /// The four scores of each prompt (the prediction is the first largest, as torch's argmax).
    func score(_ prompts: [[Int32]], letterIDs: [Int32], continuations: [[Int32]]) throws -> [[Double]] {
        let V = model.config.vocabSize
        switch scoring {
        case .argmax:
            // One labelled row per prompt: its last position.
            let labels = prompts.flatMap { p in [Int32](repeating: -100, count: p.count - 1) + [0] }
            let logits = model.labelledLogits(PackedBatch(sequences: prompts), labels: labels)
            return prompts.indices.map { i in letterIDs.map { Double(logits.pointer[i * V + Int($0)]) } }
        case .loglikelihood:
            // Each prompt with each continuation; the summed log-probability of the continuation's tokens.
            var sequences: [[Int32]] = [], labels: [Int32] = []
            for p in prompts {
                for c in continuations {
                    let ids = p + c
                    sequences.append(ids)
                    labels += (0..<ids.count).map { t in t >= p.count - 1 && t + 1 < ids.count ? ids[t + 1] : -100 }
                }
            }
            let logits = model.labelledLogits(PackedBatch(sequences: sequences), labels: labels)
            var row = 0
            var scores: [Double] = []
            for (s, ids) in sequences.enumerated() {
                let prompt = prompts[s / continuations.count]
                var sum = 0.0
                for t in (prompt.count - 1)..<(ids.count - 1) {
                    let r = logits.pointer + row * V
                    let (lse, _) = Ops.logSumExp(r, count: V)
                    sum += Double(r[Int(ids[t + 1])] - lse)
                    row += 1
                }
                scores.append(sum)
            }
            return prompts.indices.map { Array(scores[($0 * 4)..<($0 * 4 + 4)]) }
        }
    }
}
