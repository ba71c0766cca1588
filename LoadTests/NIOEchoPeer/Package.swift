// swift-tools-version:6.0
// A SwiftNIO WebSocket echo server: the comparison peer for `parley-load echo`.
// Its own package so Parley's build never depends on NIO.
import PackageDescription

let package = Package(
    name: "NIOEchoPeer",
    dependencies: [.package(url: "https://github.com/apple/swift-nio", from: "2.101.2")],
    targets: [
        .executableTarget(
            name: "NIOEchoPeer",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ]
        )
    ],
    swiftLanguageModes: [.v5]
)
