//! CPU time of this process, for the benchmark tools (`churn`, `udpgen`).

/// User plus system CPU seconds of this process and of its reaped children. The kernel
/// reports them from each thread's exact run time (`sum_exec_runtime`), not from tick
/// samples, so they hold over short runs where `/proc/stat`'s tick-sampled counters do not.
pub fn cpu_secs() -> f64 {
    let get = |who| {
        // SAFETY: rusage is plain data; all-zero is a valid value.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: getrusage writes a rusage into the pointer it is given.
        unsafe { libc::getrusage(who, &mut ru) };
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
        tv(ru.ru_utime) + tv(ru.ru_stime)
    };
    get(libc::RUSAGE_SELF) + get(libc::RUSAGE_CHILDREN)
}
