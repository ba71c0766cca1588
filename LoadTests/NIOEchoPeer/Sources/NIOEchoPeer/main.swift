// Usage: NIOEchoPeer [port] [threads]. Serves ws://127.0.0.1:PORT/v1/echo, echoing every message,
// written the idiomatic NIO way (write per frame, flush at channelReadComplete).
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket

final class EchoHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame
    private var awaitingClose = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .text, .binary, .continuation:
            let out = WebSocketFrame(fin: frame.fin, opcode: frame.opcode, data: frame.unmaskedData)
            context.write(wrapOutboundOut(out), promise: nil)
        case .ping:
            context.write(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)), promise: nil)
        case .connectionClose:
            guard !awaitingClose else { return }
            awaitingClose = true
            var data = frame.unmaskedData
            let code = data.readSlice(length: 2) ?? context.channel.allocator.buffer(capacity: 0)
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: code))).whenComplete { _ in
                context.close(promise: nil)
            }
        default:
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) { context.flush() }

    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
}

let args = CommandLine.arguments
let port = args.count > 1 ? Int(args[1]) ?? 8090 : 8090
let threads = args.count > 2 ? Int(args[2]) ?? 1 : 1
let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)

let upgrader = NIOWebSocketServerUpgrader(
    maxFrameSize: 1 << 16,
    shouldUpgrade: { channel, head in channel.eventLoop.makeSucceededFuture(head.uri == "/v1/echo" ? HTTPHeaders() : nil) },
    upgradePipelineHandler: { channel, _ in channel.pipeline.addHandler(EchoHandler()) }
)

let bootstrap = ServerBootstrap(group: group)
    .serverChannelOption(.backlog, value: 4096)
    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
    .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
    .childChannelInitializer { channel in
        channel.pipeline.configureHTTPServerPipeline(withServerUpgrade: (upgraders: [upgrader], completionHandler: { _ in }))
    }

let channel = try bootstrap.bind(host: "127.0.0.1", port: port).wait()
print("nio-echo listening on \(channel.localAddress!) threads=\(threads)")
try channel.closeFuture.wait()
