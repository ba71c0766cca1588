import Foundation
import ParleyChat
import ParleyLog
import ParleyProtocol
import XCTest

/// Reads the same vectors as the Python suite (Protocol/vectors/chat).
final class ProtocolVectorTests: XCTestCase {
    static let vectors = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Protocol/vectors/chat").standardized

    func lines(_ name: String) throws -> [[String: Any]] {
        let text = try String(contentsOf: Self.vectors.appendingPathComponent(name), encoding: .utf8)
        return try text.split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
    }

    func testRequestVectorsParseAsTheyShould() throws {
        let rows = try lines("requests.jsonl")
        XCTAssertGreaterThan(rows.count, 30)
        for v in rows {
            let name = v["name"] as! String
            let frame = (v["frame"] as! String)
                .replacingOccurrences(of: "{conv}", with: "00000000-0000-4000-8000-000000000002")
                .replacingOccurrences(of: "{other}", with: "00000000-0000-4000-8000-000000000003")
                .replacingOccurrences(of: "{text16385}", with: String(repeating: "x", count: 16385))
            let expect = v["parse"] as! [String: Any]
            switch ClientFrames.parse(Array(frame.utf8)) {
            case .success(let f):
                XCTAssertNil(expect["error"], "\(name) should not parse: \(f)")
            case .failure(let e):
                XCTAssertEqual(e.code.rawValue, expect["error"] as? String, name)
                XCTAssertEqual(e.ref, expect["ref"] as? String, name)
                XCTAssertFalse(e.message.isEmpty, name)
            }
        }
    }

    func testEventVectorsRoundTripByteForByte() throws {
        for v in try lines("events.jsonl") {
            let name = v["name"] as! String, json = Array((v["json"] as! String).utf8)
            let e = try XCTUnwrap(ServerFrames.decodeEvent(json), name)
            XCTAssertEqual(String(decoding: ServerFrames.event(e), as: UTF8.self), String(decoding: json, as: UTF8.self), name)
        }
    }

    /// Protocol/vectors/chat/frames.jsonl: every frame of both directions decodes and encodes back
    /// to the same bytes; a member the decoder does not know is ignored.
    func testFramesRoundTripByteForByte() throws {
        let rows = try lines("frames.jsonl")
        var seen: (client: Set<String>, server: Set<String>) = ([], [])
        for v in rows {
            let name = v["name"] as! String, json = Array((v["json"] as! String).utf8)
            let extra = Array(#"{"x-future":{"a":[1,2.5,null,"\u00e9"]},"#.utf8) + json.dropFirst()
            if v["direction"] as! String == "client" {
                let f = try ClientFrames.parse(json).get()
                XCTAssertEqual(String(decoding: ClientFrames.encode(f), as: UTF8.self), String(decoding: json, as: UTF8.self), name)
                XCTAssertEqual(try ClientFrames.parse(extra).get(), f, "\(name): an unknown member changed it")
                seen.client.insert(f.request.type.rawValue)
            } else {
                let f = try ServerFrames.decode(json).get()
                XCTAssertEqual(String(decoding: ServerFrames.encode(f), as: UTF8.self), String(decoding: json, as: UTF8.self), name)
                XCTAssertEqual(try ServerFrames.decode(extra).get(), f, "\(name): an unknown member changed it")
                seen.server.insert(f.type.rawValue)
            }
        }
        XCTAssertEqual(seen.client, Set(RequestType.allCases.map(\.rawValue)), "a vector for every request type")
        let events: Set<EventType> = [.created, .orderAttached, .assigned, .transferred, .resolved, .csat]
        XCTAssertEqual(seen.server.union(events.map(\.rawValue)), Set(EventType.allCases.map(\.rawValue)), "a vector for every server frame")
        for v in try lines("events.jsonl") {  // the stored events, through the client's decoder too
            let json = Array((v["json"] as! String).utf8)
            XCTAssertEqual(ServerFrames.encode(try ServerFrames.decode(json).get()), json, v["name"] as? String ?? "")
        }
    }

    /// A member name written with escapes is the same name: both decoders read it.
    func testEscapedMemberNamesAreTheirDecodedNames() throws {
        let c = "7d444840-9dc0-4b0e-a6b5-7f1c2a3b4c5d", id = try XCTUnwrap(ConversationID(c))
        let req = #"{"t\u0079pe":"typing","\u0063onversation":"\#(c)","active":tru\u0065}"#
        XCTAssertNil(try? ClientFrames.parse(Array(req.utf8)).get(), "an escape in a literal is no literal")
        let ok = #"{"t\u0079pe":"typing","\u0063onversation":"\#(c)","act\u0069ve":true}"#
        XCTAssertEqual(try ClientFrames.parse(Array(ok.utf8)).get().request, .typing(id, active: true))
        let ack = #"{"type":"ack","ref":"r1","\u0063onversation":"\#(c)","s\u0065q":3,"ts":5,"clientMsgId":"m"}"#
        XCTAssertEqual(try ServerFrames.decode(Array(ack.utf8)).get(), .reply(.ack(ref: "r1", conversation: id, seq: 3, ts: 5, clientMsgId: "m")))
    }

    func testUnknownServerFrameTypesAndBadFramesAreErrorsNotTraps() {
        for bad in [#"{"type":"conversation.deleted"}"#, #"{"type":"message"}"#, "[]", "{", #"{"type":"ack","seq":-1,"conversation":"x"}"#,
                    #"{"type":"welcome","session":"s","epoch":"e","user":{"id":"a","role":"admin"},"conversations":[]}"#] {
            guard case .failure(let e) = ServerFrames.decode(Array(bad.utf8)) else { XCTFail("accepted \(bad)"); continue }
            XCTAssertFalse(e.message.isEmpty)
        }
    }

    func testParsesEveryRequestType() throws {
        let c = "7d444840-9dc0-4b0e-a6b5-7f1c2a3b4c5d", id = try XCTUnwrap(ConversationID(c))
        let cases: [(String, ClientRequest)] = [
            (#"{"type":"hello","token":"t","resume":{"\#(c)":4,"junk":1}}"#, .hello(token: "t", resume: [id: 4], unknownResume: ["junk"])),
            (#"{"type":"conversation.open"}"#, .open(order: .last)),
            (#"{"type":"conversation.open","order":null}"#, .open(order: .none)),
            (#"{"type":"conversation.open","order":"o-1"}"#, .open(order: .id("o-1"))),
            (#"{"type":"message.send","conversation":"\#(c)","clientMsgId":"m","text":"hi"}"#, .send(id, clientMsgId: "m", text: "hi")),
            (#"{"type":"typing","conversation":"\#(c)","active":false}"#, .typing(id, active: false)),
            (#"{"type":"read","conversation":"\#(c)","seq":3}"#, .read(id, seq: 3)),
            (#"{"type":"history","conversation":"\#(c)","before":9,"limit":2}"#, .history(id, before: 9, limit: 2)),
            (#"{"type":"agent.status","status":"away"}"#, .agentStatus(.away)),
            (#"{"type":"conversation.claim","conversation":"\#(c)"}"#, .claim(id)),
            (#"{"type":"conversation.transfer","conversation":"\#(c)","to":null}"#, .transfer(id, to: nil)),
            (#"{"type":"conversation.transfer","conversation":"\#(c)","to":"bob"}"#, .transfer(id, to: "bob")),
            (#"{"type":"conversation.resolve","conversation":"\#(c)"}"#, .resolve(id)),
            (#"{"type":"csat","conversation":"\#(c)","score":4,"comment":"ok"}"#, .csat(id, score: 4, comment: "ok")),
        ]
        for (text, want) in cases {
            XCTAssertEqual(try ClientFrames.parse(Array(text.utf8)).get().request, want, text)
        }
        XCTAssertEqual(try ClientFrames.parse(Array(#"{"type":"typing","ref":"r-1","conversation":"\#(c)","active":true}"#.utf8)).get().ref, "r-1")
    }

    func testWriterEscapesAndNumbers() {
        var w = JSONWriter()
        w.open()
        w.field("s", "a\"b\\c\n\u{1}é")
        w.field("n", Int64(-42))
        w.field("u", UInt64.max)
        w.field("b", true)
        w.field("o", nil as String?)
        w.openArray("a"); w.number(1); w.number(2); w.closeArray()
        w.close()
        let text = String(decoding: w.bytes, as: UTF8.self)
        XCTAssertEqual(text, #"{"s":"a\"b\\c\n\u0001é","n":-42,"u":18446744073709551615,"b":true,"o":null,"a":[1,2]}"#)
        XCTAssertNotNil(try? JSONSerialization.jsonObject(with: Data(w.bytes)))
    }
}
