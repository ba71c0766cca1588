// swift-tools-version:6.1
// Allocation and CPU benchmarks of Parley's hot paths (ordo-one/benchmark with malloc counters).
// Its own package, so the main build and CI do not depend on the benchmark framework.
// Run: cd LoadTests/Benchmarks && swift package benchmark
import PackageDescription

let package = Package(
    name: "ParleyBenchmarks",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(name: "Parley", path: "../.."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "CodecBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "ParleyCodecs", package: "Parley"),
            ],
            path: "Benchmarks/CodecBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        )
    ]
)
