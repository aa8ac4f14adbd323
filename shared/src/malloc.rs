//! glibc malloc settings for a process that streams gigabytes through short-lived buffers.
//!
//! An export allocates every Arrow batch on the reader's thread and frees it on an encoder
//! thread, and its larger buffers (row groups, upload parts, decompressed pages) come and go
//! by the hundred. With glibc's defaults each thread gets an arena of its own and the
//! threshold above which a block is mapped on its own rises with every large free, so freed
//! buffers stay inside fragmented arenas: a 5 M-row Parquet export whose live heap peaks at
//! ~155 MiB (heaptrack) showed ~295 MiB of RSS. Two arenas and a fixed 4 MiB mapping
//! threshold (big buffers go back to the OS when freed) bring it to ~220 MiB at the same
//! speed; allocators that purge eagerly (mimalloc with a short purge delay) reached the same
//! RSS only by spending twice the system time.
//!
//! A fixed mapping threshold also fixes the trim threshold at glibc's 128 KiB: every free that
//! left more than that at the top of an arena handed the memory back, and the next batch
//! faulted it in again, zeroed, page by page (on a string-heavy Parquet export, a third of the
//! process's CPU time was in the kernel). Keeping up to [`TRIM_THRESHOLD`] at the top of each
//! arena: Parquet snappy 6.6 -> 5.7 s, zstd 8.5 -> 8.0 s, system time 3.2 -> 2.1 s, peak RSS
//! +20 MiB (web shape, 5 M rows).
//!
//! Call [`tune`] first thing in `main`, before any other thread starts. `MALLOC_ARENA_MAX`,
//! `MALLOC_MMAP_THRESHOLD_` or `MALLOC_TRIM_THRESHOLD_` set in the environment win over these
//! values.

/// At most this many malloc arenas (threads share them).
pub const ARENA_MAX: i32 = 2;
/// Blocks of at least this many bytes are mapped on their own and unmapped when freed.
pub const MMAP_THRESHOLD: i32 = 4 << 20;
/// Free memory at the top of an arena is handed back to the OS only beyond this many bytes.
pub const TRIM_THRESHOLD: i32 = 32 << 20;

/// Applies [`ARENA_MAX`], [`MMAP_THRESHOLD`] and [`TRIM_THRESHOLD`] (glibc on Linux; elsewhere
/// it does nothing), each unless the environment sets it.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
            mallopt(libc::M_ARENA_MAX, ARENA_MAX);
        }
        if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
            mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        }
        if std::env::var_os("MALLOC_TRIM_THRESHOLD_").is_none() {
            mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn mallopt(param: i32, value: i32) {
    // SAFETY: mallopt takes two integers and only changes malloc's tuning parameters; an
    // unknown parameter or value is refused with a return of 0, which needs no handling
    // (malloc keeps its defaults). No memory is passed or returned.
    let applied = unsafe { libc::mallopt(param, value) };
    if applied == 0 {
        tracing::debug!(param, value, "mallopt refused a setting; glibc's default stays");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tuning_twice_is_harmless_and_malloc_still_works() {
        super::tune();
        super::tune();
        let buffers: Vec<Vec<u8>> = (0..8).map(|i| vec![i as u8; super::MMAP_THRESHOLD as usize + i]).collect();
        assert!(
            buffers.iter().enumerate().all(|(i, b)| b.len() == super::MMAP_THRESHOLD as usize + i && b[i] == i as u8)
        );
    }
}
