// swift-tools-version:6.0
import PackageDescription

// Layers (dependencies point down):
//   PeftCLI -> WebUI (child processes of peft itself), Training, Evaluation, Generation -> Adapters -> Transformer -> ModelIO, Tokenizer (-> Jinja) -> Kernels
let optimizedC: [CSetting] = [.unsafeFlags(["-O3", "-fno-math-errno"])]

let package = Package(
    name: "swift-peft",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "peft", targets: ["PeftCLI"]),
        .library(name: "SwiftPEFT", targets: ["Kernels", "ModelIO", "Tokenizer", "Transformer", "Adapters",
                                               "Generation", "Training", "Evaluation", "Compare", "GGUF", "Demo", "Jinja", "Serving", "Hub", "Compression", "WebUI"]),
        // The fuzz targets' bodies, for FuzzTesting/ (libFuzzer) and the replay of its saved cases in `swift test`.
        .library(name: "PeftFuzzTargets", targets: ["FuzzTargets"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.100.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        // SIMD hot loops in C with run-time CPU dispatch, the built-in GEMM and the run-time loader of oneDNN
        // (libdnnl.so.2, used when installed); always compiled optimised, even in debug builds.
        .target(name: "CKernels", path: "Sources/CKernels", cSettings: optimizedC, linkerSettings: [.linkedLibrary("dl")]),
        .target(name: "Kernels", dependencies: ["CKernels"]),
        .target(name: "ModelIO", dependencies: ["Kernels"]),
        // Models and data sets by hub id: huggingface_hub's protocol, environment and cache layout.
        .target(name: "Hub", dependencies: ["CKernels", .product(name: "AsyncHTTPClient", package: "async-http-client"),
                                            .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio")]),
        // Chat templates: a Jinja interpreter (the subset chat templates use), rendering as transformers does.
        .target(name: "Jinja"),
        .target(name: "Tokenizer", dependencies: ["Jinja"]),
        .target(name: "Transformer", dependencies: ["Kernels", "ModelIO"]),
        .target(name: "Adapters", dependencies: ["Kernels", "ModelIO", "Transformer"]),
        .target(name: "Generation", dependencies: ["Kernels", "Transformer", "Adapters", "Tokenizer"]),
        .target(name: "Training", dependencies: ["Kernels", "ModelIO", "Transformer", "Adapters", "Tokenizer"]),
        .target(name: "Evaluation", dependencies: ["Kernels", "ModelIO", "Transformer", "Adapters", "Tokenizer",
                                                   "Generation", "Training"]),
        // GGUF models (llama.cpp / Ollama) in and out: tensors, hyper-parameters, tokenizer and chat template.
        .target(name: "GGUF", dependencies: ["CKernels", "Kernels", "ModelIO", "Transformer", "Adapters", "Tokenizer"]),
        // `peft prune`: magnitude, Wanda and SparseGPT pruning and layer removal from calibration data.
        .target(name: "Compression", dependencies: ["Kernels", "ModelIO", "Transformer"]),
        // `peft compare`: every method in its own `peft train` / `peft eval` process, one report.
        .target(name: "Compare", dependencies: ["Adapters", "Evaluation", "ModelIO", "Training"]),
        // `peft serve`: the OpenAI API over HTTP (Hummingbird), continuous batching of many adapters on one base.
        .target(name: "Serving", dependencies: [
            "Kernels", "Transformer", "Adapters", "Generation", "Tokenizer",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
        ]),
        // `peft webui`: one embedded page and its JSON API; every job is a `peft` child process the server owns.
        .target(name: "WebUI", dependencies: [
            "Demo", "Training",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
        ]),
        // The built-in demo: embedded data set and tokenizer, and the seeded tiny model.
        .target(name: "Demo", dependencies: ["Kernels", "ModelIO"]),
        .executableTarget(name: "PeftCLI", dependencies: [
            "Kernels", "ModelIO", "Tokenizer", "Transformer", "Adapters", "Generation", "Training", "Evaluation", "Demo",
            "Compare", "Compression", "GGUF", "Jinja", "Hub", "Serving", "WebUI", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // One body per fuzz target (FuzzTesting/ wraps them for libFuzzer).
        .target(name: "FuzzTargets", dependencies: ["Kernels", "ModelIO", "Tokenizer", "Jinja", "Transformer", "Adapters",
                                                    "Generation", "Training", "GGUF", "Serving", "Hub"]),
        .target(name: "TestSupport", dependencies: ["Kernels", "Transformer", "Adapters", "Training",
                                                    .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                                                    .product(name: "Logging", package: "swift-log"),
                                                    .product(name: "AsyncHTTPClient", package: "async-http-client"),
                                                    .product(name: "NIOCore", package: "swift-nio"),
                                                    .product(name: "NIOHTTP1", package: "swift-nio")], path: "Sources/TestSupport"),

        .testTarget(name: "KernelsTests", dependencies: ["Kernels", "TestSupport"]),
        .testTarget(name: "FuzzReplayTests", dependencies: ["FuzzTargets", "TestSupport"]),
        .testTarget(name: "ModelIOTests", dependencies: ["ModelIO", "GGUF", "Transformer", "TestSupport"]),
        .testTarget(name: "TokenizerTests", dependencies: ["Tokenizer", "Jinja"], resources: [.copy("Fixtures")]),
        .testTarget(name: "JinjaTests", dependencies: ["Jinja", "TestSupport"]),
        .testTarget(name: "HubTests", dependencies: ["Hub", "TestSupport", .product(name: "NIOCore", package: "swift-nio"),
                                                     .product(name: "NIOPosix", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio")]),
        .testTarget(name: "CompressionTests", dependencies: ["Compression", "Transformer", "ModelIO", "TestSupport"]),
        .testTarget(name: "TransformerTests", dependencies: ["Transformer", "ModelIO", "TestSupport"]),
        .testTarget(name: "AdaptersTests", dependencies: ["Adapters", "Transformer", "ModelIO", "TestSupport"]),
        .testTarget(name: "EvaluationTests", dependencies: ["Evaluation"], resources: [.copy("Fixtures")]),
        .testTarget(name: "GenerationTests", dependencies: ["Generation", "TestSupport"]),
        .testTarget(name: "DemoTests", dependencies: ["Demo", "Transformer", "Tokenizer", "Training", "TestSupport"]),
        .testTarget(name: "CLITests", dependencies: ["PeftCLI", "TestSupport", "Tokenizer", "ModelIO"]),
        .testTarget(name: "ServingTests", dependencies: ["Serving", "Transformer", "Adapters", "Tokenizer", "Generation", "TestSupport",
                                                         .product(name: "AsyncHTTPClient", package: "async-http-client"),
                                                         .product(name: "NIOCore", package: "swift-nio"),
                                                         .product(name: "NIOHTTP1", package: "swift-nio"),
                                                         .product(name: "Logging", package: "swift-log"),
                                                         .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")]),
        .testTarget(name: "WebUITests", dependencies: ["WebUI", "TestSupport", .product(name: "AsyncHTTPClient", package: "async-http-client"),
                                                       .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio"),
                                                       .product(name: "Logging", package: "swift-log"), .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "Adapters", "Transformer", "Tokenizer", "Generation",
                                                          "TestSupport", "Jinja"]),
    ],
    // The engine is built on raw pointers shared across worker threads; Swift 5 mode keeps that explicit
    // without strict-concurrency annotations on every kernel closure.
    swiftLanguageModes: [.v5]
)
