import Foundation
import XCTest
@testable import Evaluation

/// A realistic report for looking at: Chinese leaflet answers, 60 train-loss points, 5 eval points, before/after
/// metrics computed from the sample answers. `scripts/render_sample_report.sh` writes it out and screenshots it.
enum SampleReport {
    static let nameRegex = "推荐用药：([^。]+)"

    static let questions = [
        "我感冒了，咽喉肿痛，还有点发热，应该吃什么药？",
        "孩子积食、肚子胀，不想吃饭，有什么中成药？",
        "经常失眠多梦，心烦，请推荐一种药。",
        "Dosage question: is \"2 < 3 tablets & water\" OK? <script>alert('x')</script>",
        "风寒感冒，怕冷、流清涕，吃什么好？",
        "口腔溃疡反复发作，怎么办？",
    ]
    static let references = [
        "推荐用药：银翘解毒片。\n主要成分：金银花、连翘、薄荷、荆芥。\n用法用量：口服，一次4片，一日2-3次。",
        "推荐用药：健胃消食片。\n主要成分：太子参、陈皮、山药、麦芽、山楂。\n用法用量：口服，可以咀嚼，一次3片，一日3次。",
        "推荐用药：天王补心丸。\n主要成分：地黄、人参、茯苓、五味子。\n用法用量：口服，一次8丸，一日3次。",
        "推荐用药：请遵医嘱。\n说明：每次用量以说明书为准，不要超过推荐剂量 (max 3 tablets/day)。",
        "推荐用药：感冒清热颗粒。\n主要成分：荆芥穗、薄荷、防风、柴胡。\n用法用量：开水冲服，一次1袋，一日2次。",
        "推荐用药：口炎清颗粒。\n主要成分：天冬、麦冬、玄参、金银花、甘草。\n用法用量：口服，一次2袋，一日1-2次。",
    ]
    static let before = [
        "感冒是一种常见的疾病，建议多喝水，注意休息，如果症状严重请及时就医。",
        "孩子不想吃饭可能有很多原因，可以带孩子去医院检查一下。",
        "失眠的原因有很多，建议保持良好的作息习惯。",
        "I am not sure. Please ask a doctor.",
        "推荐用药：板蓝根颗粒。多喝热水。",
        "",
    ]
    static let after = [
        "推荐用药：银翘解毒片。\n主要成分：金银花、连翘、薄荷、荆芥。\n用法用量：口服，一次4片，一日2-3次。",
        "推荐用药：健胃消食片。\n主要成分：太子参、陈皮、山药、麦芽。\n用法用量：口服，一次3片，一日3次。",
        "推荐用药：柏子养心丸。\n主要成分：柏子仁、党参、黄芪。\n用法用量：口服，一次6克，一日2次。",
        "推荐用药：请遵医嘱。\n说明：按说明书服用 (max 3 tablets/day)。",
        "推荐用药：感冒清热颗粒。\n主要成分：荆芥穗、薄荷、防风。\n用法用量：开水冲服，一次1袋，一日2次。",
        "推荐用药：口炎清颗粒。\n用法用量：口服，一次2袋。",
    ]

    /// 60 train points (decaying with a little deterministic wiggle) and eval points every 12 steps.
    static func curves() -> (train: [CurvePoint], eval: [CurvePoint]) {
        let train = (1...60).map { step -> CurvePoint in
            let s = Double(step)
            return CurvePoint(step: step, value: 0.85 + 2.1 * exp(-s / 14) + 0.07 * sin(s * 1.7))
        }
        let eval = stride(from: 12, through: 60, by: 12).map { step -> CurvePoint in
            CurvePoint(step: step, value: 1.05 + 1.9 * exp(-Double(step) / 16))
        }
        return (train, eval)
    }

    static func make() throws -> ReportData {
        let beforeMetrics = try Metrics.compute(predictions: before, references: references, nameRegex: nameRegex)
        let afterMetrics = try Metrics.compute(predictions: after, references: references, nameRegex: nameRegex)
        let (train, eval) = curves()
        return ReportData(
            title: "LoRA fine-tune: medicine leaflet Q&A",
            subtitle: "models/qwen2.5-0.5b-instruct · adapter out/leaflet-lora · 2025-01-31 14:02",
            notes: ["Tiny demo model and 6 examples: the numbers show the pipeline works, not medical quality.",
                    "Answers are greedy (temperature 0), at most 128 new tokens, same prompts before and after."],
            trainLoss: train, evalLoss: eval,
            metrics: [MetricsColumn(name: "before", metrics: beforeMetrics, loss: 2.4113, perplexity: exp(2.4113)),
                      MetricsColumn(name: "after", metrics: afterMetrics, loss: 1.1874, perplexity: exp(1.1874))],
            samples: zip(questions, references).enumerated().map { i, qr in
                SampleRow(question: qr.0, reference: qr.1, answers: [before[i], after[i]])
            },
            settings: ["model": "models/qwen2.5-0.5b-instruct", "adapter": "LoRA r=8, alpha=16, dropout 0.05",
                       "target modules": "q_proj, k_proj, v_proj, o_proj", "learning rate": "2e-4 (cosine, 6 warm-up)",
                       "epochs": "3", "batch size": "4 × grad-accum 2", "max length": "512 tokens",
                       "seed": "42", "loss": "assistant tokens only"])
    }
}

extension SampleReport {
    /// A partial report: before only, no eval curve, 3000 noisy train points with a spike and a few NaNs.
    static func makePartial() throws -> ReportData {
        var data = try make()
        data.title = "Partial report: before training"
        data.notes = ["Training has not finished; only the base model was evaluated."]
        data.evalLoss = []
        data.trainLoss = (1...3000).map { step in
            let s = Double(step)
            return CurvePoint(step: step, value: 0.9 + 2 * exp(-s / 500) + 0.15 * sin(s * 12.9898).magnitude)
        }
        data.trainLoss[1500].value = 4.2
        for i in [10, 700, 701] { data.trainLoss[i].value = .nan }
        data.metrics = [data.metrics[0]]
        data.samples = data.samples.map { SampleRow(question: $0.question, reference: $0.reference,
                                                    answers: [$0.answers[0]]) }
        return data
    }
}

final class SampleReportTests: XCTestCase {
    /// Renders the sample report; with EVAL_SAMPLE_REPORT_DIR set, writes report.html, report.md and report.json
    /// there, plus report-partial.html and report-empty.html.
    func testRenderSampleReport() throws {
        let data = try SampleReport.make()
        let html = ReportRenderer.html(data)
        let markdown = ReportRenderer.markdown(data)
        XCTAssertTrue(html.contains("银翘解毒片"))
        XCTAssertGreaterThan(data.metrics[1].metrics?.rougeL ?? 0, data.metrics[0].metrics?.rougeL ?? 0)
        guard let dir = ProcessInfo.processInfo.environment["EVAL_SAMPLE_REPORT_DIR"], !dir.isEmpty else { return }
        let url = URL(fileURLWithPath: dir, isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        try html.write(to: url.appendingPathComponent("report.html"), atomically: true, encoding: .utf8)
        try markdown.write(to: url.appendingPathComponent("report.md"), atomically: true, encoding: .utf8)
        let variants = [("report-partial", try SampleReport.makePartial()), ("report-empty", ReportData(title: "Empty"))]
        for (name, variant) in variants {
            try ReportRenderer.html(variant).write(to: url.appendingPathComponent(name + ".html"), atomically: true,
                                                   encoding: .utf8)
        }
        let json = JSONEncoder()
        json.outputFormatting = [.prettyPrinted, .sortedKeys]
        try json.encode(data).write(to: url.appendingPathComponent("report.json"))
    }
}
