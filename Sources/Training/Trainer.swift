import Adapters
import Foundation
import Kernels
import ModelIO
import Transformer

/// Supervised fine-tuning of any method (`TrainableAdapter`): AdamW with a warmup schedule, gradient accumulation (token-weighted across the
/// accumulated micro-batches), clipping, periodic evaluation and checkpoints, exact resume, and a stop request
/// (Ctrl-C) that leaves a checkpoint behind. Driven by callbacks; prints nothing itself.
///
/// ```swift
/// let trainer = try Trainer(model: model, adapter: lora, options: options, train: examples, eval: [],
///                           output: outputURL, baseModelPath: path)
/// trainer.onStep = { print($0.loss) }
/// let summary = try trainer.run()
/// ```
public final class Trainer {
    public struct StepReport: Sendable {
        public var step: Int
        public var totalSteps: Int
        public var epoch: Double
        public var loss: Double
        public var learningRate: Double
        public var gradNorm: Double
        public var tokensPerSecond: Double
        public var elapsed: Double
        public var eta: Double
        /// Preference tuning: the step's rewards and log-probabilities.
        public var preference: PreferenceSums?
    }

    public struct Summary: Sendable {
        public var steps: Int
        public var finalLoss: Double?
        public var lastEval: LossEvaluator.Result?
        public var tokensPerSecond: Double
        public var elapsed: Double
        public var interrupted: Bool
        public var output: URL
        /// Seconds spent summing gradients across data-parallel ranks (0 in one process).
        public var allreduceSeconds: Double = 0
        /// Seconds this rank waited for the others to finish their shares before summing.
        public var rankWaitSeconds: Double = 0
    }

    public let model: TransformerModel
    public let adapter: TrainableAdapter
    public let options: TrainingOptions
    public let train: [TrainingExample]
    public let eval: [TrainingExample]
    public let output: URL
    public let logURL: URL
    public let baseModelPath: String
    public let plan: StepPlan
    /// Data-parallel ranks (mpirun): each takes a token-balanced share of every micro-batch of the global plan, the
    /// ranks sum gradients, and rank 0 alone writes logs, checkpoints and the output. nil: one process.
    public let communicator: MPICommunicator?

    /// Knowledge distillation (`peft distill`): the objective becomes the divergence from this teacher.
    public var distillation: DistillationSettings?
    /// Preference tuning (`--stage dpo|orpo|simpo|kto`): `train` and `eval` hold pairs (chosen at even indices,
    /// rejected at odd ones) and the plan keeps each pair in one micro-batch (`PreferenceSettings.plan`); for KTO,
    /// answers marked desirable or not.
    public var preference: PreferenceSettings?
    /// The reference log-probability of each training sequence, computed once when first needed.
    private var referenceCache: [Double?] = []

    public var onStep: ((StepReport) -> Void)?
    public var onEval: ((Int, LossEvaluator.Result) -> Void)?
    /// Preference tuning: an evaluation's loss and rewards on the held-out pairs (KTO: answers).
    public var onPreferenceEval: ((Int, PreferenceSums) -> Void)?
    public var onCheckpoint: ((URL) -> Void)?
    /// Polled after every optimiser step; returning true saves a checkpoint and ends the run.
    public var shouldStop: () -> Bool = { false }

    private let optimizer: Optimizer
    /// The base model as the run found it (full fine-tuning changes the weights the fingerprint reads).
    private let fingerprint: ModelFingerprint
    private var history: [LogEntry] = []

    public init(model: TransformerModel, adapter: TrainableAdapter, options: TrainingOptions, train: [TrainingExample],
                eval: [TrainingExample], output: URL, baseModelPath: String, logURL: URL? = nil,
                plan: StepPlan? = nil, communicator: MPICommunicator? = nil) throws {
        try options.validate()
        guard !train.isEmpty else { throw TrainingError.options("no training examples") }
        if options.maxSteps == nil {
            let micro = (train.count + options.batchSize - 1) / options.batchSize
            let perEpoch = max(1, (micro + options.gradientAccumulation - 1) / options.gradientAccumulation)
            if Double(perEpoch) * options.epochs > Double(TrainingOptions.stepLimit) {
                throw TrainingError.options("--epochs \(options.epochs) plans more than \(TrainingOptions.stepLimit) steps; use fewer epochs or --max-steps")
            }
        }
        try TrainingExample.validate(train, for: model)
        try TrainingExample.validate(eval, for: model)
        self.model = model
        self.adapter = adapter
        self.options = options
        self.train = train
        self.eval = eval
        self.output = output
        self.logURL = logURL ?? output.appendingPathComponent("train_log.jsonl")
        self.baseModelPath = baseModelPath
        self.communicator = communicator
        self.plan = plan ?? StepPlan(exampleCount: train.count, options: options, ranks: communicator?.size ?? 1)
        switch options.optimizer ?? .adamw {
        case .adamw:
            optimizer = AdamW(parameterCount: adapter.parameterCount, weightDecay: Float(options.weightDecay))
        case .adafactor:
            optimizer = Adafactor(shapes: adapter.namedParameters.map { ($0.offset, $0.shape) },
                                  weightDecay: Float(options.weightDecay))
        }
        model.adapter = adapter
        fingerprint = ModelFingerprint(model: model)
    }

    public var totalSteps: Int { plan.steps.count }

    public var schedule: LRSchedule {
        LRSchedule(kind: options.scheduler, peak: options.learningRate,
                   warmupSteps: LRSchedule.warmupSteps(ratio: options.warmupRatio, total: totalSteps),
                   totalSteps: totalSteps)
    }

    /// Sequence lengths of every packed micro-batch this process runs (its share, with several ranks).
    var microBatchLengths: [[Int]] {
        plan.steps.flatMap(\.microBatches).map { share($0).map { plannedLength(train[$0]) } }.filter { !$0.isEmpty }
    }

    /// Rows an example may take (on-policy distillation replaces its answer with a generated one).
    private func plannedLength(_ e: TrainingExample) -> Int {
        distillation?.longest(e, maxLength: options.maxLength) ?? e.ids.count
    }

    public var rank: Int { communicator?.rank ?? 0 }
    public var worldSize: Int { communicator?.size ?? 1 }

    /// The load-balancing loss's weight in training: the option, else the config's router_aux_loss_coef for a
    /// mixture of experts (0 for dense models).
    var routerAuxLossCoefficient: Double {
        guard let moe = model.config.moe else { return 0 }
        return options.routerAuxLossCoef ?? moe.routerAuxLossCoefficient
    }
    /// The process that writes logs, checkpoints and the output.
    public var isPrimary: Bool { rank == 0 }

    /// This rank's share of a micro-batch: examples dealt longest first to the rank with the fewest tokens so far
    /// (ties to the lower rank), so ranks carry balanced tokens; in the micro-batch's own order. One process: all.
    func share(_ indices: [Int]) -> [Int] {
        let n = worldSize
        guard n > 1 else { return indices }
        if let pref = preference, pref.loss.isPaired {
            // Pairs stay together: deal pairs (by their chosen index) and return both members.
            let firsts = indices.filter { $0 % 2 == 0 }
            var load = [Int](repeating: 0, count: n), owner = [Int: Int]()
            for i in firsts.sorted(by: { (train[$0].ids.count + train[$0 + 1].ids.count, $1) > (train[$1].ids.count + train[$1 + 1].ids.count, $0) }) {
                let r = load.indices.min(by: { (load[$0], $0) < (load[$1], $1) })!
                owner[i] = r
                load[r] += train[i].ids.count + train[i + 1].ids.count
            }
            return indices.filter { owner[$0 - $0 % 2] == rank }
        }
        var load = [Int](repeating: 0, count: n), owner = [Int: Int]()
        for i in indices.sorted(by: { (train[$0].ids.count, $1) > (train[$1].ids.count, $0) }) {
            let r = load.indices.min(by: { (load[$0], $0) < (load[$1], $1) })!
            owner[i] = r
            load[r] += train[i].ids.count
        }
        return indices.filter { owner[$0] == rank }
    }

    /// Rows of the largest packed micro-batch of the plan (the adapter's virtual tokens included).
    var capacity: Int { model.plannedRows(microBatchLengths).capacity }

    private var policy: ActivationPolicy { options.gradientCheckpointing ? .checkpointing : .keepAll }

    /// Bytes of activations this run will allocate.
    public var activationBytes: Int { model.activationBytes(batches: microBatchLengths, policy: policy) }

    /// Trains from the start, or from `resume` (a checkpoint directory of an earlier run with the same model,
    /// data and batch settings).
    @discardableResult
    public func run(resume: URL? = nil) throws -> Summary {
        var start = 0
        if let resume { start = try restore(from: resume) }
        if isPrimary {
            try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
            try rewriteLog()
        }
        let buffers = model.makeBuffers(batches: microBatchLengths, policy: policy)
        if let pref = preference {
            try pref.check(train)
            try pref.check(eval)
            referenceCache = [Double?](repeating: nil, count: train.count)
        }
        adapter.reserve(rows: capacity)
        adapter.parametersDidChange()
        let clock = ContinuousClock()
        let began = clock.now
        var tokensSeen = 0
        var lastLoss: Double? = history.last(where: { $0.type == "train" })?.loss
        var lastEval: LossEvaluator.Result? = nil
        var interrupted = false
        var allreduceSeconds = 0.0, waitSeconds = 0.0
        var step = start
        while step < totalSteps {
            let planned = plan.steps[step]
            // This rank's examples of each micro-batch; on an on-policy distillation step, with the student's answers.
            let onPolicy = distillation?.onPolicy(step: step, seed: options.seed) ?? false
            var stepExamples: [[TrainingExample]] = []
            for all in planned.microBatches {
                let indices = share(all)
                guard onPolicy, let d = distillation else { stepExamples.append(indices.map { train[$0] }); continue }
                stepExamples.append(try indices.map {
                    try d.onPolicyExample(train[$0], maxLength: options.maxLength,
                                          seed: SplitMix64.mix(options.seed &+ UInt64(step) &* 0x1_0000_0000 &+ UInt64($0) &+ 7))
                })
            }
            // Every rank knows the whole step, so the token-weighted mean needs no communication for its divisor
            // (except when the student wrote the answers).
            var windowLabels = planned.microBatches.flatMap { $0 }.reduce(0) { $0 + train[$1].labelCount }
            if onPolicy {
                let local = stepExamples.joined().reduce(0) { $0 + $1.labelCount }
                windowLabels = try communicator.map { Int(try $0.sum([Double(local)])[0]) } ?? local
            }
            let scale = 1 / Float(max(1, windowLabels))
            adapter.zeroGradients()
            var lossSum = 0.0, stepTokens = 0, auxSum = 0.0, auxPasses = 0, distillSum = 0.0, ceSum = 0.0
            let preferenceSums = PreferenceSumsBox()
            let stepPairs = planned.microBatches.reduce(0) { $0 + $1.count } / (preference?.loss.isPaired == false ? 1 : 2)
            let stepChosenTokens = planned.microBatches.joined().filter { $0 % 2 == 0 }.reduce(0) { $0 + train[$1].labelCount }
            // The router's load-balancing loss: its weight shared by the step's micro-batches on every rank.
            let auxWeight = Float(routerAuxLossCoefficient / Double(planned.microBatches.count * worldSize))
            for (m, all) in planned.microBatches.enumerated() {
                let indices = share(all), examples = stepExamples[m]
                // KTO: the micro-batch's KL estimate (each prompt with the previous answer of the whole micro-batch),
                // each rank computing its share's sequences; every rank takes part in the sum, share or none.
                var kl = 0.0
                if let pref = preference, !pref.loss.isPaired {
                    let positions = indices.map { i in all.firstIndex(of: i)! }
                    let k = pref.klSums(model: model, batch: all.map { train[$0] }, positions: positions, maxLength: options.maxLength,
                                       training: true)
                    let total = try communicator.map { try $0.sum([k.sum, Double(k.count)]) } ?? [k.sum, Double(k.count)]
                    kl = max(0, total[0] / max(1, total[1]))
                }
                if indices.isEmpty { continue }
                // Preference pairs share their prompt rows (tree packing).
                let (batch, labels) = preference?.loss.isPaired == true
                    ? PreferenceSettings.pairBatch(examples, model: model)
                    : (PackedBatch(sequences: examples.map(\.ids)), examples.flatMap(\.labels))
                var context = PassContext(training: true, randomKey: SplitMix64.mix(options.seed &+ UInt64(step) &* 0x1_0000 &+ UInt64(m)))
                // Dropout masks follow the example (its index in the data and the step), whichever rank runs it.
                context.sequenceKeys = indices.map { SplitMix64.mix(options.seed &+ UInt64(step) &* 0x1_0000_0000 &+ UInt64($0) &+ 1) }
                context.sequenceRows = batch.lengths
                context.routerAuxLossWeight = auxWeight
                let target = distillation?.target(batch: batch, labels: labels, studentVocab: model.config.vocabSize)
                var objective: SequenceObjective?
                if let pref = preference {
                    var refs: [Double]?
                    if pref.loss.needsReference {
                        let missing = indices.filter { referenceCache[$0] == nil }
                        if !missing.isEmpty {
                            for (i, v) in zip(missing, pref.referenceLogps(model: model, examples: missing.map { train[$0] }, training: true)) {
                                referenceCache[i] = v
                            }
                        }
                        refs = indices.map { referenceCache[$0]! }
                    }
                    objective = pref.objective(examples: examples, refLogps: refs, pairsInStep: stepPairs,
                                               chosenTokensInStep: stepChosenTokens, kl: kl, sums: preferenceSums)
                }
                let (s, _) = model.forwardBackward(batch, labels: labels, gradScale: objective == nil ? scale : 1,
                                                   buffers: buffers, context: context, distill: target, objective: objective)
                if let target { distillSum += target.distillSum; ceSum += target.ceSum }
                if auxWeight > 0, let aux = buffers.routerStatistics?.auxLoss { auxSum += aux; auxPasses += 1 }
                lossSum += s
                stepTokens += examples.reduce(0) { $0 + $1.ids.count }
            }
            adapter.finishGradients()
            if let world = communicator {
                // Waiting for the slowest rank (uneven shares) is timed apart from the summing itself.
                let w0 = clock.now
                world.barrier()
                waitSeconds += (clock.now - w0).seconds
                let t0 = clock.now
                try world.sum(adapter.gradients.pointer, count: adapter.gradients.count)
                let totals = try world.sum([lossSum, Double(stepTokens), distillSum, ceSum] + preferenceSums.value.array)
                allreduceSeconds += (clock.now - t0).seconds
                lossSum = totals[0]
                stepTokens = Int(totals[1])
                (distillSum, ceSum) = (totals[2], totals[3])
                preferenceSums.value = PreferenceSums(Array(totals[4...]))
            }
            guard lossSum.isFinite, preferenceSums.value.loss.isFinite else {
                throw TrainingError.nonFinite(step: step + 1, loss: preference != nil ? preferenceSums.value.loss : lossSum / Double(max(1, windowLabels)))
            }
            tokensSeen += stepTokens
            let norm = GradientClipping.clip(adapter.gradients, maxNorm: Float(options.maxGradNorm))
            let lr = schedule.rate(at: step)
            optimizer.update(parameters: adapter.parameters, gradients: adapter.gradients, lr: Float(lr))
            adapter.parametersDidChange()
            step += 1
            let prefSums = preferenceSums.value
            let loss = preference != nil ? prefSums.loss : lossSum / Double(max(1, windowLabels))
            lastLoss = loss
            let elapsed = (clock.now - began).seconds
            let rate = Double(tokensSeen) / max(elapsed, 1e-9)
            let epoch = Double(step) / Double(plan.stepsPerEpoch)
            var entry = LogEntry(type: "train", step: step, epoch: epoch, loss: loss, learningRate: lr,
                                 gradNorm: Double(norm), tokens: tokensSeen, tokensPerSecond: rate, elapsedSeconds: elapsed)
            if auxPasses > 0 { entry.auxLoss = auxSum / Double(auxPasses) }
            if preference != nil { entry.setPreference(prefSums) }
            if distillation != nil {
                entry.distillLoss = distillSum / Double(max(1, windowLabels))
                entry.ceLoss = ceSum / Double(max(1, windowLabels))
                entry.onPolicy = onPolicy
            }
            if communicator != nil {
                entry.allreduceSeconds = allreduceSeconds
                entry.rankWaitSeconds = waitSeconds
            }
            try log(entry)
            onStep?(StepReport(step: step, totalSteps: totalSteps, epoch: epoch, loss: loss, learningRate: lr,
                               gradNorm: Double(norm), tokensPerSecond: rate, elapsed: elapsed,
                               eta: elapsed / Double(step - start) * Double(totalSteps - step),
                               preference: preference != nil ? prefSums : nil))
            let evalDue = isPrimary && !eval.isEmpty && (planned.endsEpoch || (options.evalEvery.map { step % $0 == 0 } ?? false)
                                            || step == totalSteps)
            if evalDue, let pref = preference {
                let sums = try pref.evaluate(model: model, examples: eval, batchSize: options.batchSize, maxLength: options.maxLength)
                var entry = LogEntry(type: "eval", step: step, epoch: epoch, evalLoss: sums.loss)
                entry.setPreference(sums)
                try log(entry)
                onPreferenceEval?(step, sums)
            } else if evalDue {
                let result = try LossEvaluator.evaluate(model: model, examples: eval, batchSize: options.batchSize)
                lastEval = result
                try log(LogEntry(type: "eval", step: step, epoch: epoch, tokens: result.tokens, evalLoss: result.loss,
                                 evalPerplexity: result.perplexity))
                onEval?(step, result)
            }
            var stop = shouldStop()
            // Any rank's stop request (Ctrl-C reaches them at different moments) stops every rank at this step.
            if let world = communicator { stop = try world.sum([stop ? 1 : 0])[0] > 0 }
            let saveDue = planned.endsEpoch || (options.saveEvery.map { step % $0 == 0 } ?? false) || stop
            if saveDue && isPrimary {
                try saveCheckpoint(step: step, epoch: planned.epoch)
            }
            if stop { interrupted = true; break }
        }
        if isPrimary { try adapter.writeOutput(to: output, baseModel: baseModelPath) }
        let elapsed = (clock.now - began).seconds
        var summary = Summary(steps: step, finalLoss: lastLoss, lastEval: lastEval,
                              tokensPerSecond: Double(tokensSeen) / max(elapsed, 1e-9), elapsed: elapsed,
                              interrupted: interrupted, output: output)
        summary.allreduceSeconds = allreduceSeconds
        summary.rankWaitSeconds = waitSeconds
        return summary
    }

    // MARK: - Log

    private func log(_ entry: LogEntry) throws {
        history.append(entry)
        guard isPrimary else { return }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var line = try encoder.encode(entry)
        line.append(0x0A)
        guard let handle = FileHandle(forWritingAtPath: logURL.path) else {
            throw TrainingError.io(path: logURL.path, reason: "cannot append to the training log")
        }
        defer { try? handle.close() }
        do {
            try handle.seekToEnd()
            try handle.write(contentsOf: line)
        } catch {
            throw TrainingError.io(path: logURL.path, reason: "cannot append to the training log: \(error.localizedDescription)")
        }
    }

    /// Starts the log file with the history restored from a checkpoint (empty for a fresh run).
    private func rewriteLog() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var data = Data()
        for e in history {
            data.append(try encoder.encode(e))
            data.append(0x0A)
        }
        try FileManager.default.createDirectory(at: logURL.deletingLastPathComponent(), withIntermediateDirectories: true)
        try AtomicFile.write(data, to: logURL)
    }

    // MARK: - Checkpoints

    public static let stateFileName = "trainer_state.json"
    public static let optimizerFileName = "optimizer.safetensors"
    /// Every trainable tensor of the adapter (prompt encoders included, which the PEFT files do not hold).
    public static let trainableStateFileName = "trainable_state.safetensors"

    public func checkpointURL(step: Int) -> URL { output.appendingPathComponent("checkpoint-\(step)") }

    private func saveCheckpoint(step: Int, epoch: Int) throws {
        let url = checkpointURL(step: step)
        var state = TrainerState(globalStep: step, epoch: epoch, options: options, exampleCount: train.count,
                                 model: fingerprint, logHistory: history)
        state.worldSize = worldSize
        try AtomicFile.writeDirectory(url) { dir in
            if adapter.method.savesAdapter {
                try adapter.writeOutput(to: dir, baseModel: baseModelPath)
            } else {
                // A whole model per checkpoint would be wasteful: the trainable state below is the checkpoint.
                try AdapterFiles.saveConfig(adapter, to: dir, baseModel: baseModelPath)
            }
            try adapter.writeTrainableState(to: dir.appendingPathComponent(Self.trainableStateFileName))
            // Streamed from the state buffers (several GB for a full fine-tune).
            let buffers = Dictionary(uniqueKeysWithValues: optimizer.state.map { ($0.name, $0.buffer) })
            try SafetensorsStreamWriter.write(optimizer.state.map { .init(name: $0.name, dtype: .float32, shape: [$0.buffer.count]) },
                                              to: dir.appendingPathComponent(Self.optimizerFileName),
                                              metadata: ["format": "pt", "step": "\(optimizer.step)"]) { entry, out in
                out.copyMemory(from: UnsafeRawBufferPointer(start: buffers[entry.name]!.pointer, count: entry.byteCount))
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(state).write(to: dir.appendingPathComponent(Self.stateFileName))
        }
        onCheckpoint?(url)
    }

    /// Loads adapter weights, optimiser moments and the log from a checkpoint; returns the step to continue from.
    private func restore(from url: URL) throws -> Int {
        let stateURL = url.appendingPathComponent(Self.stateFileName)
        guard let data = FileManager.default.contents(atPath: stateURL.path) else {
            throw TrainingError.resume(path: url.path, reason: "no \(Self.stateFileName) (not a checkpoint directory)")
        }
        let state: TrainerState
        do { state = try JSONDecoder().decode(TrainerState.self, from: data) } catch {
            throw TrainingError.resume(path: url.path, reason: "\(Self.stateFileName) is malformed")
        }
        let here = fingerprint
        guard state.model == here else {
            throw TrainingError.resume(path: url.path, reason: "it was made for another model (\(state.model)); this model is \(here)")
        }
        var differences: [String] = []
        if state.exampleCount != train.count { differences.append("training examples \(state.exampleCount) -> \(train.count)") }
        if state.options.batchSize != options.batchSize { differences.append("--batch-size \(state.options.batchSize) -> \(options.batchSize)") }
        if state.options.gradientAccumulation != options.gradientAccumulation { differences.append("--grad-accum \(state.options.gradientAccumulation) -> \(options.gradientAccumulation)") }
        if state.options.seed != options.seed { differences.append("--seed \(state.options.seed) -> \(options.seed)") }
        if (state.worldSize ?? 1) != worldSize { differences.append("ranks \(state.worldSize ?? 1) -> \(worldSize) (resume with mpirun -np \(state.worldSize ?? 1))") }
        if !differences.isEmpty {
            throw TrainingError.resume(path: url.path, reason: "the run's data order would change: " + differences.joined(separator: ", "))
        }
        guard state.globalStep <= totalSteps else {
            throw TrainingError.resume(path: url.path, reason: "checkpoint is at step \(state.globalStep), beyond this run's \(totalSteps) steps")
        }
        let savedMethod = try AdapterFiles.method(of: url)
        let theirs = try AdapterFiles.readConfig(url), mine = adapter.peftConfig(baseModel: nil)
        let ignored: Set<String> = ["base_model_name_or_path", "inference_mode", "model_name"]
        func canonical(_ value: Any?) -> String {
            let data = try? JSONSerialization.data(withJSONObject: ["v": value ?? NSNull()], options: [.sortedKeys])
            return data.map { String(decoding: $0, as: UTF8.self) } ?? ""
        }
        let differing = Set(theirs.keys).union(mine.keys).subtracting(ignored).sorted().filter {
            canonical(theirs[$0]) != canonical(mine[$0])
        }
        guard savedMethod == adapter.method, differing.isEmpty else {
            let detail = differing.map { "\($0) \(theirs[$0].map { "\($0)" } ?? "-") -> \(mine[$0].map { "\($0)" } ?? "-")" }
            throw TrainingError.resume(path: url.path, reason: "its \(savedMethod.title) settings differ from this run's \(adapter.method.title) settings (\(savedMethod != adapter.method ? "method" : detail.joined(separator: ", "))); resume with the flags of the run that made it")
        }
        let stateURL2 = url.appendingPathComponent(Self.trainableStateFileName)
        guard FileManager.default.fileExists(atPath: stateURL2.path) else {
            throw TrainingError.resume(path: url.path, reason: "no \(Self.trainableStateFileName) (a checkpoint of an older release or not a checkpoint)")
        }
        try adapter.loadTrainableState(SafetensorsFile(path: stateURL2.path), path: stateURL2.path)
        let opt = try SafetensorsFile(path: url.appendingPathComponent(Self.optimizerFileName).path)
        for (name, buffer) in optimizer.state {
            guard let t = opt.tensors[name], t.elementCount == buffer.count else {
                throw TrainingError.resume(path: url.path, reason: "\(Self.optimizerFileName) does not match this run's optimizer (\(options.optimizer ?? .adamw)) and adapter")
            }
            let values = try t.floatBuffer()
            withExtendedLifetime(values) { buffer.copy(from: values.pointer, count: t.elementCount) }
        }
        optimizer.restore(step: Int(opt.metadata["step"] ?? "") ?? state.globalStep)
        history = state.logHistory
        return state.globalStep
    }
}
