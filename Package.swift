// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "Countersign",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "countersign", targets: ["countersign"]),
        .library(name: "GateCore", targets: ["GateCore"]),
        .library(name: "AgentRuntime", targets: ["AgentRuntime"]),
        .library(name: "Storage", targets: ["Storage"]),
        .library(name: "ModelProviders", targets: ["ModelProviders"]),
        .library(name: "ToolSources", targets: ["ToolSources"]),
        .library(name: "CountersignServer", targets: ["CountersignServer"]),
        .library(name: "CountersignClient", targets: ["CountersignClient"]),
        .library(name: "CountersignTesting", targets: ["CountersignTesting"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "5.0.1"),
        .package(url: "https://github.com/modelcontextprotocol/swift-sdk.git", from: "0.12.1"),
        .package(url: "https://github.com/apple/swift-system.git", from: "1.4.0"),
    ],
    targets: [
        .target(
            name: "GateCore",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")]
        ),
        .target(
            name: "AgentRuntime",
            dependencies: ["GateCore", .product(name: "Logging", package: "swift-log")]
        ),
        .target(
            name: "Storage",
            dependencies: [
                "GateCore", "AgentRuntime",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "ModelProviders",
            dependencies: [
                "GateCore", "AgentRuntime", .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "ToolSources",
            dependencies: [
                "GateCore", "AgentRuntime", .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "MCP", package: "swift-sdk"),
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "CountersignServer",
            dependencies: [
                "GateCore", "AgentRuntime", "Storage", "ModelProviders", "ToolSources",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Yams", package: "Yams"),
            ],
            resources: [.copy("Resources")]
        ),
        .target(
            name: "CountersignClient",
            dependencies: [
                "GateCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]
        ),
        .target(
            name: "CountersignTesting",
            dependencies: [
                "GateCore", "AgentRuntime", "Storage", "ModelProviders", "ToolSources",
                "CountersignServer", "CountersignClient",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]
        ),
        .executableTarget(
            name: "countersign",
            dependencies: [
                "CountersignServer", "CountersignClient", "Storage", "GateCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "GateCoreTests", dependencies: ["GateCore"]),
        .testTarget(
            name: "AgentRuntimeTests",
            dependencies: ["AgentRuntime", "CountersignTesting", "ModelProviders", "ToolSources", "Storage"]
        ),
        .testTarget(name: "StorageTests", dependencies: ["Storage", "CountersignTesting"]),
        .testTarget(
            name: "ModelProvidersTests",
            dependencies: ["ModelProviders", "AgentRuntime", "GateCore", "CountersignTesting"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(name: "ToolSourcesTests", dependencies: ["ToolSources", "CountersignTesting"]),
        .testTarget(
            name: "CountersignServerTests",
            dependencies: [
                "CountersignServer", "CountersignTesting", "CountersignClient", "countersign",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]
        ),
    ]
)
