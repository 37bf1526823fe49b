import ArgumentParser
import Foundation
import Generation
import Kernels
import Tokenizer
import Training
import Transformer

struct Distill: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Distil a teacher model into the student (--model) with any method: TRL's GKD objective (generalized Jensen-Shannon divergence on the answer tokens), optionally on the student's own answers (--lmbda).",
        discussion: """
        Every option of `peft train` applies (method, data, schedule, checkpoints, --resume, MPI). The log adds \
        distill_loss (the divergence, mean over answer tokens) and ce_loss (the answers' cross-entropy); the \
        trained objective is distill_loss + --ce-weight x ce_loss. Teacher and student must share a tokenizer; \
        where only their vocabulary sizes differ (padded embedding rows, e.g. Qwen2.5-7B's 152064 vs 0.5B's \
        151936), the extra logits are cut.
        """)

    @Option(help: "The teacher: a Hugging Face folder, a hub id or a .gguf file (quantized teachers work).") var teacher: String
    @Option(help: "0: forward KL(teacher || student); 1: reverse KL(student || teacher); between: the generalized JSD.") var beta: Double = 0.5
    @Option(help: "Softmax temperature of both distributions (and of the student's on-policy sampling).") var temperature: Double = 1.0
    @Option(help: "Share of steps whose answers the student generates itself (on-policy, as GKD's lmbda).") var lmbda: Double = 0
    @Option(help: "Most tokens the student generates per on-policy answer.") var maxNewTokens: Int = 128
    @Option(help: "Weight of the reference answers' cross-entropy added to the divergence.") var ceWeight: Double = 0
    @Option(help: "Quantize the teacher's matrices at load (q8_0, q6_k, q4_0, q4_k) to save memory.") var teacherQuantize: QuantType?
    @OptionGroup var train: Train

    func validate() throws {
        if !(0...1).contains(beta) { throw ValidationError("--beta must be in [0, 1], not \(beta)") }
        if !(temperature > 0 && temperature.isFinite) { throw ValidationError("--temperature must be positive, not \(temperature)") }
        if !(0...1).contains(lmbda) { throw ValidationError("--lmbda must be in [0, 1], not \(lmbda)") }
        if !(ceWeight >= 0 && ceWeight.isFinite) { throw ValidationError("--ce-weight must be at least 0, not \(ceWeight)") }
        if maxNewTokens < 1 { throw ValidationError("--max-new-tokens must be at least 1") }
        try HubResolution.resolve(teacher)
    }

    func run() throws {
        let teacherURL = HubResolution.url(teacher)
        try train.run { student, formatter in
            let t = try LoadedModel.open(teacherURL, dtype: student.model.dtype, quantize: teacherQuantize)
            let note = try Self.checkCompatible(student: student, teacher: t, teacherPath: teacherURL.path)
            if let note { Terminal.note(note) }
            var s = DistillationSettings(teacher: t.model)
            s.beta = beta
            s.temperature = temperature
            s.lmbda = lmbda
            s.ceWeight = ceWeight
            s.maxNewTokens = maxNewTokens
            if lmbda > 0 {
                let generator = Generator(model: student.model, capacity: min(student.model.config.maxPositionEmbeddings, train.maxLength + 1))
                let stops = student.stopIDs(formatter)
                let temperature = Float(self.temperature)
                s.generate = { prompt, budget, seed in
                    var o = SamplingOptions()
                    o.maxNewTokens = budget
                    o.temperature = temperature
                    o.seed = seed
                    let r = try generator.generate(prompt: prompt, options: o, stopIDs: stops)
                    // The end of turn the student chose is part of its answer, as a reference answer's is.
                    return r.finishReason == "stop" && r.tokens.count < budget && !stops.isEmpty ? r.tokens + [stops[0]] : r.tokens
                }
            }
            Terminal.note(String(format: "distilling from %@ (%@): beta %.2f, temperature %.2f, on-policy share %.2f, cross-entropy weight %.2f",
                                 teacherURL.lastPathComponent, t.model.config.architecture.rawValue, beta, temperature, lmbda, ceWeight))
            return s
        }
    }

    /// Teacher and student must give the same ids the same tokens: the same vocabulary, token by token. Model vocab
    /// sizes may differ (padding rows); the comparison then cuts to the smaller one (returned as a note).
    static func checkCompatible(student: LoadedModel, teacher: LoadedModel, teacherPath: String) throws -> String? {
        let a = student.tokenizer, b = teacher.tokenizer
        guard a.vocabularySize == b.vocabularySize else {
            throw ValidationError("\(teacherPath): the teacher's tokenizer has \(b.vocabularySize) tokens, the student's \(a.vocabularySize); distillation compares distributions token by token and needs one shared tokenizer")
        }
        for id in 0..<a.vocabularySize {
            let x = a.token(forID: TokenID(id)), y = b.token(forID: TokenID(id))
            if x != y {
                throw ValidationError("\(teacherPath): token \(id) is \(y.map { "'\($0)'" } ?? "absent") for the teacher but \(x.map { "'\($0)'" } ?? "absent") for the student; distillation needs one shared tokenizer")
            }
        }
        let vs = student.model.config.vocabSize, vt = teacher.model.config.vocabSize
        guard min(vs, vt) >= a.vocabularySize else {
            throw ValidationError("\(teacherPath): a model's vocabulary (\(min(vs, vt)) rows) is smaller than the shared tokenizer (\(a.vocabularySize) tokens)")
        }
        return vs == vt ? nil : "note: the teacher's vocabulary has \(vt) rows and the student's \(vs) (same \(a.vocabularySize) tokens); comparing the first \(min(vs, vt)) logits"
    }
}
