//! Peak memory of encrypting and decrypting a 200 MB stream (a binary of its own: it reads its own
//! process's peak RSS). Prints the growth; asserts only a generous bound.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::time::{Instant, SystemTime};

use byob::format::pgp::{PgpEncryptor, RecipientKey, decrypt_file};
use byob_testkit::gpg::{Gpg, bytes, path_str};

const TOTAL: usize = 200 << 20;
const PIECE: usize = 8 << 20;
/// Anything near the stream's size would mean the file is held in memory.
const LIMIT: u64 = 64 << 20;

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Resets the peak RSS to the current RSS (Linux `clear_refs` 5); false where not allowed.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The i-th 8 MiB piece of the stream: one random buffer, its first bytes stamped with i.
fn piece(base: &[u8], i: usize, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(base);
    out[..8].copy_from_slice(&(i as u64).to_le_bytes());
}

#[test]
fn encrypt_and_decrypt_200_mb_in_bounded_memory() {
    if !byob_testkit::gpg::available("encrypt_and_decrypt_200_mb_in_bounded_memory") {
        return;
    }
    let gpg = Gpg::new();
    let fpr = gpg.gen_key("Mem <mem@example.com>", "future-default", "default", "never", &[], "");
    let key = RecipientKey::parse(&gpg.export_public(&fpr)).unwrap();
    let secret = gpg.export_secret(&fpr, "");
    let encrypted = gpg.path("big.gpg");
    let base = bytes(PIECE, 7);
    let mut buf = Vec::with_capacity(PIECE);

    // Encrypt: 25 pushes of 8 MiB, each output written out (as the uploader would send a part).
    let reset = reset_peak();
    let before = status_kib("VmRSS:");
    let started = Instant::now();
    let mut file = std::io::BufWriter::new(std::fs::File::create(&encrypted).unwrap());
    let mut enc = PgpEncryptor::new(&key, SystemTime::now()).unwrap();
    for i in 0..TOTAL / PIECE {
        piece(&base, i, &mut buf);
        file.write_all(&enc.push(&buf).unwrap()).unwrap();
    }
    file.write_all(&enc.finish().unwrap()).unwrap();
    file.flush().unwrap();
    drop(file);
    let growth = status_kib("VmHWM:").saturating_sub(before) << 10;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "encrypt {} MiB in {} MiB pieces: peak RSS growth {:.1} MiB (peak reset: {reset}), {:.0} MiB/s (debug build)",
        TOTAL >> 20,
        PIECE >> 20,
        growth as f64 / 1048576.0,
        (TOTAL >> 20) as f64 / secs
    );
    assert!(growth < LIMIT, "encryption grew RSS by {growth} bytes");

    // Decrypt with decrypt_file.
    let out = gpg.path("big.out");
    let reset = reset_peak();
    let before = status_kib("VmRSS:");
    let started = Instant::now();
    decrypt_file(&encrypted, &out, &secret, None).unwrap();
    let growth = status_kib("VmHWM:").saturating_sub(before) << 10;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "decrypt_file {} MiB: peak RSS growth {:.1} MiB (peak reset: {reset}), {:.0} MiB/s (debug build)",
        TOTAL >> 20,
        growth as f64 / 1048576.0,
        (TOTAL >> 20) as f64 / secs
    );
    assert!(growth < LIMIT, "decryption grew RSS by {growth} bytes");
    assert_same_stream(&out, &base, &mut buf);
    std::fs::remove_file(&out).unwrap();

    // gpg opens the 200 MB file too.
    let started = Instant::now();
    let by_gpg = gpg.path("big.gpg-out");
    let result = gpg.decrypt(&encrypted, &by_gpg);
    assert!(result.status.success(), "{}", String::from_utf8_lossy(&result.stderr));
    println!("gpg --decrypt {} MiB: {:.1} s", TOTAL >> 20, started.elapsed().as_secs_f64());
    assert_same_stream(&by_gpg, &base, &mut buf);
    let _ = path_str(&by_gpg);
}

fn assert_same_stream(path: &std::path::Path, base: &[u8], buf: &mut Vec<u8>) {
    let mut file = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    let mut got = vec![0u8; PIECE];
    for i in 0..TOTAL / PIECE {
        piece(base, i, buf);
        file.read_exact(&mut got).unwrap();
        assert!(got == *buf, "piece {i} differs");
    }
    assert_eq!(file.read(&mut got).unwrap(), 0, "trailing bytes");
}
