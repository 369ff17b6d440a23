import Glibc

/// A fork-join pool of the library's own threads: `run` calls body(0) on the caller and body(i)
/// on worker i for i in 1..<threads, and returns when all are done.
///
/// Workers sleep on a condition variable between jobs (no spinning), so a host's other work and
/// BLAS keep their cores; OpenBLAS itself runs single-threaded inside our workers, which is how
/// sdlstm avoids its spin-waiting pool and the bimodal small-K behaviour of its threading.
public final class ThreadPool: @unchecked Sendable {
    public let threads: Int
    private var workers: [pthread_t] = []
    private var mutex = pthread_mutex_t()
    private var wake = pthread_cond_t()
    private var finished = pthread_cond_t()
    private var generation = 0
    private var pending = 0
    private var stopping = false
    private var job: ((Int) -> Void)?

    public init(threads: Int) {
        self.threads = max(1, threads)
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&wake, nil)
        pthread_cond_init(&finished, nil)
        for i in 1..<self.threads {
            let context = Unmanaged.passRetained(WorkerContext(pool: self, index: i)).toOpaque()
            var thread = pthread_t()
            if pthread_create(&thread, nil, { raw in
                let ctx = Unmanaged<WorkerContext>.fromOpaque(raw!).takeRetainedValue()
                ctx.pool.workerLoop(ctx.index)
                return nil
            }, context) == 0 {
                workers.append(thread)
            } else {
                Unmanaged<WorkerContext>.fromOpaque(context).release()
            }
        }
    }

    deinit {
        pthread_mutex_lock(&mutex)
        stopping = true
        pthread_cond_broadcast(&wake)
        pthread_mutex_unlock(&mutex)
        for t in workers { pthread_join(t, nil) }
        pthread_mutex_destroy(&mutex)
        pthread_cond_destroy(&wake)
        pthread_cond_destroy(&finished)
    }

    /// Participants actually running (a worker that could not be created is not counted).
    public var width: Int { workers.count + 1 }

    public func run(_ body: (Int) -> Void) {
        if workers.isEmpty { body(0); return }
        withoutActuallyEscaping(body) { escaping in
            pthread_mutex_lock(&mutex)
            job = escaping
            pending = workers.count
            generation &+= 1
            pthread_cond_broadcast(&wake)
            pthread_mutex_unlock(&mutex)
            escaping(0)
            pthread_mutex_lock(&mutex)
            while pending > 0 { pthread_cond_wait(&finished, &mutex) }
            job = nil
            pthread_mutex_unlock(&mutex)
        }
    }

    /// Splits 0..<count into `width` contiguous chunks and runs them in parallel.
    public func forChunks(_ count: Int, granule: Int = 1, _ body: (Range<Int>) -> Void) {
        let units = (count + granule - 1) / granule
        let parts = min(width, units)
        if parts <= 1 { body(0..<count); return }
        run { i in
            guard i < parts else { return }
            let lo = units * i / parts * granule, hi = min(count, units * (i + 1) / parts * granule)
            if lo < hi { body(lo..<hi) }
        }
    }

    private func workerLoop(_ index: Int) {
        var seen = 0
        pthread_mutex_lock(&mutex)
        while true {
            while generation == seen && !stopping { pthread_cond_wait(&wake, &mutex) }
            if stopping { break }
            seen = generation
            let body = job!
            pthread_mutex_unlock(&mutex)
            body(index)
            pthread_mutex_lock(&mutex)
            pending -= 1
            if pending == 0 { pthread_cond_signal(&finished) }
        }
        pthread_mutex_unlock(&mutex)
    }
}

private final class WorkerContext {
    let pool: ThreadPool
    let index: Int
    init(pool: ThreadPool, index: Int) { self.pool = pool; self.index = index }
}

/// The threads a model computes with, shared by reference with its layers so that
/// `sdlstm_set_num_threads` reaches all of them.
public final class Compute: @unchecked Sendable {
    public private(set) var pool: ThreadPool

    public init(threads: Int = defaultThreads()) { pool = ThreadPool(threads: threads) }

    public var threads: Int { pool.threads }

    public func setThreads(_ n: Int) { if n != pool.threads { pool = ThreadPool(threads: n) } }
}
