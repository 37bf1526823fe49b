import Adapters
import ArgumentParser
import Foundation
import Kernels
import Tokenizer
import Training
import Transformer

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fine-tune an adapter on instruction data (Alpaca, ShareGPT or messages; .json or .jsonl).",
        discussion: """
        Methods (--method): lora, dora (LoRA with a trained magnitude), ia3 ((IA)³ scaling vectors), prompt (prompt \
        tuning: a trained soft prompt), ptuning (P-tuning: virtual tokens from an MLP encoder) and prefix (prefix \
        tuning / P-tuning v2: trained keys and values in every layer). Writes a Python-PEFT adapter \
        (adapter_config.json + adapter_model.safetensors), checkpoints and a JSON-lines log to --output. Ctrl-C saves \
        a checkpoint and the adapter before stopping.

        Data-parallel over MPI: `mpirun -np N peft train ...` (Open MPI). Every rank loads the model and takes a         token-balanced share of each step's examples; the ranks sum gradients, so a step covers --batch-size x         --grad-accum x N examples and the result equals one process with N times the batch size. Rank 0 alone         writes the log, checkpoints and adapter; --resume needs the same N.
        """)

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Training data file.") var data: String?
    @Option(help: "A data set named in --dataset-dir's dataset_info.json (LLaMA-Factory's data folders), instead of --data.") var dataset: String?
    @Option(help: "The folder holding dataset_info.json and its files.") var datasetDir: String = "data"
    @Option(help: "Output directory for the adapter, checkpoints and log.") var output: String
    @OptionGroup var methodOptions: MethodOptions
    @OptionGroup var quantizeOption: QuantizeOption
    @Option(help: "Passes over the data.") var epochs: Double = 3
    @Option(help: "Stop after this many optimiser steps (overrides --epochs).") var maxSteps: Int?
    @Option(help: "Examples per micro-batch.") var batchSize: Int = 4
    @Option(help: "Micro-batches accumulated per optimiser step.") var gradAccum: Int = 1
    @Option(help: "Peak learning rate (default by method: lora/dora 2e-4, ia3 3e-3, prompt 3e-2, ptuning 1e-3, prefix 1e-2).") var lr: Double?
    @Option(help: "linear, cosine, constant (no warmup, as in transformers) or constant_with_warmup.") var lrScheduler: String = "linear"
    @Option(help: "Share of steps spent warming up from 0.") var warmupRatio: Double = 0
    @Option(help: "Weight decay.") var weightDecay: Double = 0
    @Option(help: "Optimiser: adamw, or adafactor (factored second moment, no first moment: almost no optimiser memory, for full fine-tuning of models whose AdamW state would not fit).")
    var optim: String = "adamw"
    @Option(help: "Gradient clipping norm (0 = off).") var maxGradNorm: Double = 1
    @Option(help: "Mixture-of-experts models: the weight of the router's load-balancing loss (default: the config's router_aux_loss_coef, as LLaMA-Factory trains them; 0 leaves it out).")
    var routerAuxLossCoef: Double?
    @Option(help: "Longest example in tokens (longer ones are cut; those left without answer tokens are dropped).") var maxLength: Int = 512
    @OptionGroup var templateOptions: TemplateOptions
    @Option(help: "Held-out data for evaluation loss.") var evalData: String?
    @Option(help: "Evaluate every N steps (and at every epoch end).") var evalEvery: Int?
    @Option(help: "Save a checkpoint every N steps (and at every epoch end).") var saveEvery: Int?
    @Flag(help: "Recompute layer activations in backward: less memory, ~30% more compute.") var gradientCheckpointing = false
    @Option(help: "Seed for initialisation, shuffling and dropout.") var seed: UInt64 = 42
    @Option(help: "Resume from a checkpoint directory (optimizer state, step and data order restored).") var resume: String?
    @Option(help: "Metrics log (JSON lines); default OUTPUT/train_log.jsonl.") var log: String?
    @Option(help: "Compute precision: bfloat16 (frozen weights and matrix-product inputs in bf16, f32 accumulation; the default where oneDNN is installed: twice the f32 speed, half the memory) or float32 (matches transformers' float32 numbers; the default otherwise).")
    var dtype: ComputeDType?
    @Flag(help: "Drop invalid records (with a count) instead of stopping at the first.") var skipInvalid = false
    @OptionGroup var preferenceOptions: PreferenceOptions

    func run() throws { try run(distill: nil) }

    /// Trains; with `distill`, toward the teacher it makes from the loaded student (`peft distill`).
    func run(distill: TrainingJob.DistillSetup?) throws {
        // Under mpirun: MPI first, so that a failure anywhere below names its rank and ends every rank.
        let world: MPICommunicator?
        do { world = try MPICommunicator.fromEnvironment() } catch { throw ValidationError("mpirun started this process, but \(error)") }
        guard let world else { return try train(world: nil, distill: distill) }
        do {
            try train(world: world, distill: distill)
        } catch let exit as ExitCode {
            world.finalize()
            throw exit
        } catch {
            let message = (error as? LocalizedError)?.errorDescription ?? "\(error)"
            FileHandle.standardError.write(Data("peft train: rank \(world.rank) of \(world.size) failed: \(message)\n".utf8))
            world.abort(1)
        }
        world.finalize()
    }

    func train(world: MPICommunicator?, distill: TrainingJob.DistillSetup?) throws {
        guard let schedule = LRSchedule.Kind(rawValue: lrScheduler) else {
            throw ValidationError("--lr-scheduler must be one of: \(LRSchedule.Kind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard let optimizer = OptimizerKind(rawValue: optim) else {
            throw ValidationError("--optim must be one of: \(OptimizerKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        var options = TrainingOptions()
        options.optimizer = optimizer == .adamw ? nil : optimizer
        options.epochs = epochs
        options.maxSteps = maxSteps
        options.batchSize = batchSize
        options.gradientAccumulation = gradAccum
        options.learningRate = lr ?? methodOptions.defaultLearningRate
        options.scheduler = schedule
        options.warmupRatio = warmupRatio
        options.weightDecay = weightDecay
        options.maxGradNorm = maxGradNorm
        options.routerAuxLossCoef = routerAuxLossCoef
        options.maxLength = maxLength
        options.evalEvery = evalEvery
        options.saveEvery = saveEvery
        options.gradientCheckpointing = gradientCheckpointing
        options.seed = seed
        try options.validate()
        if let r = methodOptions.loraR, r < 1 || r > LoRAConfig.maxRank { throw ValidationError("--lora-r must be within 1...\(LoRAConfig.maxRank)") }
        if let a = methodOptions.loraAlpha, !(a.isFinite && abs(a) <= 1e9) { throw ValidationError("--lora-alpha must be a finite number") }
        if let d = methodOptions.loraDropout, !(0..<1).contains(d) { throw ValidationError("--lora-dropout must be in [0, 1)") }
        guard (data == nil) != (dataset == nil) else { throw ValidationError("give exactly one of --data FILE or --dataset NAME (with --dataset-dir DIR)") }
        var job = TrainingJob(modelURL: modelOptions.url, dataURL: URL(fileURLWithPath: data ?? datasetDir),
                              evalURL: evalData.map { URL(fileURLWithPath: $0) }, output: URL(fileURLWithPath: output),
                              logURL: log.map { URL(fileURLWithPath: $0) }, method: methodOptions, options: options,
                              templateOptions: templateOptions, dtype: dtype ?? .fastestForTraining, skipInvalid: skipInvalid,
                              quantize: quantizeOption.quantize, quiet: !(world?.isPrimary ?? true), world: world)
        job.dataset = dataset
        job.distill = distill
        job.preference = try preferenceOptions.settings()
        job.referenceModel = preferenceOptions.refModel.map { URL(fileURLWithPath: $0) }
        if job.preference != nil && distill != nil { throw ValidationError("distillation trains with --stage sft only") }
        let summary = try job.run(resume: resume.map { URL(fileURLWithPath: $0) })
        if summary.interrupted { throw ExitCode(130) }
    }
}

/// Everything `train` (and `demo`) does: load, build examples, train with progress, report.
struct TrainingJob {
    var modelURL: URL
    var dataURL: URL
    var evalURL: URL?
    var output: URL
    var logURL: URL?
    var method: MethodOptions
    var options: TrainingOptions
    var templateOptions: TemplateOptions
    var dtype: ComputeDType
    var skipInvalid: Bool
    /// QLoRA-style training: the frozen base in a block format, the adapter in f32.
    var quantize: QuantType? = nil
    var quiet = false
    /// Data-parallel ranks (mpirun); nil: one process.
    var world: MPICommunicator? = nil
    /// A LLaMA-Factory data set name; `dataURL` is then its folder (holding dataset_info.json).
    var dataset: String? = nil
    /// Distillation (`peft distill`): makes the teacher's settings once the student is loaded.
    typealias DistillSetup = (LoadedModel, ChatFormatter) throws -> DistillationSettings
    var distill: DistillSetup? = nil
    /// Preference tuning (`--stage dpo|orpo|simpo`): the data are pairs.
    var preference: PreferenceSettings? = nil
    var referenceModel: URL? = nil

    @discardableResult
    func run(resume: URL? = nil, model preloaded: LoadedModel? = nil) throws -> Trainer.Summary {
        // Validate every input before writing anything.
        if preference != nil { return try runPreference(resume: resume, model: preloaded) }
        let train = try dataset.map { try DataLoader.load(dataset: $0, directory: dataURL, skipInvalid: skipInvalid) }
            ?? DataLoader.load(dataURL, skipInvalid: skipInvalid)
        let evalSet = try evalURL.map { try DataLoader.load($0, skipInvalid: skipInvalid) }
        if quantize != nil, !(try method.resolvedMethod).savesAdapter {
            throw ValidationError("--quantize keeps the base frozen; it does not combine with --method \(method.method), which trains the base weights")
        }
        let loaded = try preloaded ?? LoadedModel.open(modelURL, dtype: dtype.dtype, quantize: quantize)
        let formatter = try templateOptions.formatter(for: loaded.tokenizer)
        let builder = ExampleBuilder(formatter: formatter, maxLength: options.maxLength)
        let built: ExampleBuilder.Built
        do { built = try builder.build(train.conversations) } catch let error as TrainingError {
            throw ValidationError("\(dataURL.path): \(error)")   // the record that cannot be rendered, and why
        }
        let evalBuilt = try evalSet.map { try builder.build($0.conversations) }
        guard !built.examples.isEmpty else {
            throw ValidationError("\(dataURL.path): no example keeps an answer token within --max-length \(options.maxLength)")
        }
        if !(try method.resolvedMethod).savesAdapter { try Self.checkModelOutput(output) }
        let adapter = try method.makeAdapter(model: loaded.model, tokenizer: loaded.tokenizer, seed: options.seed,
                                             baseModel: modelURL.path, baseDirectory: modelURL)
        let trainer = try Trainer(model: loaded.model, adapter: adapter, options: options, train: built.examples,
                                  eval: evalBuilt?.examples ?? [], output: output, baseModelPath: modelURL.path,
                                  logURL: logURL, communicator: world)
        if let distill {
            let settings = try distill(loaded, formatter)
            do { try settings.validate(student: loaded.model) } catch { throw ValidationError("\(error)") }
            do {
                try TrainingExample.validate(built.examples, for: settings.teacher)
            } catch {
                throw ValidationError("the teacher cannot read the training data: \(error)")
            }
            trainer.distillation = settings
        }
        if !quiet {
            var notes = ["\(train.conversations.count) \(train.format.rawValue) records from \(dataset ?? dataURL.lastPathComponent)"]
            if !train.skipped.isEmpty { notes.append("\(train.skipped.count) invalid skipped") }
            if built.dropped > 0 { notes.append("\(built.dropped) dropped (no answer token within --max-length)") }
            let tokens = built.examples.reduce(0) { $0 + $1.ids.count }
            Terminal.note(notes.joined(separator: ", ") + "; \(built.examples.count) examples, \(tokens) tokens, \(formatter.template.rawValue) format")
            Terminal.note("\(adapter.summary): \(adapter.parameterCount.formatted()) trainable parameters (\(String(format: "%.3f", 100 * Double(adapter.parameterCount) / Double(loaded.model.config.parameterCount)))% of \(loaded.model.config.parameterCount.formatted()))")
            var perStep = options.gradientAccumulation > 1 ? "\(options.batchSize) x \(options.gradientAccumulation) accumulated" : "\(options.batchSize)"
            if let world { perStep += " x \(world.size) ranks" }
            Terminal.note("\(trainer.totalSteps) steps of \(perStep) examples, \(dtype.rawValue), \(Gemm.backendDescription) GEMM, \(CPU.active) kernels, activations \(Terminal.bytes(trainer.activationBytes))\(options.gradientCheckpointing ? " with gradient checkpointing" : "")")
        }
        return try runTrainer(trainer, adapter: adapter, model: loaded.model, resume: resume)
    }

    /// Runs a prepared trainer with progress, Ctrl-C and the summary file; reports the end.
    func runTrainer(_ trainer: Trainer, adapter: TrainableAdapter, model: TransformerModel, resume: URL?) throws -> Trainer.Summary {
        Interrupt.install()
        trainer.shouldStop = { Interrupt.requested }
        let bar = ProgressBar(total: trainer.totalSteps, label: "train")
        if !quiet {
            trainer.onStep = { r in
                var detail = String(format: "loss %.4f lr %.2e %.0f tok/s", r.loss, r.learningRate, r.tokensPerSecond)
                if let p = r.preference { detail += " " + Self.preferenceDetail(p) }
                bar.update(r.step, detail: detail)
            }
            trainer.onPreferenceEval = { step, sums in
                if Terminal.stderrIsTTY { bar.finishLine() }
                Terminal.note(String(format: "step %d: eval loss %.4f, ", step, sums.loss) + Self.preferenceDetail(sums))
            }
            trainer.onEval = { step, result in
                if Terminal.stderrIsTTY { bar.finishLine() }
                Terminal.note(String(format: "step %d: eval loss %.4f, perplexity %.2f (%d tokens)", step, result.loss, result.perplexity, result.tokens))
            }
        }
        let summary = try trainer.run(resume: resume)
        guard trainer.isPrimary else { return summary }
        try TrainSummary(method: adapter.method.rawValue, summary: adapter.summary, trainableParameters: adapter.parameterCount,
                         modelParameters: model.config.parameterCount, steps: summary.steps,
                         tokensPerSecond: summary.tokensPerSecond, elapsedSeconds: summary.elapsed,
                         finalLoss: summary.finalLoss, evalLoss: summary.lastEval?.loss, interrupted: summary.interrupted)
            .write(to: output.appendingPathComponent(TrainSummary.fileName))
        if !quiet {
            if summary.interrupted {
                bar.finishLine()
                Terminal.note("stopped at step \(summary.steps); checkpoint \(trainer.checkpointURL(step: summary.steps).path) (resume with --resume)")
            }
            Terminal.note(String(format: "done: %d steps in %@, %.1f tokens/s, final loss %.4f; %@ in %@",
                                 summary.steps, Terminal.duration(summary.elapsed), summary.tokensPerSecond,
                                 summary.finalLoss ?? .nan, adapter.method.savesAdapter ? "adapter" : "model", output.path))
            if let world {
                Terminal.note(String(format: "%d ranks; summing gradients took %.2f%% of the run, waiting for slower ranks %.2f%%",
                                     world.size, 100 * summary.allreduceSeconds / max(summary.elapsed, 1e-9),
                                     100 * summary.rankWaitSeconds / max(summary.elapsed, 1e-9)))
            }
        }
        return summary
    }

    /// `--stage dpo|orpo|simpo|kto`: pairs (KTO: answers marked desirable or not) in, the preference objective,
    /// TRL's rewards in the log.
    func runPreference(resume: URL?, model preloaded: LoadedModel?) throws -> Trainer.Summary {
        guard var pref = preference else { preconditionFailure() }
        let loaded = try preloaded ?? LoadedModel.open(modelURL, dtype: dtype.dtype, quantize: quantize)
        let formatter = try templateOptions.formatter(for: loaded.tokenizer)
        let builder = ExampleBuilder(formatter: formatter, maxLength: options.maxLength)
        let built = try dataset.map { try PreferenceData.examples(dataset: $0, directory: dataURL, for: pref.loss, builder: builder) }
            ?? PreferenceData.examples(file: dataURL, for: pref.loss, builder: builder)
        let evalBuilt = try evalURL.map { try PreferenceData.examples(file: $0, for: pref.loss, builder: builder) }
        let unit = pref.loss.isPaired ? "pair" : "answer"
        guard !built.examples.isEmpty else {
            throw ValidationError("\(dataURL.path): no \(unit) keeps an answer token within --max-length \(options.maxLength)")
        }
        if !pref.loss.isPaired {
            guard options.batchSize >= 2 else {
                throw ValidationError("--stage kto needs --batch-size 2 or more: its KL term pairs each prompt with another example's answer in the batch")
            }
            let desirable = built.examples.filter { $0.desirable == true }.count
            if !quiet, desirable == 0 || desirable == built.examples.count {
                Terminal.note("warning: every answer of \(dataURL.lastPathComponent) is \(desirable == 0 ? "undesirable" : "desirable"); KTO learns from both kinds")
            }
        }
        let resolved = try method.resolvedMethod
        if !resolved.savesAdapter { try Self.checkModelOutput(output) }
        // The reference: the base with the adapter disabled, unless the base itself trains (full, freeze) or one is given.
        if pref.loss.needsReference, referenceModel != nil || !resolved.savesAdapter {
            let url = referenceModel ?? modelURL
            pref.reference = try LoadedModel.open(url, dtype: dtype.dtype, quantize: quantize).model
            if !quiet { Terminal.note("reference model: \(url.path) (a second copy in memory)") }
        }
        let adapter = try method.makeAdapter(model: loaded.model, tokenizer: loaded.tokenizer, seed: options.seed,
                                             baseModel: modelURL.path, baseDirectory: modelURL)
        let trainer = try Trainer(model: loaded.model, adapter: adapter, options: options, train: built.examples,
                                  eval: evalBuilt?.examples ?? [], output: output, baseModelPath: modelURL.path,
                                  logURL: logURL, plan: pref.plan(examples: built.examples.count, options: options, ranks: world?.size ?? 1),
                                  communicator: world)
        trainer.preference = pref
        if !quiet {
            Terminal.note("\(built.records) preference \(pref.loss.isPaired ? "pairs" : "records") from \(dataset ?? dataURL.lastPathComponent)\(pref.loss.isPaired ? "" : " (\(built.examples.filter { $0.desirable == true }.count) desirable answers, \(built.examples.filter { $0.desirable == false }.count) undesirable)")\(built.dropped > 0 ? ", \(built.dropped) \(unit)s dropped (an answer without tokens within --max-length)" : ""); \(pref.loss.rawValue) loss, beta \(pref.settings.beta)\(pref.loss.needsReference ? ", reference: \(pref.reference == nil ? "the base model (adapter disabled)" : "a separate model")" : "")")
            Terminal.note("\(adapter.summary): \(adapter.parameterCount.formatted()) trainable parameters; \(trainer.totalSteps) steps of \(options.batchSize) \(unit)s")
        }
        return try runTrainer(trainer, adapter: adapter, model: loaded.model, resume: resume)
    }

    /// TRL's rewards in a progress or eval line: chosen/rejected rewards, accuracy (pairs), margin, KL (KTO).
    static func preferenceDetail(_ p: PreferenceSums) -> String {
        var s = String(format: "rewards %.3f/%.3f", p.rewardsChosen, p.rewardsRejected)
        if let a = p.rewardsAccuracies { s += String(format: " acc %.2f", a) }
        s += String(format: " margin %.3f", p.rewardsMargins)
        if let kl = p.kl { s += String(format: " kl %.3f", kl) }
        return s
    }

    /// Full and freeze runs write a model into the output directory: refuse one that holds another model (anything
    /// with weights or a config that an earlier run of ours did not write).
    static func checkModelOutput(_ url: URL) throws {
        guard let items = try? FileManager.default.contentsOfDirectory(atPath: url.path) else { return }
        let holdsModel = items.contains { $0 == "config.json" || $0.hasSuffix(".safetensors") }
        if holdsModel && !items.contains(AdapterMerger.markerFileName) {
            throw ValidationError("\(url.path) already holds another model; a full or freeze run writes its model there, so choose a new --output")
        }
    }
}

/// `--stage` and the preference flags of `peft train`.
struct PreferenceOptions: ParsableArguments {
    enum Stage: String, ExpressibleByArgument, CaseIterable { case sft, dpo, orpo, simpo, kto }

    @Option(help: "Training stage: sft (instruction data), preference tuning on chosen/rejected pairs (dpo, orpo, simpo), or kto on answers marked desirable or not (kto_tag, label).") var stage: Stage = .sft
    @Option(help: "Preference: beta (DPO's KL strength, ORPO's odds-ratio weight, SimPO's reward scale).") var prefBeta: Double = 0.1
    @Option(help: "DPO's loss: sigmoid, hinge, ipo or robust (with --label-smoothing).") var prefLoss: String = "sigmoid"
    @Option(help: "Robust DPO and SimPO: the assumed share of flipped preference labels.") var labelSmoothing: Double = 0
    @Option(help: "SimPO's target reward margin.") var simpoGamma: Double = 0.5
    @Option(help: "Preference: add this weight times the chosen answers' SFT loss (LLaMA-Factory's pref_ftx).") var prefFtx: Double = 0
    @Option(help: "DPO with full or freeze tuning: the reference model (default: a copy of --model).") var refModel: String?
    @Option(help: "KTO: weight of the desirable answers' losses.") var desirableWeight: Double = 1
    @Option(help: "KTO: weight of the undesirable answers' losses.") var undesirableWeight: Double = 1

    /// The stage and its flags for a child `peft train` or `peft eval` (`peft compare`); nil for sft.
    func childArguments() throws -> (stage: String, arguments: [String])? {
        guard try settings() != nil else { return nil }
        var a = ["--stage", stage.rawValue, "--pref-beta", "\(prefBeta)", "--pref-loss", prefLoss,
                 "--label-smoothing", "\(labelSmoothing)", "--simpo-gamma", "\(simpoGamma)", "--pref-ftx", "\(prefFtx)",
                 "--desirable-weight", "\(desirableWeight)", "--undesirable-weight", "\(undesirableWeight)"]
        if let refModel { a += ["--ref-model", refModel] }
        return (stage.rawValue, a)
    }

    func settings() throws -> PreferenceSettings? {
        let loss: PreferenceLoss
        switch stage {
        case .sft: return nil
        case .kto: loss = .kto
        case .orpo: loss = .orpo
        case .simpo: loss = .simpo
        case .dpo:
            guard let l = PreferenceLoss(rawValue: prefLoss), l.needsReference else {
                throw ValidationError("--pref-loss must be sigmoid, hinge, ipo or robust, not \(prefLoss)")
            }
            loss = l
        }
        guard prefBeta > 0, prefBeta.isFinite else { throw ValidationError("--pref-beta must be positive") }
        guard (0..<0.5).contains(labelSmoothing) else { throw ValidationError("--label-smoothing must be in [0, 0.5)") }
        guard prefFtx >= 0, prefFtx.isFinite else { throw ValidationError("--pref-ftx must be at least 0") }
        guard desirableWeight >= 0, undesirableWeight >= 0, desirableWeight.isFinite, undesirableWeight.isFinite,
              desirableWeight + undesirableWeight > 0 else {
            throw ValidationError("--desirable-weight and --undesirable-weight must be at least 0, and not both 0")
        }
        if stage == .kto && prefFtx > 0 { throw ValidationError("--pref-ftx applies to paired stages (dpo, orpo, simpo), not kto") }
        var s = PreferenceSettings(loss: loss)
        s.settings.beta = prefBeta
        s.settings.labelSmoothing = labelSmoothing
        s.settings.simpoGamma = simpoGamma
        s.ftx = prefFtx
        (s.settings.desirableWeight, s.settings.undesirableWeight) = (desirableWeight, undesirableWeight)
        return s
    }
}
