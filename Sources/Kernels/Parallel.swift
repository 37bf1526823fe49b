import CKernels
import Foundation

/// The engine's only thread pool (besides oneDNN's own OpenMP threads inside GEMM calls).
public enum Parallel {
    /// Worker count: `PEFT_NUM_THREADS` if set, else the active processor count.
    public static let threadCount: Int = {
        if let s = ProcessInfo.processInfo.environment["PEFT_NUM_THREADS"], let n = Int(s), n > 0 { return n }
        return max(1, ProcessInfo.processInfo.activeProcessorCount)
    }()

    /// Splits `0..<count` into contiguous chunks (at least `minChunk` long) and runs `body(range)` on each,
    /// in parallel when there is more than one chunk.
    /// - Parameter chunksPerThread: more, smaller chunks than threads: a thread the OS preempts (other processes,
    ///   a server's network threads) holds back one small chunk, not half the work.
    public static func forRanges(_ count: Int, minChunk: Int = 1, chunksPerThread: Int = 1, _ body: (Range<Int>) -> Void) {
        guard count > 0 else { return }
        let chunks = max(1, min(threadCount * max(1, chunksPerThread), count / max(1, minChunk)))
        if chunks == 1 { body(0..<count); return }
        let per = (count + chunks - 1) / chunks
        withoutActuallyEscaping(body) { body in
            let job = Job { c in
                let lo = c * per, hi = min(count, lo + per)
                if lo < hi { body(lo..<hi) }
            }
            withExtendedLifetime(job) {
                pk_pool_run(Int32(threadCount), chunks, { ctx, c in
                    Unmanaged<Job>.fromOpaque(ctx!).takeUnretainedValue().run(c)
                }, Unmanaged.passUnretained(job).toOpaque())
            }
        }
    }

    private final class Job {
        let run: (Int) -> Void
        init(_ run: @escaping (Int) -> Void) { self.run = run }
    }

    /// Runs `body(i)` for every i in `0..<count`, spread over the workers.
    public static func forEach(_ count: Int, _ body: (Int) -> Void) {
        forRanges(count) { range in for i in range { body(i) } }
    }
}
