import Foundation
@testable import ParleyLog

enum TestDir {
    static func make(_ name: String = #function) -> String {
        let d = NSTemporaryDirectory() + "parley-log-tests/" + name.filter { $0.isLetter || $0.isNumber } + "-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }
    static func segments(_ dir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".seg") }.sorted().map { dir + "/" + $0 }
    }
    static func copy(_ dir: String) -> String {
        let d = make("copy")
        try! FileManager.default.removeItem(atPath: d)
        try! FileManager.default.copyItem(atPath: dir, toPath: d)
        return d
    }
}

func sampleRecord(_ i: Int, conversation: ConversationID = ConversationID(high: 0xC0, low: 1), sequence: UInt64? = nil) -> Record {
    Record(type: .message, conversation: conversation, sequence: sequence ?? UInt64(i), key: Array("key-\(i)".utf8),
           payload: Array("{\"text\":\"message number \(i)\"}".utf8))
}

/// Opens a log, appends `records` one batch each, closes it. Returns the directory.
@discardableResult
func writeLog(_ dir: String, _ records: [Record], segmentBytes: Int64 = 64 << 20) throws -> String {
    var c = LogConfig(directory: dir)
    c.segmentBytes = segmentBytes
    let (log, _) = try Log.open(c)
    for r in records { try log.appendAndWait([r]) }
    log.close()
    return dir
}

func readAll(_ dir: String, repair: Bool = false) throws -> ([Record], RecoveryReport) {
    var c = LogConfig(directory: dir)
    c.repair = repair
    let (log, report) = try Log.open(c)
    defer { log.close() }
    return (log.read(from: 1, limit: .max), report)
}

extension Data {
    init(file: String) { self = FileManager.default.contents(atPath: file)! }
}
