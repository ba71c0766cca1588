// libFuzzer harness for the log record decoder (built by scripts/fuzz.sh with -sanitize=fuzzer).
// Invariants: never traps on any bytes (a disk can hold anything); a decoded record re-encodes to
// exactly the bytes it was decoded from. It says once that an input decoded to a record, so
// scripts/fuzz.sh can check the fuzzer got past the CRC (its seeds are valid records).
#if canImport(Glibc)
import Glibc
#endif

nonisolated(unsafe) private var decodedOne = false

@_cdecl("LLVMFuzzerTestOneInput")
public func recordCodecFuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeRawBufferPointer(start: data, count: size)
    switch RecordCodec.decode(input) {
    case .record(let r, let consumed):
        if !decodedOne { decodedOne = true; fputs("record-codec-fuzz: decoded a valid record\n", stderr) }
        precondition(consumed <= size + 7 && consumed % 8 == 0)
        let again = RecordCodec.encode(r)
        let frameEnd = 4 + Int(UInt32(littleEndian: input.loadUnaligned(as: UInt32.self)))
        precondition(Array(again[0..<frameEnd]) == Array(input[0..<frameEnd]), "re-encoding differs")
    case .truncated, .invalid:
        break
    }
    return 0
}
