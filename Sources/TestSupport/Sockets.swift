import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Sends an HTTP/1.1 POST of JSON `body` to `path` on 127.0.0.1:`port` over a plain socket and returns the socket
/// unread: close it to play a client that goes away, or `readAll` the answer.
public func rawPost(port: Int, path: String, body: String, apiKey: String? = "sekret") -> Int32 {
    let fd = rawConnect(port: port)
    let request = "POST \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\(apiKey.map { "Authorization: Bearer \($0)\r\n" } ?? "")Content-Length: \(body.utf8.count)\r\n\r\n\(body)"
    _ = request.withCString { send(fd, $0, strlen($0), 0) }
    return fd
}

/// A TCP connection to 127.0.0.1:`port` (nothing sent).
public func rawConnect(port: Int) -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    return fd
}

/// The status code of a GET of `path` on a connection of its own (closed after the answer).
public func rawGetStatus(port: Int, path: String) -> Int? {
    let fd = rawConnect(port: port)
    let request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    _ = request.withCString { send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
    let answer = readAll(fd, seconds: 10)
    return answer.split(separator: " ", maxSplits: 2).dropFirst().first.flatMap { Int($0) }
}

/// Whether the peer has closed `fd` (a read returns end of file or an error) within `seconds`.
public func peerCloses(_ fd: Int32, within seconds: Double) -> Bool {
    var tv = timeval(tv_sec: Int(seconds), tv_usec: .init((seconds - Double(Int(seconds))) * 1e6))
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    var byte: UInt8 = 0
    let n = recv(fd, &byte, 1, 0)
    if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return false }
    return n <= 0
}

/// Everything the peer sends until it closes (or `seconds` pass), then closes the socket.
public func readAll(_ fd: Int32, seconds: Int = 60) -> String {
    var tv = timeval(tv_sec: seconds, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    var data = [UInt8]()
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = recv(fd, &buffer, buffer.count, 0)
        if n <= 0 { break }
        data += buffer[0..<n]
    }
    close(fd)
    return String(decoding: data, as: UTF8.self)
}
