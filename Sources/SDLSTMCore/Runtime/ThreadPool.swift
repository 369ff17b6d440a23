import Glibc

/// A fork-join pool of the library's own threads. `run(parts, body)` calls body(p) exactly once for
/// each p in 0..<parts and returns when all are done; callers cut their work into at most `threads`
/// parts, so what each part computes, and with it every result, depends on the thread count asked
/// for, never on how many workers are running: the workers are capped at the CPUs the process may
/// run on, and a worker that could not be created leaves its parts to the others.
///
/// Workers sleep on a condition variable between jobs (no spinning), so a host's other work keeps
/// its cores; OpenBLAS runs single-threaded inside them (see `blasSingleThreaded`), which is how
/// sdlstm avoids its spin-waiting pool and the bimodal small-K behaviour of its threading.
public final class ThreadPool: @unchecked Sendable {
    /// The parts work is cut into: the thread count asked for.
    public let threads: Int
    private var workers: [pthread_t] = []
    private var mutex = pthread_mutex_t()
    private var wake = pthread_cond_t()
    private var finished = pthread_cond_t()
    private var generation = 0
    private var pending = 0
    private var stopping = false
    private var job: ((Int) -> Void)?
    private var jobParts = 0

    /// A worker runs fork-join bodies over sdlstm's kernels and OpenBLAS's single-threaded GEMM,
    /// neither of which needs deep stacks; the 8 MiB default, times many pools, used to exhaust a
    /// host's address space.
    public static let workerStackBytes = 512 << 10

    /// `cores` caps the participants (default: `availableCores()`). `failingWorkers`
    /// is for tests: the creation of those workers (1-based attempt numbers) fails as pthread_create
    /// can when the host is out of threads or memory.
    public init(threads: Int, cores: Int = ThreadPool.availableCores(), failingWorkers: Set<Int> = []) {
        _ = blasSingleThreaded
        self.threads = max(1, threads)
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&wake, nil)
        pthread_cond_init(&finished, nil)
        var attr = pthread_attr_t()
        pthread_attr_init(&attr)
        defer { pthread_attr_destroy(&attr) }
        // Below PTHREAD_STACK_MIN the call fails and the default stays: still a working pool.
        _ = pthread_attr_setstacksize(&attr, ThreadPool.workerStackBytes)
        for attempt in 1..<min(self.threads, max(1, cores)) {
            // Indices stay contiguous whatever fails: participant i takes parts i, i + width, ...
            let context = Unmanaged.passRetained(WorkerContext(pool: self, index: workers.count + 1)).toOpaque()
            var thread = pthread_t()
            let created = !failingWorkers.contains(attempt) && pthread_create(&thread, &attr, { raw in
                let ctx = Unmanaged<WorkerContext>.fromOpaque(raw!).takeRetainedValue()
                ctx.pool.workerLoop(ctx.index)
                return nil
            }, context) == 0
            if created { workers.append(thread) } else { Unmanaged<WorkerContext>.fromOpaque(context).release() }
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

    /// Participants actually running: the caller and the workers that were created.
    public var width: Int { workers.count + 1 }

    /// The CPUs the calling thread may run on: the kernel's affinity mask (what sched_getaffinity
    /// reads, which Swift's Glibc does not import), from /proc/thread-self/status; the online CPUs
    /// where that cannot be read.
    public static func availableCores() -> Int {
        guard let list = procValue("Cpus_allowed_list", file: "/proc/thread-self/status"),
              let count = cpuListCount(list) else { return max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))) }
        return count
    }

    /// The CPUs of a kernel CPU list ("0-3,8,10-11": 7); nil if it is not one.
    public static func cpuListCount(_ list: String) -> Int? {
        var count = 0
        for item in list.split(separator: ",") {
            let ends = item.split(separator: "-", omittingEmptySubsequences: false).map { Int($0) }
            guard let lo = ends.first ?? nil, let hi = ends.last ?? nil, ends.count <= 2, lo <= hi else { return nil }
            count += hi - lo + 1
        }
        return count > 0 ? count : nil
    }

    /// Calls body(p) once for each p in 0..<parts, spread over the participants.
    public func run(_ parts: Int, _ body: (Int) -> Void) {
        if parts <= 1 || workers.isEmpty {
            for p in 0..<max(parts, 0) { body(p) }
            return
        }
        withoutActuallyEscaping(body) { escaping in
            pthread_mutex_lock(&mutex)
            job = escaping
            jobParts = parts
            pending = workers.count
            generation &+= 1
            pthread_cond_broadcast(&wake)
            pthread_mutex_unlock(&mutex)
            for p in stride(from: 0, to: parts, by: width) { escaping(p) }
            pthread_mutex_lock(&mutex)
            while pending > 0 { pthread_cond_wait(&finished, &mutex) }
            job = nil
            pthread_mutex_unlock(&mutex)
        }
    }

    /// Splits 0..<count into min(threads, units) contiguous chunks of whole granules and runs them
    /// in parallel.
    public func forChunks(_ count: Int, granule: Int = 1, _ body: (Range<Int>) -> Void) {
        let units = (count + granule - 1) / granule
        let parts = min(threads, units)
        if parts <= 1 { body(0..<count); return }
        run(parts) { i in
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
            let body = job!, parts = jobParts, step = width
            pthread_mutex_unlock(&mutex)
            for p in stride(from: index, to: parts, by: step) { body(p) }
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
    /// The most threads a model may ask for; its workers are fewer on a machine with fewer CPUs.
    public static let maxThreads = 256

    /// Replaceable so that a test can install a pool whose workers failed to start.
    public var pool: ThreadPool

    public init(threads: Int = defaultThreads()) { pool = ThreadPool(threads: threads) }

    public var threads: Int { pool.threads }

    public func setThreads(_ n: Int) { if n != pool.threads { pool = ThreadPool(threads: n) } }
}
