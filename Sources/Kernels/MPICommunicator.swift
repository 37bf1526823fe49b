import CKernels
import Foundation

/// The ranks `mpirun` started this process among (Open MPI, loaded at run time): sums over all ranks for data-parallel
/// training. Without mpirun (or with one rank) there is none, and nothing about MPI is loaded.
///
/// ```swift
/// if let world = try MPICommunicator.fromEnvironment() { try world.sum(gradients, count: n) }
/// ```
public final class MPICommunicator: @unchecked Sendable {
    public let rank: Int
    public let size: Int

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    private init(rank: Int, size: Int) {
        self.rank = rank
        self.size = size
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var shared: MPICommunicator?

    /// The world of this process when mpirun started it with more than one rank; nil otherwise. Initializes MPI once.
    public static func fromEnvironment() throws -> MPICommunicator? {
        guard pk_mpi_launched() > 1 else { return nil }
        lock.lock()
        defer { lock.unlock() }
        if let shared { return shared }
        guard pk_mpi_init() == 0 else { throw Failure(description: String(cString: pk_mpi_error())) }
        let world = MPICommunicator(rank: Int(pk_mpi_rank()), size: Int(pk_mpi_size()))
        shared = world
        return world
    }

    public var isPrimary: Bool { rank == 0 }

    /// Sums `count` floats in place over all ranks.
    public func sum(_ values: UnsafeMutablePointer<Float>, count: Int) throws {
        guard pk_mpi_allreduce_f32(values, count) == 0 else { throw Failure(description: "MPI_Allreduce of \(count) floats failed on rank \(rank)") }
    }

    /// The element-wise sums over all ranks.
    public func sum(_ values: [Double]) throws -> [Double] {
        var v = values
        let rc = v.withUnsafeMutableBufferPointer { pk_mpi_allreduce_f64($0.baseAddress!, $0.count) }
        guard rc == 0 else { throw Failure(description: "MPI_Allreduce of \(values.count) doubles failed on rank \(rank)") }
        return v
    }

    public func barrier() { _ = pk_mpi_barrier() }

    /// Ends every rank of the job with `code` (mpirun then exits non-zero).
    public func abort(_ code: Int32) -> Never {
        pk_mpi_abort(code)
        exit(code)
    }

    public func finalize() { pk_mpi_finalize() }
}
