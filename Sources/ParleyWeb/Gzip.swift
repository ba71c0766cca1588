import CZlib

/// gzip (RFC 1952) of a whole buffer, best compression: static assets are compressed once at start.
enum Gzip {
    static func compress(_ input: [UInt8]) -> [UInt8]? {
        var s = z_stream()
        guard parley_deflateInit2(&s, 9, 15 + 16, 9) == Z_OK else { return nil }
        defer { deflateEnd(&s) }
        var out = [UInt8](repeating: 0, count: Int(deflateBound(&s, uLong(input.count))) + 32)
        let produced: Int? = input.withUnsafeBufferPointer { inp in
            out.withUnsafeMutableBufferPointer { o in
                s.next_in = UnsafeMutablePointer(mutating: inp.baseAddress)
                s.avail_in = uInt(inp.count)
                s.next_out = o.baseAddress
                s.avail_out = uInt(o.count)
                guard deflate(&s, Z_FINISH) == Z_STREAM_END else { return nil }
                return o.count - Int(s.avail_out)
            }
        }
        guard let produced else { return nil }
        return Array(out[..<produced])
    }
}
