// swift-tools-version: 6.2
import PackageDescription

let package = Package(
    name: "sdlstm",
    products: [
        // The C library: libsdlstm.so, whose ABI is include/sdlstm.h.
        .library(name: "sdlstm", type: .dynamic, targets: ["SDLSTMCAPI"]),
        // The Swift wrapper over that ABI.
        .library(name: "SDLSTM", targets: ["SDLSTM"]),
    ],
    targets: [
        .systemLibrary(name: "CSDLSTM", path: "include"),
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS", pkgConfig: "openblas",
                      providers: [.apt(["libopenblas-dev"])]),
        .target(name: "CKernels"),
        // pkg-config finds HDF5 where the distribution puts it (Debian: hdf5/serial).
        .systemLibrary(name: "CHDF5", path: "Sources/CHDF5", pkgConfig: "hdf5", providers: [.apt(["libhdf5-dev"])]),
        .target(name: "SDLSTMCore", dependencies: ["CSDLSTM", "COpenBLAS", "CKernels", "CHDF5"]),
        .target(name: "SDLSTMCAPI", dependencies: ["CSDLSTM", "SDLSTMCore"], exclude: ["sdlstm.map"]),
        .target(name: "SDLSTM", dependencies: ["CSDLSTM", "SDLSTMCAPI"]),
        .executableTarget(name: "sdlstm-bench", dependencies: ["SDLSTMCore", "CKernels"], path: "bench",
                          exclude: ["pytorch_reference.py", "summarize.py", "compare.md"], swiftSettings: [.swiftLanguageMode(.v5)]),
        .testTarget(name: "SDLSTMCoreTests", dependencies: ["SDLSTMCore", "COpenBLAS", "CKernels"], resources: [.copy("Fixtures")]),
        .testTarget(name: "SDLSTMCAPITests", dependencies: ["CSDLSTM", "SDLSTMCAPI", "COpenBLAS"]),
        .testTarget(name: "SDLSTMTests", dependencies: ["SDLSTM"], resources: [.copy("Resources")]),
    ]
)
