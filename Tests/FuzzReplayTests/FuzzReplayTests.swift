import Foundation
import FuzzTargets
import TestSupport
import XCTest

/// Every input libFuzzer ever found a problem with (FuzzTesting/FailCases/<target>/), and every seed of the corpora
/// (FuzzTesting/Corpus/<target>/), run again through the fuzz targets' own code: each must return (a crash or a trap
/// ends this test process; a hang is caught by the time limit of the whole run).
final class FuzzReplayTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("FuzzTesting")

    func inputs(_ folder: String, _ target: String) throws -> [URL] {
        let dir = Self.root.appendingPathComponent(folder).appendingPathComponent(target)
        guard FileManager.default.fileExists(atPath: dir.path) else { return [] }
        return try FileManager.default.contentsOfDirectory(at: dir, includingPropertiesForKeys: nil)
            .filter { !$0.lastPathComponent.hasPrefix(".") }.sorted { $0.path < $1.path }
    }

    func testSavedFailuresAndSeedsRunThroughEveryTarget() throws {
        var failCases = 0
        for (name, run) in FuzzTargets.all {
            let seeds = try inputs("Corpus", name)
            XCTAssertFalse(seeds.isEmpty, "\(name) has no seed corpus in FuzzTesting/Corpus/\(name)")
            let failures = try inputs("FailCases", name)
            failCases += failures.count
            for url in seeds + failures { run(try Data(contentsOf: url)) }
        }
        // The saved findings are kept: losing them would silently drop their regression tests.
        XCTAssertGreaterThanOrEqual(failCases, 1, "FuzzTesting/FailCases lost its files")
    }
}
