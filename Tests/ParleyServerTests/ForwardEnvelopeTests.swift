import ParleyChat
@testable import ParleyServer
import XCTest

/// What a follower forwards to the writer reads back exactly, whatever the names hold, and
/// anything cut short or malformed is refused, never trapped on.
final class ForwardEnvelopeTests: XCTestCase {
    func testRoundTripAndRefusals() {
        let frame = Array(#"{"type":"message.send","ref":"1","conversation":"x","clientMsgId":"c","text":"hé\n"}"#.utf8)
        let e = ForwardEnvelope(node: "n2", session: "abc", user: Person(id: "u\n1", role: .agent, name: "Ann \"A\"\r\n"), frame: frame)
        let bytes = e.encoded
        XCTAssertEqual(ForwardEnvelope(bytes), e)
        XCTAssertEqual(ForwardEnvelope(ForwardEnvelope(node: "", session: "", user: Person(id: "", role: .customer, name: ""), frame: []).encoded)?.frame, [])
        let frameStart = bytes.count - frame.count
        for cut in 0..<frameStart { XCTAssertNil(ForwardEnvelope(Array(bytes.prefix(cut))), "cut at \(cut)") }
        var badRole = ForwardEnvelope(node: "n", session: "s", user: Person(id: "u", role: .agent, name: "n"), frame: []).encoded
        badRole[badRole.firstIndex(of: UInt8(ascii: "a"))!] = UInt8(ascii: "x")  // "agent" → "xgent"
        XCTAssertNil(ForwardEnvelope(badRole))
    }
}
