// swift-tools-version: 6.1
// Benchmarks for Countersign, kept in their own package so that the benchmark
// dependency (and its malloc interposer) never reaches the main package.
// Run from this directory: `swift package benchmark` (see README.md).
import PackageDescription

let package = Package(
    name: "CountersignBenchmarks",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(url: "https://github.com/ordo-one/benchmark.git", from: "1.38.1", traits: ["MallocInterposer"]),
        .package(name: "Countersign", path: ".."),
    ],
    targets: [
        .executableTarget(
            name: "GateCycle",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "AgentRuntime", package: "Countersign"),
                .product(name: "Storage", package: "Countersign"),
                .product(name: "ModelProviders", package: "Countersign"),
                .product(name: "ToolSources", package: "Countersign"),
                .product(name: "CountersignServer", package: "Countersign"),
                .product(name: "GateCore", package: "Countersign"),
            ],
            path: "Benchmarks/GateCycle",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        )
    ]
)
