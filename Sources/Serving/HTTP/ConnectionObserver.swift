import NIOConcurrencyHelpers
import NIOCore

/// Sits in each connection's pipeline and reports when the client closes its side (or the connection drops), so a
/// request still being computed can be cancelled: the server keeps half-closed connections open to finish
/// responses, which would otherwise hide a client that went away.
final class ConnectionObserver: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    typealias InboundIn = NIOAny

    private struct State {
        var closed = false
        var next = 0
        var callbacks: [Int: @Sendable () -> Void] = [:]
    }
    private let state = NIOLockedValueBox(State())

    func channelRead(context: ChannelHandlerContext, data: NIOAny) { context.fireChannelRead(data) }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? ChannelEvent, e == .inputClosed { fire() }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        fire()
        context.fireChannelInactive()
    }

    private func fire() {
        let callbacks = state.withLockedValue { s -> [@Sendable () -> Void] in
            s.closed = true
            defer { s.callbacks.removeAll() }
            return Array(s.callbacks.values)
        }
        callbacks.forEach { $0() }
    }

    /// Calls `callback` once when the client is gone (at once if it already is); returns a token for `remove`.
    func onClose(_ callback: @escaping @Sendable () -> Void) -> Int {
        let (token, now) = state.withLockedValue { s -> (Int, Bool) in
            s.next += 1
            if s.closed { return (s.next, true) }
            s.callbacks[s.next] = callback
            return (s.next, false)
        }
        if now { callback() }
        return token
    }

    func remove(_ token: Int) {
        state.withLockedValue { _ = $0.callbacks.removeValue(forKey: token) }
    }
}
