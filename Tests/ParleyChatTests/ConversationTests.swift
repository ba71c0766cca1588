import Foundation
@testable import ParleyChat
import ParleyLog
import ParleyProtocol
import XCTest

final class ConversationTests: XCTestCase {
    typealias H = ChatHarness
    let cust = H.customer("c1"), cust2 = H.customer("c2"), ann = H.agent("ann"), bob = H.agent("bob")

    func testOpenRoutesToAvailableAgentWhoSeesTheOrderFirst() throws {
        let h = H()
        h.connect(10, ann); h.available(10, ann); _ = h.take(10)
        h.connect(1, cust)
        let order = OrderSnapshot(id: "o-9", json: Array(#"{"id":"o-9"}"#.utf8))
        let c = try XCTUnwrap(h.open(1, cust, order: order))
        h.flush()
        let got = h.take(1)
        XCTAssertEqual(H.kinds(got), ["created", "assigned:ann"])
        guard case .reply(.opened(_, let view))? = got.first(where: { if case .reply(.opened) = $0 { return true } else { return false } }) else {
            return XCTFail("no conversation.opened in \(got)")
        }
        XCTAssertEqual(view.order, order)
        XCTAssertEqual(view.lastSeq, 1)
        // The agent gets the conversation from seq 1: the order is in front of them.
        XCTAssertEqual(H.seqs(h.take(10), c), [1, 2])
    }

    func testNoAgentMeansFIFOQueueThenAssignmentWhenOneIsAvailable() throws {
        let h = H()
        h.connect(10, ann); _ = h.take(10)
        h.connect(1, cust); h.connect(2, cust2)
        let c1 = try XCTUnwrap(h.open(1, cust)), c2 = try XCTUnwrap(h.open(2, cust2))
        XCTAssertEqual(h.take(10).last, .queue([c1, c2]))
        h.available(10, ann); h.flush()
        XCTAssertEqual(h.board.queueLength, 0)
        let got = h.take(10)
        XCTAssertEqual(H.seqs(got, c1), [1, 2])
        XCTAssertEqual(H.seqs(got, c2), [1, 2])
    }

    func testFewestOpenUnderCapacityAndClaim() throws {
        let h = H()
        h.connect(10, ann, capacity: 1); h.available(10, ann)
        h.connect(11, bob, capacity: 1); h.available(11, bob)
        h.connect(1, cust); h.connect(2, cust2); h.connect(3, H.customer("c3"))
        let c1 = try XCTUnwrap(h.open(1, cust)); h.flush()
        let c2 = try XCTUnwrap(h.open(2, cust2)); h.flush()
        let c3 = try XCTUnwrap(h.open(3, H.customer("c3"))); h.flush()
        let a = h.board.router.agents
        XCTAssertEqual(Set([a["ann"]!.open, a["bob"]!.open]), Set([[c1], [c2]]))
        XCTAssertEqual(h.board.router.queue, [c3])
        // Full agents cannot claim; after resolving, the freed agent gets the waiting one.
        _ = h.take(10)
        h.sb(.claim(10, ann, c3, ref: "cl"))
        XCTAssertEqual(H.errors(h.take(10)), [.conflict])
        let annsConversation = a["ann"]!.open.first!
        h.book(annsConversation, .resolve(10, ann, annsConversation, ref: "r")); h.flush(); h.flush()
        XCTAssertEqual(h.board.router.agents["ann"]!.open, [c3])
    }

    func testClaimFromQueue() throws {
        let h = H()
        h.connect(10, ann); h.connect(1, cust)
        let c = try XCTUnwrap(h.open(1, cust))
        h.sb(.claim(10, ann, c, ref: "cl"))
        XCTAssertEqual(H.errors(h.take(10)), [.conflict], "away agents cannot claim")
        h.sb(.agentStatus(10, ann, .available, ref: nil)); h.flush()  // routing takes it
        XCTAssertEqual(h.board.router.agent(of: c), "ann")
        h.sb(.claim(10, ann, c, ref: "again"))
        XCTAssertEqual(H.errors(h.take(10)), [.conflict])
        h.sb(.claim(10, ann, ConversationID(high: 1, low: 1), ref: "x"))
        XCTAssertEqual(H.errors(h.take(10)), [.notFound])
    }

    func testMessageAckedOnlyWhenDurableAndDeliveredOnceToEverySession() throws {
        let h = H()
        h.connect(10, ann); h.available(10, ann)
        h.connect(1, cust); h.connect(2, cust)  // two devices
        let c = try XCTUnwrap(h.open(1, cust)); h.flush()
        _ = h.take(1); _ = h.take(2); _ = h.take(10)
        h.send(1, cust, c, "hello")
        XCTAssertEqual(h.take(1), [], "nothing before the log says durable")
        XCTAssertEqual(h.take(10), [])
        h.flush()
        let mine = h.take(1)
        XCTAssertEqual(H.seqs(mine, c), [3])
        XCTAssertEqual(H.acks(mine), [3])
        XCTAssertEqual(H.seqs(h.take(2), c), [3])
        XCTAssertEqual(H.seqs(h.take(10), c), [3])
    }

    func testClientMsgIdIsIdempotentInFlightAndAfterwards() throws {
        let h = H()
        h.connect(1, cust)
        let c = try XCTUnwrap(h.open(1, cust)); _ = h.take(1)
        h.send(1, cust, c, "hi", id: "k1", ref: "a")
        h.send(1, cust, c, "hi", id: "k1", ref: "b")
        XCTAssertEqual(h.inFlight.count, 1)
        h.flush()
        let got = h.take(1)
        XCTAssertEqual(H.acks(got), [2, 2])
        XCTAssertEqual(H.seqs(got, c), [2], "one event")
        h.send(1, cust, c, "hi", id: "k1", ref: "c")
        XCTAssertEqual(h.inFlight.count, 0)
        XCTAssertEqual(H.acks(h.take(1)), [2])
        // Another user's identical id is a different message.
        h.connect(10, ann); h.available(10, ann); h.flush(); _ = h.take(10)
        h.send(10, ann, c, "hi", id: "k1"); h.flush()
        XCTAssertEqual(H.acks(h.take(10)), [4])
    }

    func testRefusedAppendAnswersUnavailableAndKeepsSequenceGapless() throws {
        let h = H()
        h.connect(1, cust)
        let c = try XCTUnwrap(h.open(1, cust)); _ = h.take(1)
        h.send(1, cust, c, "one"); h.send(1, cust, c, "two")
        h.failNext = 1
        h.flush()
        XCTAssertEqual(H.errors(h.take(1)), [.unavailable, .unavailable], "the second could not land after a gap")
        h.send(1, cust, c, "three"); h.flush()
        let got = h.take(1)
        XCTAssertEqual(H.acks(got), [2])
        XCTAssertEqual(h.stored[c]!.map(\.seq), [1, 2])
    }

    /// A refused append in the middle of a pipelined burst: the appends behind it are refused too
    /// (the log wants gapless sequences), requests arriving while they are still in flight are
    /// refused at once, and once they are all back traffic goes on from what is durable. No
    /// sequence is handed out twice and every requester gets exactly one answer.
    func testARefusedAppendInAPipelinedBurstNeverReusesASequence() throws {
        let h = H()
        h.connect(10, ann); h.available(10, ann); h.connect(1, cust)
        let c = try XCTUnwrap(h.open(1, cust)); h.flush(); _ = h.take(1)  // created 1, assigned 2
        XCTAssertEqual(H.seqs(h.take(10), c), [1, 2])
        for i in 1...5 { h.send(1, cust, c, "m\(i)", ref: "m\(i)") }     // 3...7 in flight
        h.refuse = { $0.sequence == 5 }
        h.flush(3)                                                        // 3, 4 land; 5 refused; 6, 7 in flight
        h.refuse = { _ in false }
        h.send(1, cust, c, "m6", ref: "m6")                               // while 6 and 7 are in flight
        h.flush()                                                         // 6 and 7 come back refused
        h.send(1, cust, c, "m7", ref: "m7"); h.flush()
        var answers = Self.answers(h.take(1))
        XCTAssertEqual(answers, ["m1": "ack 3", "m2": "ack 4", "m3": "unavailable", "m4": "unavailable",
                                 "m5": "unavailable", "m6": "unavailable", "m7": "ack 5"])
        // The refused ones are sent again with the same ids: each lands once, after the rest.
        for i in 3...6 { h.send(1, cust, c, "m\(i)", ref: "r\(i)") }
        h.send(1, cust, c, "m7", ref: "again7")
        h.flush()
        answers = Self.answers(h.take(1))
        XCTAssertEqual(answers, ["r3": "ack 6", "r4": "ack 7", "r5": "ack 8", "r6": "ack 9", "again7": "ack 5"])
        XCTAssertEqual(h.stored[c]!.map(\.seq), Array(1...9), "gapless, each once")
        XCTAssertEqual(H.seqs(h.take(10), c), Array(3...9), "the agent got every event once, in order")
    }

    /// A resolve behind a refused message is refused with it: the conversation stays open (the
    /// projection does not keep the resolve), and both go through when sent again.
    func testAResolveBehindARefusedMessageIsNotKept() throws {
        let h = H()
        h.connect(10, ann); h.available(10, ann); h.connect(1, cust)
        let c = try XCTUnwrap(h.open(1, cust)); h.flush(); _ = h.take(1); _ = h.take(10)
        h.send(1, cust, c, "hello", ref: "m")
        h.book(c, .resolve(10, ann, c, ref: "resolve"))
        h.refuse = { $0.sequence == 3 }
        h.flush()
        h.refuse = { _ in false }
        XCTAssertEqual(Self.answers(h.take(1)), ["m": "unavailable"])
        XCTAssertEqual(Self.answers(h.take(10)), ["resolve": "unavailable"])
        XCTAssertEqual(h.books[Int(c.low % 2)].view(c, viewer: "ann")?.status, .assigned)
        XCTAssertEqual(h.board.openConversation(of: "c1"), c)
        h.send(1, cust, c, "hello", ref: "m"); h.book(c, .resolve(10, ann, c, ref: "resolve")); h.flush()
        XCTAssertEqual(Self.answers(h.take(1)), ["m": "ack 3"])
        XCTAssertEqual(Self.answers(h.take(10)), ["resolve": "ack 4"])
        XCTAssertNil(h.board.openConversation(of: "c1"))
    }

    /// Each request's one answer, by ref ("ack N" or the error code); a second answer to the same
    /// ref fails the test.
    static func answers(_ got: [H.Got]) -> [String: String] {
        var out: [String: String] = [:]
        for g in got {
            guard case .reply(let r) = g else { continue }
            let (ref, text): (String?, String)
            switch r {
            case .ack(let f, _, let seq, _, _): (ref, text) = (f, "ack \(seq.map(String.init) ?? "-")")
            case .error(let f, let code, _): (ref, text) = (f, code.rawValue)
            case .opened(let f, _): (ref, text) = (f, "opened")
            }
            let key = ref ?? "-"
            XCTAssertNil(out[key], "two answers to \(key): \(out[key]!) and \(text)")
            out[key] = text
        }
        return out
    }

    func testValidation() throws {
        let h = H()
        h.connect(1, cust); h.connect(2, cust2)
        let c = try XCTUnwrap(h.open(1, cust)); _ = h.take(1)
        h.send(1, cust, c, "")
        h.send(1, cust, c, String(repeating: "x", count: ChatLimits.maxTextBytes + 1))
        h.book(c, .message(1, cust, c, ref: "m", clientMsgId: String(repeating: "k", count: 65), text: "x"))
        XCTAssertEqual(H.errors(h.take(1)), [.invalidRequest, .tooLarge, .invalidRequest])
        h.send(2, cust2, c, "not mine")
        h.book(c, .history(2, cust2, c, ref: "h", before: nil, limit: nil))
        XCTAssertEqual(H.errors(h.take(2)), [.forbidden, .forbidden])
        h.book(c, .resolve(1, cust, c, ref: "r"))
        h.book(c, .transferRequest(1, cust, c, ref: "t", to: nil))
        h.book(c, .read(1, cust, c, seq: 99, ref: "rd"))
        XCTAssertEqual(H.errors(h.take(1)), [.forbidden, .forbidden, .invalidRequest])
        let unknown = ConversationID(high: 7, low: 7)
        h.send(1, cust, unknown, "x")
        XCTAssertEqual(H.errors(h.take(1)), [.notFound])
        XCTAssertEqual(h.inFlight.count, 0)
    }

    func testOneOpenConversationPerCustomerAndOrderAttached() throws {
        let h = H()
        h.connect(1, cust)
        let c = try XCTUnwrap(h.open(1, cust, order: H.order("o1")))
        XCTAssertEqual(h.open(1, cust, order: H.order("o1")), c)
        XCTAssertEqual(h.open(1, cust, order: H.order("o2")), c)
        XCTAssertEqual(H.kinds(h.take(1)), ["created", "order:o2"])
        XCTAssertEqual(h.open(1, cust, order: nil), c, "order: null keeps the conversation as it is")
        XCTAssertEqual(h.stored[c]!.count, 2)
    }

    func testResolveThenCSATThenANewConversation() throws {
        let h = H()
        h.connect(10, ann); h.available(10, ann); h.connect(1, cust)
        let c = try XCTUnwrap(h.open(1, cust)); h.flush(); _ = h.take(1); _ = h.take(10)
        h.book(c, .csat(1, cust, c, ref: "early", score: 5, comment: nil))
        XCTAssertEqual(H.errors(h.take(1)), [.conflict])
        h.book(c, .resolve(10, ann, c, ref: "r")); h.flush()
        XCTAssertEqual(H.kinds(h.take(1)), ["resolved"])
        _ = h.take(10)
        h.send(1, cust, c, "late")
        XCTAssertEqual(H.errors(h.take(1)), [.conflict])
        h.book(c, .csat(1, cust, c, ref: "s", score: 6, comment: nil))
        h.book(c, .csat(1, cust, c, ref: "s", score: 4, comment: "ok")); h.flush()
        h.book(c, .csat(1, cust, c, ref: "s", score: 4, comment: "again"))
        let got = h.take(1)
        XCTAssertEqual(H.errors(got), [.invalidRequest, .conflict])
        XCTAssertEqual(H.kinds(got), ["csat:4"])
        XCTAssertEqual(H.kinds(h.take(10)), ["csat:4"], "the agent who resolved sees the rating")
        let next = try XCTUnwrap(h.open(1, cust))
        XCTAssertNotEqual(next, c)
    }

    func testTransferToAnotherAgentAndBackToTheQueue() throws {
        let h = H()
        h.connect(10, ann); h.available(10, ann); h.connect(1, cust)
        let c = try XCTUnwrap(h.open(1, cust)); h.flush(); _ = h.take(10)
        h.connect(11, bob); _ = h.take(11)
        h.book(c, .transferRequest(10, ann, c, ref: "t", to: "bob"))
        XCTAssertEqual(H.errors(h.take(10)), [.conflict], "bob is away")
        h.available(11, bob); _ = h.take(11)
        h.book(c, .transferRequest(10, ann, c, ref: "t", to: "bob")); h.flush()
        XCTAssertEqual(H.kinds(h.take(10)), ["transferred:bob"])
        XCTAssertEqual(H.seqs(h.take(11), c), [1, 2, 3], "bob gets it from the start")
        h.send(1, cust, c, "still there?"); h.flush()
        XCTAssertEqual(h.take(10), [], "ann no longer receives it")
        XCTAssertEqual(H.seqs(h.take(11), c), [4])
        // Back to the queue: bob is skipped for this one drain, ann (available) takes it.
        h.book(c, .transferRequest(11, bob, c, ref: "q", to: nil)); h.flush()
        XCTAssertEqual(h.board.router.agent(of: c), "ann")
        XCTAssertEqual(H.kinds(h.take(10)).suffix(2), ["transferred:queue", "assigned:ann"])
    }

    func testResumeReplaysExactlyWhatIsMissingAfterTheWelcome() throws {
        let h = H()
        h.connect(1, cust)
        let c = try XCTUnwrap(h.open(1, cust))
        for t in ["a", "b", "c"] { h.send(1, cust, c, t) }
        h.flush()
        h.sb(.sessionClosed(1))
        let got = h.connect(2, cust, resume: [c: 2])
        guard case .welcome(let views)? = got.first else { return XCTFail("welcome first: \(got)") }
        XCTAssertEqual(views.map(\.lastSeq), [4])
        XCTAssertEqual(H.seqs(got, c), [3, 4])
        let far = h.connect(3, cust, resume: [c: 9, ConversationID(high: 3, low: 3): 0])
        XCTAssertEqual(Set(far.compactMap { if case .resumeFailed(_, let r) = $0 { return r } else { return nil } }), ["beyond_end", "not_found"])
        XCTAssertEqual(H.seqs(far, c), [])
        let other = h.connect(4, cust2, resume: [c: 0])
        XCTAssertTrue(other.contains(.resumeFailed(c, "forbidden")))
        // A session without resume (or whose resume failed) goes on live from the end.
        h.send(2, cust, c, "d"); h.flush()
        XCTAssertEqual(H.seqs(h.take(2), c), [5])
        XCTAssertEqual(H.seqs(h.take(3), c), [5])
    }

    func testTypingGoesToOthersAndExpires() throws {
        let h = H()
        h.connect(10, ann); h.available(10, ann); h.connect(1, cust)
        let c = try XCTUnwrap(h.open(1, cust)); h.flush(); _ = h.take(1); _ = h.take(10)
        h.book(c, .typing(1, cust, c, active: true))
        h.book(c, .typing(1, cust, c, active: true))  // renewal: no second frame
        XCTAssertEqual(h.take(10), [.typing("c1", true)])
        XCTAssertEqual(h.take(1), [])
        h.tick(by: 4_000)
        XCTAssertEqual(h.take(10), [])
        h.tick(by: 1_500)
        XCTAssertEqual(h.take(10), [.typing("c1", false)])
        h.book(c, .typing(1, cust, c, active: true)); _ = h.take(10)
        h.send(1, cust, c, "done"); h.flush()
        XCTAssertEqual(h.take(10).first, .typing("c1", false), "a message clears typing")
        h.book(c, .typing(1, cust, c, active: true)); _ = h.take(10)
        h.sb(.sessionClosed(1))
        XCTAssertEqual(h.take(10), [.typing("c1", false)], "disconnect clears typing")
        XCTAssertEqual(h.inFlight.count, 0, "typing is never logged")
    }

    func testReadMarkersAreStoredSentToOthersAndInTheWelcome() throws {
        let h = H()
        h.connect(10, ann); h.available(10, ann); h.connect(1, cust)
        let c = try XCTUnwrap(h.open(1, cust)); h.flush(); _ = h.take(10)
        h.book(c, .read(10, ann, c, seq: 2, ref: "r")); h.flush()
        XCTAssertEqual(H.acks(h.take(10)), [nil])
        XCTAssertEqual(h.take(1).filter { if case .read = $0 { return true } else { return false } }, [.read("ann", 2)])
        XCTAssertEqual(h.reads.count, 1)
        h.book(c, .read(10, ann, c, seq: 1, ref: "r")); h.flush()
        XCTAssertEqual(h.reads.count, 1, "an older marker changes nothing")
        h.sb(.sessionClosed(10))
        guard case .welcome(let views)? = h.connect(12, ann).first else { return XCTFail() }
        XCTAssertEqual(views.first?.readSeq, 2)
    }

    func testARefusedReadMarkerKeepsTheDurableOne() throws {
        let h = H()
        h.connect(1, cust)
        let c = try XCTUnwrap(h.open(1, cust))
        for t in ["a", "b", "c"] { h.send(1, cust, c, t) }
        h.flush(); _ = h.take(1)
        h.book(c, .read(1, cust, c, seq: 2, ref: "r1")); h.flush()
        h.book(c, .read(1, cust, c, seq: 4, ref: "r2"))
        XCTAssertEqual(h.books[Int(c.low % 2)].view(c, viewer: "c1")?.readSeq, 2, "views show durable markers only")
        h.failNext = 1
        h.flush()
        XCTAssertEqual(H.errors(h.take(1)), [.unavailable])
        XCTAssertEqual(h.books[Int(c.low % 2)].view(c, viewer: "c1")?.readSeq, 2, "the durable marker stays")
        h.book(c, .read(1, cust, c, seq: 3, ref: "r3")); h.flush()
        XCTAssertEqual(H.acks(h.take(1)), [nil], "3 is above the durable 2, so it is stored")
        XCTAssertEqual(h.reads.map(\.2), [2, 3])
    }

    func testHistoryLimitAndBefore() throws {
        let h = H()
        h.connect(1, cust)
        let c = try XCTUnwrap(h.open(1, cust))
        for i in 0..<10 { h.send(1, cust, c, "m\(i)") }
        h.flush(); _ = h.take(1)
        h.book(c, .history(1, cust, c, ref: "h", before: nil, limit: 3))
        h.book(c, .history(1, cust, c, ref: "h", before: 5, limit: nil))
        h.book(c, .history(1, cust, c, ref: "h", before: nil, limit: 100_000))
        h.book(c, .history(1, cust, c, ref: "h", before: nil, limit: 0))
        let got = h.take(1)
        XCTAssertEqual(Array(got.prefix(3)), [.history([9, 10, 11]), .history([1, 2, 3, 4]), .history(Array(1...11))])
        XCTAssertEqual(H.errors(got), [.invalidRequest])
    }

    /// Cluster mode, on a node that no longer writes: the writer took the conversation from an
    /// agent whose session here has closed but who is still within the presence grace here. The
    /// customer here still gets that agent's `offline` when the grace ends, although the
    /// conversation is no longer the agent's (on one node the offline comes first, then the transfer).
    func testACustomerHearsTheAgentGoEvenWhenTheWriterMovedTheConversationFirst() throws {
        let h = H(graceMs: 5_000)
        h.connect(10, ann); h.available(10, ann)
        h.connect(1, cust)
        let c = try XCTUnwrap(h.open(1, cust)); h.flush(); _ = h.take(1)
        XCTAssertEqual(h.board.router.agent(of: c), "ann")
        h.sb(.decides(false))
        h.sb(.sessionClosed(10))
        // The writer's transfer back to the queue arrives before this node's grace is over.
        h.sb(.replicated(RestoredConversation(id: c, customer: cust, agent: nil, resolved: false, createdMs: h.now)))
        XCTAssertNil(h.board.router.agent(of: c))
        h.tick(by: 4_000)
        XCTAssertFalse(h.take(1).contains(.presence("ann", .offline)), "not before the grace ends")
        h.tick(by: 1_500)
        XCTAssertTrue(h.take(1).contains(.presence("ann", .offline)))
        h.tick(by: 10_000)
        XCTAssertFalse(h.take(1).contains(.presence("ann", .offline)), "once")
    }

    func testPresenceWithGraceAndAgentGoneRequeues() throws {
        let h = H(graceMs: 5_000)
        h.connect(10, ann); h.available(10, ann); h.connect(11, bob)
        h.connect(1, cust)
        let c = try XCTUnwrap(h.open(1, cust)); h.flush(); _ = h.take(1); _ = h.take(10)
        // A quick reconnect does not flap.
        h.sb(.sessionClosed(1)); h.tick(by: 2_000); h.connect(2, cust); h.tick(by: 10_000)
        XCTAssertFalse(h.take(10).contains(.presence("c1", .offline)))
        h.sb(.sessionClosed(2)); h.tick(by: 4_000)
        XCTAssertEqual(h.take(10).filter { if case .presence = $0 { return true } else { return false } }, [])
        h.tick(by: 1_500)
        XCTAssertEqual(h.take(10), [.presence("c1", .offline)])
        // The agent goes; after the grace the conversation goes back to the queue, then to bob.
        h.connect(3, cust); _ = h.take(10)
        h.sb(.sessionClosed(10)); h.tick(by: 5_500); h.flush()
        var seen = h.take(3)
        XCTAssertTrue(seen.contains(.presence("ann", .offline)))
        XCTAssertEqual(h.board.router.queue, [c])
        h.available(11, bob); h.flush()
        XCTAssertEqual(h.board.router.agent(of: c), "bob")
        seen += h.take(3)
        XCTAssertEqual(H.kinds(seen).suffix(2), ["transferred:queue", "assigned:bob"])
    }

    func testRestoreRebuildsConversationsAndRoutingFromTheLog() throws {
        let h = H()
        h.connect(10, ann); h.available(10, ann); h.connect(1, cust); h.connect(2, cust2)
        let c1 = try XCTUnwrap(h.open(1, cust)); h.flush()
        h.send(1, cust, c1, "hi"); h.flush()
        h.book(c1, .read(10, ann, c1, seq: 3, ref: "r")); h.flush()
        let c2 = try XCTUnwrap(h.open(2, cust2)); h.flush()
        h.book(c2, .resolve(10, ann, c2, ref: "r")); h.flush()
        // What landed goes into a real log on disk, in the order it landed; a fresh harness is
        // rebuilt from that log, read back after a reopen, through the server's own replay.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("parley-restore-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (log, _) = try Log.open(LogConfig(directory: dir))
        for var record in h.landed { record.offset = 0; try log.appendAndWait([record]) }
        log.close()
        let (reopened, report) = try Log.open(LogConfig(directory: dir))
        defer { reopened.close() }
        XCTAssertEqual(Int(report.records), h.landed.count)
        let r = H()
        var outcomes: [ChatReplay.Outcome] = []
        for record in reopened.read(from: reopened.firstOffset, limit: 1000) {
            outcomes.append(ChatReplay.apply(record, to: &r.books[Int(record.conversation.low % 2)]))
            if record.sequence > 0 { r.stored[record.conversation, default: []].append((record.sequence, record.timestampMs, record.key, record.payload)) }
        }
        // created, assigned, message, read (c1); created, assigned, resolved (c2); the agent's status.
        XCTAssertEqual(outcomes.filter { $0 == .event }.count, 6)
        XCTAssertEqual(outcomes.filter { $0 == .read }.count, 1)
        r.board.restore(r.books.flatMap { $0.restored() }, now: r.now)
        XCTAssertEqual(r.board.openConversation(of: "c1"), c1)
        XCTAssertNil(r.board.openConversation(of: "c2"))
        XCTAssertEqual(r.board.router.agent(of: c1), "ann")
        XCTAssertEqual(r.books[Int(c1.low % 2)].view(c1, viewer: "c1")?.lastSeq, 3)
        XCTAssertEqual(r.books[Int(c1.low % 2)].view(c1, viewer: "ann")?.readSeq, 3, "the read marker is rebuilt")
        XCTAssertEqual(r.books[Int(c2.low % 2)].view(c2, viewer: "c2")?.status, .resolved)
        // The same message id is still a duplicate after the restart.
        r.connect(1, cust)
        r.send(1, cust, c1, "hi")
        XCTAssertEqual(H.acks(r.take(1)), [3])
        // ann does not come back: her conversation returns to the queue after the grace.
        r.tick(by: 6_000); r.flush()
        XCTAssertEqual(r.board.router.queue, [c1])
    }
}
