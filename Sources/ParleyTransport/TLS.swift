import COpenSSL
import Foundation
#if canImport(Glibc)
import Glibc
#endif

public enum TLSError: Error, CustomStringConvertible {
    case context(String)
    case certificate(path: String, String)
    case key(path: String, String)
    case keyMismatch(certificate: String, key: String)
    case selfSigned(String)

    public var description: String {
        switch self {
        case .context(let m): return "TLS: cannot create a context: \(m)"
        case .certificate(let p, let m): return "TLS: cannot use the certificate \(p): \(m)"
        case .key(let p, let m): return "TLS: cannot use the private key \(p): \(m)"
        case .keyMismatch(let c, let k): return "TLS: the private key \(k) does not belong to the certificate \(c)"
        case .selfSigned(let m): return "TLS: cannot make a self-signed certificate: \(m)"
        }
    }
}

/// One `SSL_CTX`, shared by every connection made from it (the certificate and key are loaded once).
/// Connections hold their own reference, so a reload that replaces the context leaves them alone.
public final class TLSContext: @unchecked Sendable {
    let ctx: OpaquePointer
    public let isServer: Bool
    /// Client side: check the server's certificate chain and name.
    public let verifiesPeer: Bool

    private init(ctx: OpaquePointer, isServer: Bool, verifiesPeer: Bool) {
        self.ctx = ctx
        self.isServer = isServer
        self.verifiesPeer = verifiesPeer
    }

    deinit { SSL_CTX_free(ctx) }

    /// A server context from PEM files: TLS 1.2 minimum (1.3 preferred: OpenSSL picks the highest),
    /// ALPN http/1.1, no renegotiation, no session cache or tickets, buffers released when idle.
    public static func server(certificatePath: String, keyPath: String) throws -> TLSContext {
        guard let ctx = SSL_CTX_new(TLS_server_method()) else { throw TLSError.context(TLS.takeError()) }
        let c = TLSContext(ctx: ctx, isServer: true, verifiesPeer: false)
        common(ctx)
        _ = SSL_CTX_set_options(ctx, parley_SSL_OP_CIPHER_SERVER_PREFERENCE())
        _ = SSL_CTX_set_num_tickets(ctx, 0)
        _ = parley_SSL_CTX_set_session_cache_off(ctx)
        parley_SSL_CTX_use_http11_alpn(ctx)
        guard FileManager.default.isReadableFile(atPath: certificatePath) else {
            throw TLSError.certificate(path: certificatePath, "no such readable file")
        }
        guard FileManager.default.isReadableFile(atPath: keyPath) else { throw TLSError.key(path: keyPath, "no such readable file") }
        guard SSL_CTX_use_certificate_chain_file(ctx, certificatePath) == 1 else {
            throw TLSError.certificate(path: certificatePath, TLS.takeError())
        }
        guard SSL_CTX_use_PrivateKey_file(ctx, keyPath, SSL_FILETYPE_PEM) == 1 else {
            let m = TLS.takeError()
            // OpenSSL reports a key of another type than the certificate's here, not in the check below.
            if m.contains("values mismatch") || m.contains("key type mismatch") {
                throw TLSError.keyMismatch(certificate: certificatePath, key: keyPath)
            }
            throw TLSError.key(path: keyPath, m)
        }
        guard SSL_CTX_check_private_key(ctx) == 1 else {
            _ = TLS.takeError()
            throw TLSError.keyMismatch(certificate: certificatePath, key: keyPath)
        }
        return c
    }

    /// A client context. `caFile` replaces the system trust store (e.g. a dev self-signed certificate);
    /// `verifyPeer: false` accepts any certificate (load tests against a throwaway one only).
    public static func client(verifyPeer: Bool = true, caFile: String? = nil) throws -> TLSContext {
        guard let ctx = SSL_CTX_new(TLS_client_method()) else { throw TLSError.context(TLS.takeError()) }
        let c = TLSContext(ctx: ctx, isServer: false, verifiesPeer: verifyPeer)
        common(ctx)
        _ = parley_SSL_CTX_offer_http11_alpn(ctx)
        if verifyPeer {
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nil)
            if let caFile {
                guard SSL_CTX_load_verify_locations(ctx, caFile, nil) == 1 else {
                    throw TLSError.certificate(path: caFile, TLS.takeError())
                }
            } else {
                _ = SSL_CTX_set_default_verify_paths(ctx)
            }
        } else {
            SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nil)
        }
        return c
    }

    private static func common(_ ctx: OpaquePointer) {
        _ = parley_SSL_CTX_set_min_proto_version(ctx, parley_TLS1_2_VERSION())
        _ = SSL_CTX_set_options(ctx, parley_SSL_OP_NO_RENEGOTIATION() | parley_SSL_OP_NO_COMPRESSION())
        // Release the 16 KiB+ record buffers whenever they are empty: ~49 KB -> ~16 KB per idle
        // connection (notes/transport.md §A3).
        _ = parley_SSL_CTX_set_mode(ctx, parley_SSL_MODE_RELEASE_BUFFERS())
    }
}

/// The server's current context, replaced on reload (SIGHUP) without touching open connections.
public final class TLSContextSource: @unchecked Sendable {
    public let certificatePath: String
    public let keyPath: String
    private let lock = NSLock()
    private var context: TLSContext

    public init(certificatePath: String, keyPath: String) throws {
        self.certificatePath = certificatePath
        self.keyPath = keyPath
        self.context = try TLSContext.server(certificatePath: certificatePath, keyPath: keyPath)
    }

    public var current: TLSContext {
        lock.lock(); defer { lock.unlock() }
        return context
    }

    /// Loads the files again; on any error the old context stays and the error is thrown.
    public func reload() throws {
        let fresh = try TLSContext.server(certificatePath: certificatePath, keyPath: keyPath)
        lock.lock()
        context = fresh
        lock.unlock()
    }
}

public enum TLS {
    /// The newest queued OpenSSL error as text; the thread's queue is cleared (it is per thread,
    /// and loops share Dispatch's threads: a stale error would confuse the next connection).
    static func takeError() -> String {
        var buf = [CChar](repeating: 0, count: 256)
        let e = parley_take_error(&buf, buf.count)
        return e == 0 ? "unknown error" : String(cString: buf)
    }

    /// Makes a development certificate (ECDSA P-256, CN=localhost, SAN localhost and 127.0.0.1) in
    /// `directory` unless a valid one with more than a day left is there. Returns (cert, key) paths.
    public static func selfSigned(in directory: String, days: Int = 30) throws -> (certificate: String, key: String, created: Bool) {
        let cert = directory + "/cert.pem", key = directory + "/key.pem"
        if parley_cert_seconds_left(cert) > 86_400, FileManager.default.isReadableFile(atPath: key) {
            return (cert, key, false)
        }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw TLSError.selfSigned("cannot create \(directory): \(error)")
        }
        // The key file is created 0600 before OpenSSL writes into it.
        let fd = open(key, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw TLSError.selfSigned("cannot write \(key): \(String(cString: strerror(errno)))") }
        _ = fchmod(fd, 0o600)
        _ = Glibc.close(fd)
        guard parley_make_self_signed(cert, key, Int32(days)) == 1 else { throw TLSError.selfSigned(takeError()) }
        return (cert, key, true)
    }
}

// MARK: - per-connection state and the loop's memory BIO

/// One connection's TLS session. The SSL object reads and writes through a BIO whose data lives on
/// the loop (`TLSIO`): ciphertext in comes straight from the loop's read buffer, ciphertext out
/// goes to the loop's scratch and then into the connection's ordinary outbound queue.
final class TLSState {
    let ssl: OpaquePointer
    let context: TLSContext
    var handshakeDone = false
    var shutdownSent = false
    var sawInput = false
    /// Plaintext written before the handshake finished (a client's HTTP request).
    var early: [UInt8] = []

    init?(context: TLSContext, io: TLSIO, serverName: String?) {
        guard let ssl = SSL_new(context.ctx) else { _ = TLS.takeError(); return nil }
        guard let bio = BIO_new(TLSIO.method) else { SSL_free(ssl); _ = TLS.takeError(); return nil }
        BIO_set_data(bio, Unmanaged.passUnretained(io).toOpaque())
        BIO_set_init(bio, 1)
        SSL_set_bio(ssl, bio, bio)  // one BIO both ways; SSL_free frees it once
        self.ssl = ssl
        self.context = context
        if context.isServer {
            SSL_set_accept_state(ssl)
        } else {
            SSL_set_connect_state(ssl)
            if let name = serverName {
                let isIP = name.allSatisfy { $0.isNumber || $0 == "." } || name.contains(":")
                if !isIP { _ = parley_SSL_set_tlsext_host_name(ssl, name) }
                if context.verifiesPeer {
                    let param = SSL_get0_param(ssl)
                    if isIP { _ = X509_VERIFY_PARAM_set1_ip_asc(param, name) } else { _ = SSL_set1_host(ssl, name) }
                }
            }
        }
    }

    deinit { SSL_free(ssl) }
}

/// The loop's TLS scratch: the BIO reads ciphertext from `input` and appends what OpenSSL writes
/// to `out`. Loop-confined like everything else on the loop, so one serves every connection.
/// Loop-confined scratch (one per loop), like the loop itself.
final class TLSIO: @unchecked Sendable {
    var input: UnsafeRawPointer?
    var inputCount = 0
    var inputUsed = 0
    var out: UnsafeMutableRawPointer
    var outCount = 0
    var outCapacity = 32 * 1024
    /// Decrypted input: never more than the ciphertext just read plus one record OpenSSL held back.
    let plain: UnsafeMutableRawPointer
    let plainCapacity = Loop.readBufferBytes + 20 * 1024
    /// Header + payload joined into one TLS record.
    var join: UnsafeMutableRawPointer
    var joinCapacity = 16 * 1024
    var handshakesThisTurn = 0
    var deferred: [Connection] = []
    var deferredHead = 0
    var resumeScheduled = false

    init() {
        out = .allocate(byteCount: outCapacity, alignment: 16)
        plain = .allocate(byteCount: plainCapacity, alignment: 16)
        join = .allocate(byteCount: joinCapacity, alignment: 16)
    }

    func append(_ p: UnsafeRawPointer, _ n: Int) {
        if outCount + n > outCapacity {
            let cap = max(outCapacity * 2, outCount + n)
            let nb = UnsafeMutableRawPointer.allocate(byteCount: cap, alignment: 16)
            nb.copyMemory(from: out, byteCount: outCount)
            out.deallocate()
            out = nb
            outCapacity = cap
        }
        (out + outCount).copyMemory(from: p, byteCount: n)
        outCount += n
    }

    /// After a big write: give back what one large message grew.
    func shrinkIfHuge() {
        if outCapacity > 256 * 1024, outCount == 0 {
            out.deallocate()
            outCapacity = 32 * 1024
            out = .allocate(byteCount: outCapacity, alignment: 16)
        }
    }

    func joinBuffer(_ n: Int) -> UnsafeMutableRawPointer {
        if n > joinCapacity {
            join.deallocate()
            joinCapacity = max(n, joinCapacity * 2)
            join = .allocate(byteCount: joinCapacity, alignment: 16)
        }
        return join
    }

    /// Made once, then only read (OpenSSL's BIO_METHOD is immutable after set-up).
    nonisolated(unsafe) static let method: OpaquePointer = {
        let m = BIO_meth_new(BIO_get_new_index() | parley_BIO_TYPE_SOURCE_SINK(), "parley-loop")!
        _ = BIO_meth_set_write(m) { bio, data, len in
            guard let bio, let data, len > 0, let p = BIO_get_data(bio) else { return 0 }
            Unmanaged<TLSIO>.fromOpaque(p).takeUnretainedValue().append(data, Int(len))
            return len
        }
        _ = BIO_meth_set_read(m) { bio, data, len in
            guard let bio, let data, let p = BIO_get_data(bio) else { return 0 }
            parley_BIO_clear_retry_flags(bio)
            let io = Unmanaged<TLSIO>.fromOpaque(p).takeUnretainedValue()
            let left = io.inputCount - io.inputUsed
            guard left > 0, let input = io.input else {
                parley_BIO_set_retry_read(bio)
                return -1
            }
            let n = min(left, Int(len))
            UnsafeMutableRawPointer(data).copyMemory(from: input + io.inputUsed, byteCount: n)
            io.inputUsed += n
            return Int32(n)
        }
        _ = BIO_meth_set_ctrl(m) { _, cmd, _, _ in cmd == parley_BIO_CTRL_FLUSH() ? 1 : 0 }
        _ = BIO_meth_set_create(m) { bio in BIO_set_init(bio, 1); return 1 }
        _ = BIO_meth_set_destroy(m) { _ in 1 }
        return m
    }()
}
