// swift-tools-version:6.0
import PackageDescription

// libFuzzer targets, one per kind of input peft reads from other people (see scripts/fuzz.sh). Build from this folder:
//   swift build -c release --sanitize=fuzzer --sanitize=address -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library
// The trailing -Xswiftc flags matter: SwiftPM passes the two --sanitize flags separately, and without them the Swift
// code gets no coverage instrumentation (check with `objdump -h` for __sancov sections).
let targets = ["FuzzSafetensors", "FuzzGGUF", "FuzzConfig", "FuzzTokenizerJSON", "FuzzSentencePiece", "FuzzJSON",
               "FuzzJinja", "FuzzDataset", "FuzzAdapter", "FuzzOpenAIRequest", "FuzzHubResponse"]

let package = Package(
    name: "FuzzTesting",
    platforms: [.macOS(.v14)],
    dependencies: [.package(name: "swift-peft", path: "..")],
    // Each executable is libFuzzer's entry point around one of FuzzTargets' bodies (Sources/FuzzTargets in the main
    // package, where `swift test` replays FailCases/ through the same code).
    targets: targets.map { .executableTarget(name: $0, dependencies: [.product(name: "PeftFuzzTargets", package: "swift-peft")]) }
)
