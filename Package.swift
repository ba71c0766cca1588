// swift-tools-version:6.1
import PackageDescription

// Release-build only what benchmarks need; tests build debug.
let package = Package(
    name: "Parley",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "parley", targets: ["parley"]),
        .executable(name: "parley-load", targets: ["ParleyLoad"]),
        .library(name: "ParleyClient", targets: ["ParleyClient"]),
        // For LoadTests/Benchmarks (its own package): the pure codecs, measured in isolation.
        .library(name: "ParleyCodecs", targets: ["ParleyWebSocket", "ParleyHTTP", "ParleyUTF8", "ParleyJSON", "ParleyProtocol"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-atomics", from: "1.3.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
        .package(url: "https://github.com/vapor/jwt-kit", from: "5.7.1"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .target(name: "CParleySys"),
        .target(
            name: "ParleyTransport",
            dependencies: [
                "CParleySys", "COpenSSL",
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .target(name: "ParleyHTTP", dependencies: ["ParleyTransport"], swiftSettings: [.swiftLanguageMode(.v6)]),
        .target(name: "ParleyLog", dependencies: ["CParleySys", "ParleyUTF8", .product(name: "Logging", package: "swift-log")], swiftSettings: [.swiftLanguageMode(.v6)]),
        .target(name: "ParleyChat", dependencies: ["ParleyLog"], swiftSettings: [.swiftLanguageMode(.v6)]),
        // A strict JSON parser without Foundation's bridging: client frames, stored events, NATS replies.
        .target(name: "ParleyJSON", dependencies: ["ParleyUTF8"], swiftSettings: [.swiftLanguageMode(.v6)]),
        // UTF-8 validation (word at a time, incremental): WebSocket text frames and JSON strings; ASCII helpers.
        .target(name: "ParleyUTF8", swiftSettings: [.swiftLanguageMode(.v6)]),
        // The NATS client protocol (issue 13's cluster mode rides on it): pure parser and encoders.
        .target(name: "ParleyNATS", dependencies: ["ParleyTransport", "ParleyLog", .product(name: "Logging", package: "swift-log")], swiftSettings: [.swiftLanguageMode(.v6)]),
        // The browser side: the JavaScript SDK, the agent console, the customer widget, the demo shop.
        .target(name: "ParleyWeb", dependencies: ["ParleyHTTP", "CZlib"], resources: [.copy("Resources")], swiftSettings: [.swiftLanguageMode(.v6)]),
        .target(name: "ParleyProtocol", dependencies: ["ParleyChat", "ParleyLog", "ParleyJSON"], swiftSettings: [.swiftLanguageMode(.v6)]),
        .target(
            name: "ParleyWebSocket",
            dependencies: ["ParleyTransport", "ParleyHTTP", "ParleyUTF8", "COpenSSL", "CZlib", .product(name: "Atomics", package: "swift-atomics")],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .target(
            name: "ParleyServer",
            dependencies: [
                "ParleyTransport", "ParleyHTTP", "ParleyWebSocket", "ParleyLog", "ParleyChat", "ParleyProtocol", "ParleyNATS", "ParleyWeb", "ParleyJSON",
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Atomics", package: "swift-atomics"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .executableTarget(
            name: "parley",
            dependencies: [
                "ParleyServer", "ParleyLog", "ParleyNATS", "CParleySys",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // The Swift chat SDK for apps (ChatClient) and the WebSocket client it runs on off Apple platforms.
        .target(name: "ParleyClient", dependencies: ["ParleyTransport", "ParleyWebSocket", "ParleyProtocol", "ParleyChat", "ParleyLog", "ParleyJSON"],
                swiftSettings: [.swiftLanguageMode(.v6)]),
        .executableTarget(
            name: "ParleyLoad",
            dependencies: [
                "ParleyClient", "ParleyTransport", "ParleyWebSocket", "ParleyProtocol",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "HeapModule", package: "swift-collections"),
                .product(name: "JWTKit", package: "jwt-kit"),
            ],
            path: "LoadTests/ParleyLoad"
        ),
        .testTarget(name: "ParleyWebSocketTests", dependencies: ["ParleyWebSocket", "ParleyUTF8"]),
        .testTarget(name: "ParleyHTTPTests", dependencies: ["ParleyHTTP"]),
        .testTarget(name: "ParleyJSONTests", dependencies: ["ParleyJSON"]),
        .testTarget(name: "ParleyWebTests", dependencies: ["ParleyWeb", "ParleyHTTP"]),
        .testTarget(name: "ParleyTransportTests", dependencies: ["ParleyTransport"]),
        .testTarget(name: "ParleyNATSTests", dependencies: ["ParleyNATS", "ParleyTransport", "ParleyLog"]),
        .testTarget(name: "ParleyServerTests", dependencies: ["ParleyServer"]),
        .testTarget(name: "ParleyChatTests", dependencies: ["ParleyChat", "ParleyLog", "ParleyProtocol"]),
        .testTarget(name: "ParleyProtocolTests", dependencies: ["ParleyProtocol", "ParleyChat", "ParleyLog"]),
        .testTarget(name: "ParleyLogTests", dependencies: ["ParleyLog", .product(name: "PropertyBased", package: "swift-property-based")]),
        .testTarget(name: "ParleyClientTests", dependencies: ["ParleyClient", "ParleyServer", .product(name: "JWTKit", package: "jwt-kit")]),
        .testTarget(name: "ParleyLoadTests", dependencies: ["ParleyLoad", "ParleyServer", .product(name: "Histogram", package: "hdrhistogram-swift")]),
    ],
    // Swift 6 language mode (complete concurrency checking) per target: every library and the
    // `parley` executable. The loop- or queue-confined classes (Loop, Connection, Listener,
    // LoopGroup, TLSIO, HTTPConnectionHandler, NATSClient, OrderedConsumer, WriterLease, ChatSession,
    // Server) are `@unchecked Sendable`: they are handed to DispatchQueue closures and confined to
    // one serial queue by rule, which the compiler cannot see (ThreadSanitizer checks it); the
    // server's Router is read-only once started (`nonisolated(unsafe)` where the accept closure
    // takes it). Still in 5: `parley-load` (its scenarios share per-loop state with their timers the
    // same way; ~10 places) and the test targets.
    swiftLanguageModes: [.v5]
)
