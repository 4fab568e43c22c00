//! The benches' pinning does what their output says: a thread (or process) started by a
//! pinned one and pinned elsewhere runs elsewhere. (It once counted the CPUs in its inherited
//! one-CPU mask, and every "CPU 1" of the benches ran on CPU 0.)

use sapi_benches::sys;

#[test]
fn a_thread_started_by_a_pinned_thread_pins_itself_to_another_cpu() {
    if sys::cpus_online() < 2 {
        eprintln!("one CPU online: nothing to show");
        return;
    }
    std::thread::spawn(|| {
        sys::pin_to(0);
        assert_eq!(sys::current_cpu(), 0);
        let other = std::thread::spawn(|| {
            sys::pin_to(1);
            sys::current_cpu()
        });
        assert_eq!(other.join().expect("pinned thread"), 1);
        sys::unpin();
        // SAFETY: a zeroed cpu_set_t is a valid empty set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: valid set buffer of the size passed.
        let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
        assert_eq!(rc, 0);
        // SAFETY: reads the set just filled.
        let count = unsafe { libc::CPU_COUNT(&set) } as usize;
        assert_eq!(count, sys::cpus_online(), "unpin restores every CPU online");
    })
    .join()
    .expect("test thread");
}
