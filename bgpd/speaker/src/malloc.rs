//! The allocator setting for a process that holds a large table. glibc raises its mmap
//! threshold each time a large block is freed (up to 32 MiB), after which large buffers
//! (decoded UPDATEs, drain snapshots, the old array of a growing hash table) come from the heap
//! and stay resident after they are freed. A fixed threshold returns them to the kernel: at a
//! million routes the reflector's peak RSS falls by about a fifth (see BENCHMARKS.md).

/// Blocks of at least this many octets are mapped on their own and unmapped when freed.
pub const MMAP_THRESHOLD: usize = 128 * 1024;

/// Fixes glibc's mmap threshold at [`MMAP_THRESHOLD`] (which also stops its dynamic
/// adjustment). Call once at the start of a binary; other C libraries ignore it. Returns whether
/// the setting was taken.
pub fn return_large_frees() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only reads its two integer arguments.
        unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn glibc_takes_the_threshold() {
        assert_eq!(
            super::return_large_frees(),
            cfg!(all(target_os = "linux", target_env = "gnu"))
        );
    }
}
