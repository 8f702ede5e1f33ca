//! Pinning a thread to one CPU (DPDK workers, the DPDK benchmark).
#![allow(unsafe_code)]

/// CPUs online (at least 1): the CPUs a worker may be pinned to, whatever
/// the calling thread's own affinity (EAL pins the thread that starts it).
pub fn online_cpus() -> usize {
    // SAFETY: sysconf only reads a system setting.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(n).map_or(1, |n| n.max(1))
}

/// Pins the calling thread to `cpu`.
///
/// # Errors
/// The kernel refused (`cpu` is not online or not allowed to this process).
pub fn pin_current_thread(cpu: usize) -> std::io::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: cpu_set_t is plain data (all zeroes is the empty set), `cpu`
    // is within CPU_SETSIZE, and sched_setaffinity(0, ..) only reads the
    // set and affects the calling thread.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The CPUs the calling thread may run on.
#[cfg(test)]
pub fn current_affinity() -> Vec<usize> {
    // SAFETY: as above; sched_getaffinity writes at most size_of(set).
    let (rc, set) = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        let rc = libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set);
        (rc, set)
    };
    assert_eq!(rc, 0, "sched_getaffinity");
    // SAFETY: CPU_ISSET reads the set; the index is below CPU_SETSIZE.
    (0..libc::CPU_SETSIZE as usize)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_is_pinned_to_the_cpu_asked_and_bad_cpus_are_refused() {
        let last = online_cpus() - 1;
        let got = std::thread::spawn(move || pin_current_thread(last).map(|()| current_affinity()))
            .join()
            .expect("thread");
        assert_eq!(got.expect("pin"), vec![last]);
        assert!(pin_current_thread(libc::CPU_SETSIZE as usize).is_err());
        // Within the set's size but not online: the kernel refuses.
        let offline = libc::CPU_SETSIZE as usize - 1;
        if offline >= online_cpus() {
            let r = std::thread::spawn(move || pin_current_thread(offline))
                .join()
                .expect("thread");
            assert!(r.is_err(), "CPU {offline} is not online");
        }
    }
}
