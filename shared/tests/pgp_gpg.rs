//! OpenPGP interop with gpg: our files open with `gpg --decrypt`, gpg's files open with
//! `decrypt_file`, unusable keys are refused, and tampered files never decrypt.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, SystemTime};

use byob::format::pgp::{PgpEncryptor, PgpError, RecipientKey, decrypt_file};
use byob_testkit::gpg::{Gpg, bytes, path_str};

const DAY: Duration = Duration::from_secs(86_400);

/// Encrypts `data` pushed in `piece`-byte pieces; returns the whole object.
fn encrypt(key: &RecipientKey, data: &[u8], piece: usize) -> Vec<u8> {
    let mut enc = PgpEncryptor::new(key, SystemTime::now()).unwrap();
    let mut out = enc.push(&[]).unwrap();
    for p in data.chunks(piece) {
        out.extend(enc.push(p).unwrap());
        assert!(enc.buffered() <= 2 * 65536 + 2048, "buffered {}", enc.buffered());
    }
    out.extend(enc.finish().unwrap());
    out
}

fn gen_rsa_and_cv25519(gpg: &Gpg) -> [String; 2] {
    [
        gpg.gen_key("RSA Test <rsa@example.com>", "rsa3072", "encr", "never", &[], ""),
        gpg.gen_key("Modern Test <ecc@example.com>", "future-default", "default", "never", &[], ""),
    ]
}

fn assert_no_output(path: &Path, what: &str) {
    assert!(!path.exists(), "{what}: {} exists after a failed decryption", path.display());
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".decrypting-"))
        .collect();
    assert!(leftovers.is_empty(), "{what}: temporary files left: {leftovers:?}");
}

#[test]
fn gpg_decrypts_our_files_and_we_decrypt_them_too() {
    if !byob_testkit::gpg::available("gpg_decrypts_our_files_and_we_decrypt_them_too") {
        return;
    }
    let gpg = Gpg::new();
    let chunk = 65536usize;
    // Around the literal packet's first chunk (6 header octets), later chunks, push pieces (1 MiB).
    let mut sizes = vec![0, 1, 2, 5_000_000, 3 * chunk + 100, (1 << 20) - 1, 1 << 20, (1 << 20) + 1];
    sizes.extend((chunk - 8)..=(chunk + 2));
    sizes.extend((2 * chunk - 8)..=(2 * chunk + 2));
    for fpr in gen_rsa_and_cv25519(&gpg) {
        let key = RecipientKey::parse(&gpg.export_public(&fpr)).unwrap();
        assert_eq!(key.fingerprint(), fpr);
        let info = key.check(SystemTime::now()).unwrap();
        println!("{info:?}");
        let secret = gpg.export_secret(&fpr, "");
        for (i, &size) in sizes.iter().enumerate() {
            let data = bytes(size, i as u64);
            let piece = [size.max(1), 1000, chunk, 8 << 20, 7][i % 5];
            let piece = if piece == 7 && size > 200_000 { 4096 } else { piece };
            let encrypted = gpg.path(&format!("{fpr}-{size}.gpg"));
            std::fs::write(&encrypted, encrypt(&key, &data, piece)).unwrap();

            let by_gpg = gpg.path(&format!("{fpr}-{size}.gpg-out"));
            let out = gpg.try_run(&[
                "--status-fd",
                "1",
                "--passphrase",
                "",
                "--output",
                path_str(&by_gpg),
                "--decrypt",
                path_str(&encrypted),
            ]);
            let status = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "gpg failed on {size} bytes: {stderr}");
            assert!(status.contains("DECRYPTION_OKAY"), "{status}");
            assert!(!status.contains("DECRYPTION_FAILED") && !stderr.contains("WARNING"), "{status}\n{stderr}");
            assert!(std::fs::read(&by_gpg).unwrap() == data, "gpg plaintext differs ({size} bytes)");
            if size == 5_000_000 || size == 0 {
                println!("gpg on {size} bytes ({}): {}", info.algorithm, status.replace('\n', " | "));
            }

            let by_us = gpg.path(&format!("{fpr}-{size}.ours-out"));
            decrypt_file(&encrypted, &by_us, &secret, None).unwrap();
            assert!(std::fs::read(&by_us).unwrap() == data, "our plaintext differs ({size} bytes)");
            std::fs::remove_file(&encrypted).unwrap();
            std::fs::remove_file(&by_gpg).unwrap();
            std::fs::remove_file(&by_us).unwrap();
        }
    }
}

#[test]
fn we_decrypt_files_gpg_made() {
    if !byob_testkit::gpg::available("we_decrypt_files_gpg_made") {
        return;
    }
    let gpg = Gpg::new();
    let data = bytes(3_000_123, 42);
    // Compressible too, so that gpg's compression actually does something.
    let mut text = Vec::new();
    while text.len() < 2_000_000 {
        text.extend_from_slice(format!("{} some,csv,line,{}\n", text.len(), text.len() % 97).as_bytes());
    }
    let plain = gpg.path("plain.bin");
    let plain_text = gpg.path("plain.txt");
    std::fs::write(&plain, &data).unwrap();
    std::fs::write(&plain_text, &text).unwrap();
    let variants: [&[&str]; 5] =
        [&[], &["--compress-algo", "none"], &["--armor"], &["--compress-algo", "bzip2"], &["--compress-algo", "zip"]];
    for fpr in gen_rsa_and_cv25519(&gpg) {
        let secret = gpg.export_secret(&fpr, "");
        for (i, extra) in variants.iter().enumerate() {
            for (input, expected) in [(&plain, &data), (&plain_text, &text)] {
                let encrypted = gpg.path(&format!("gpg-{i}.gpg"));
                let mut args = vec!["--trust-model", "always", "--recipient", &fpr, "--output", path_str(&encrypted)];
                args.extend_from_slice(extra);
                args.extend_from_slice(&["--encrypt", path_str(input)]);
                gpg.run(&args);
                let out = gpg.path(&format!("gpg-{i}.out"));
                decrypt_file(&encrypted, &out, &secret, None)
                    .unwrap_or_else(|e| panic!("gpg file with {extra:?}: {e}"));
                assert!(std::fs::read(&out).unwrap() == *expected, "plaintext differs with {extra:?}");
                std::fs::remove_file(&out).unwrap();
            }
        }
    }

    // A passphrase-protected secret key.
    let fpr = gpg.gen_key("Locked <locked@example.com>", "future-default", "default", "never", &[], "correct horse");
    let secret = gpg.export_secret(&fpr, "correct horse");
    let encrypted = gpg.path("locked.gpg");
    gpg.run(&["--trust-model", "always", "-r", &fpr, "-o", path_str(&encrypted), "--encrypt", path_str(&plain)]);
    let out = gpg.path("locked.out");
    decrypt_file(&encrypted, &out, &secret, Some("correct horse")).unwrap();
    assert!(std::fs::read(&out).unwrap() == data);
    std::fs::remove_file(&out).unwrap();
    let secret_text = String::from_utf8_lossy(&secret).into_owned();
    let body: Vec<&str> = secret_text.lines().filter(|l| l.len() > 40).collect();
    for (pass, expect) in [(None, "passphrase"), (Some("wrong"), "is wrong")] {
        let err = decrypt_file(&encrypted, &out, &secret, pass).unwrap_err();
        println!("{pass:?}: {err}");
        assert!(matches!(err, PgpError::SecretKey(_)) && err.to_string().contains(expect), "{err}");
        let msg = err.to_string();
        assert!(!msg.contains("correct horse") && body.iter().all(|l| !msg.contains(&l[..40])), "{msg}");
        assert_no_output(&out, "locked key");
    }
    // Another key's secret.
    let other = gpg.gen_key("Other <other@example.com>", "future-default", "default", "never", &[], "");
    let err = decrypt_file(&encrypted, &out, &gpg.export_secret(&other, ""), None).unwrap_err();
    println!("{err}");
    assert!(err.to_string().contains("is encrypted to"), "{err}");
    assert_no_output(&out, "other key");
    // A public key given as the secret key.
    let err = decrypt_file(&encrypted, &out, &gpg.export_public(&fpr), None).unwrap_err();
    println!("{err}");
    assert!(matches!(err, PgpError::SecretKey(_)), "{err}");
}

#[test]
fn check_refuses_unusable_keys() {
    if !byob_testkit::gpg::available("check_refuses_unusable_keys") {
        return;
    }
    let gpg = Gpg::new();
    let now = SystemTime::now();
    let refused = |fpr: &str, at: SystemTime| -> String {
        let key = RecipientKey::parse(&gpg.export_public(fpr)).unwrap();
        let err = key.check(at).unwrap_err();
        assert!(matches!(err, PgpError::Unusable(_)), "{err:?}");
        let again = PgpEncryptor::new(&key, at).unwrap_err();
        assert_eq!(again.to_string(), err.to_string());
        println!("{err}");
        err.to_string()
    };

    // Good keys, and what check() reports of them.
    let [rsa, ecc] = gen_rsa_and_cv25519(&gpg);
    let info = RecipientKey::parse(&gpg.export_public(&rsa)).unwrap().check(now).unwrap();
    assert_eq!((info.fingerprint.as_str(), info.algorithm.as_str(), info.bits), (rsa.as_str(), "RSA", Some(3072)));
    assert_eq!(info.encryption_fingerprint, rsa);
    assert_eq!(info.user_ids, ["RSA Test <rsa@example.com>"]);
    assert_eq!(info.expires, None);
    let info = RecipientKey::parse(&gpg.export_public(&ecc)).unwrap().check(now).unwrap();
    assert_eq!((info.algorithm.as_str(), info.bits), ("ECDH cv25519", Some(255)));
    let colons =
        String::from_utf8(gpg.run(&["--with-colons", "--with-subkey-fingerprints", "--list-keys", &ecc]).stdout)
            .unwrap();
    let sub_fpr = colons.lines().skip_while(|l| !l.starts_with("sub:")).find(|l| l.starts_with("fpr:")).unwrap();
    assert_eq!(sub_fpr.split(':').nth(9).unwrap(), info.encryption_fingerprint);

    // Expired: made in 2020 with a one day expiry.
    let old =
        gpg.gen_key("Old <old@example.com>", "rsa2048", "encr", "1d", &["--faked-system-time", "20200101T000000!"], "");
    let msg = refused(&old, now);
    assert!(msg.contains("expired on 2020-01-02") && msg.contains("renewed key"), "{msg}");

    // Expiring in a year: fine now, refused in 400 days.
    let soon = gpg.gen_key("Soon <soon@example.com>", "future-default", "default", "1y", &[], "");
    let info = RecipientKey::parse(&gpg.export_public(&soon)).unwrap().check(now).unwrap();
    let left = info.expires.unwrap().duration_since(now).unwrap();
    assert!(left > 360 * DAY && left < 370 * DAY, "{left:?}");
    assert!(refused(&soon, now + 400 * DAY).contains("expired on"));

    // Only the encryption subkey expires.
    let sub = gpg.gen_key("Sub <sub@example.com>", "ed25519", "cert", "never", &[], "");
    gpg.run(&["--passphrase", "", "--quick-add-key", &sub, "cv25519", "encr", "2d"]);
    RecipientKey::parse(&gpg.export_public(&sub)).unwrap().check(now).unwrap();
    let msg = refused(&sub, now + 3 * DAY);
    assert!(msg.contains("encryption subkey") && msg.contains("expired on"), "{msg}");

    // Signing only.
    let sign = gpg.gen_key("Sign <sign@example.com>", "ed25519", "sign", "never", &[], "");
    assert!(refused(&sign, now).contains("no encryption-capable key"));

    // RSA 1024.
    let weak = gpg.gen_key("Weak <weak@example.com>", "rsa1024", "encr", "never", &[], "");
    assert!(refused(&weak, now).contains("RSA of 1024 bits, too weak"));

    // NIST P-256 ECDH.
    let nist = gpg.gen_key("Nist <nist@example.com>", "nistp256", "default", "never", &[], "");
    gpg.run(&["--passphrase", "", "--quick-add-key", &nist, "nistp256", "encr", "never"]);
    assert!(refused(&nist, now).contains("ECDH NIST P-256"));

    // Revoked with gpg's own revocation certificate.
    let revoked = gpg.gen_key("Revoked <revoked@example.com>", "future-default", "default", "never", &[], "");
    let cert = std::fs::read_to_string(gpg.dir().join(format!("openpgp-revocs.d/{revoked}.rev"))).unwrap();
    let cert_path = gpg.path("revoke.asc");
    std::fs::write(&cert_path, cert.replace(":-----BEGIN", "-----BEGIN")).unwrap();
    gpg.run(&["--import", path_str(&cert_path)]);
    assert!(refused(&revoked, now).contains("was revoked"));

    // Not a public key.
    let err = RecipientKey::parse(&gpg.export_secret(&ecc, "")).unwrap_err();
    println!("{err}");
    assert!(err.to_string().contains("secret (private) key"), "{err}");
    let binary_secret = gpg.run(&["--passphrase", "", "--export-secret-keys", &ecc]).stdout;
    assert!(RecipientKey::parse(&binary_secret).unwrap_err().to_string().contains("secret"));
    let both = gpg.run(&["--armor", "--export", &rsa, &ecc]).stdout;
    let err = RecipientKey::parse(&both).unwrap_err();
    println!("{err}");
    assert!(err.to_string().contains("2 public keys"), "{err}");
    // Binary export and CRLF armor parse too.
    let binary = gpg.run(&["--export", &rsa]).stdout;
    assert_eq!(RecipientKey::parse(&binary).unwrap().fingerprint(), rsa);
    let crlf = String::from_utf8(gpg.export_public(&rsa)).unwrap().replace('\n', "\r\n");
    assert_eq!(RecipientKey::parse(format!("\n  {crlf}").as_bytes()).unwrap().fingerprint(), rsa);
}

#[test]
fn tampered_files_never_decrypt() {
    if !byob_testkit::gpg::available("tampered_files_never_decrypt") {
        return;
    }
    let gpg = Gpg::new();
    let fpr = gpg.gen_key("Tamper <tamper@example.com>", "future-default", "default", "never", &[], "");
    let key = RecipientKey::parse(&gpg.export_public(&fpr)).unwrap();
    let secret = gpg.export_secret(&fpr, "");
    let dir = gpg.path("tamper");
    std::fs::create_dir(&dir).unwrap();
    let (file, out) = (dir.join("f.gpg"), dir.join("f.out"));
    let must_fail = |bad: &[u8], what: &str| {
        std::fs::write(&file, bad).unwrap();
        match decrypt_file(&file, &out, &secret, None) {
            Ok(()) => panic!("{what}: decrypted"),
            Err(e) => assert!(!matches!(e, PgpError::Io { .. }), "{what}: {e}"),
        }
        assert_no_output(&out, what);
    };

    // Every byte of a small file, one at a time. Only a bit of the PKESK's encoding that the parser
    // ignores (an MPI's bit count, the point's prefix octet) may flip and still decrypt, to the same plaintext.
    let data = bytes(3000, 1);
    let small = encrypt(&key, &data, 1000);
    let pkesk_len = 2 + small[1] as usize; // new-format header, one-octet length
    assert!(small[0] == 0xC1 && small[1] < 192);
    let mut harmless = Vec::new();
    for i in 0..small.len() {
        let mut bad = small.clone();
        bad[i] ^= 0x01;
        std::fs::write(&file, &bad).unwrap();
        match decrypt_file(&file, &out, &secret, None) {
            Ok(()) => {
                assert!(std::fs::read(&out).unwrap() == data, "byte {i} flipped: decrypted to other plaintext");
                assert!(i < pkesk_len, "byte {i} (past the PKESK, {pkesk_len} bytes) flipped: decrypted");
                std::fs::remove_file(&out).unwrap();
                harmless.push(i);
            }
            Err(e) => {
                assert!(!matches!(e, PgpError::Io { .. }), "byte {i}: {e}");
                assert_no_output(&out, &format!("small file, bit 0 of byte {i}/{}", small.len()));
            }
        }
    }
    println!(
        "flipped each of {} bytes: all failed but {harmless:?} (PKESK encoding bits the parser ignores; same plaintext)",
        small.len()
    );
    // A file of several partial chunks: sampled flips, the MDC, truncation, trailing garbage.
    let data = bytes(300_000, 2);
    let big = encrypt(&key, &data, 65536);
    let mut positions: Vec<usize> = (0..big.len()).step_by(4999).collect();
    positions.extend((big.len() - 30)..big.len());
    for i in positions {
        let mut bad = big.clone();
        bad[i] ^= 0x80;
        must_fail(&bad, &format!("big file, byte {i}/{}", big.len()));
    }
    for cut in [1, 2, 21, 22, 23, 1000, big.len() / 2, big.len() - 200] {
        must_fail(&big[..big.len() - cut], &format!("truncated by {cut}"));
    }
    let mut longer = big.clone();
    longer.extend_from_slice(b"garbage");
    must_fail(&longer, "trailing garbage");
    let err = {
        let mut bad = big.clone();
        let n = bad.len();
        bad[n - 5] ^= 0x01;
        std::fs::write(&file, &bad).unwrap();
        decrypt_file(&file, &out, &secret, None).unwrap_err()
    };
    println!("MDC byte flipped: {err}");
    assert!(err.to_string().contains("integrity check failed"), "{err}");
    // The untouched file still decrypts.
    std::fs::write(&file, &big).unwrap();
    decrypt_file(&file, &out, &secret, None).unwrap();
    assert!(std::fs::read(&out).unwrap() == data);
    std::fs::remove_file(&out).unwrap();

    // A gpg-made file, flipped in the middle and at the end.
    let plain = gpg.path("plain");
    std::fs::write(&plain, &data).unwrap();
    let made = gpg.path("made.gpg");
    gpg.run(&[
        "--trust-model",
        "always",
        "-r",
        &fpr,
        "--compress-algo",
        "none",
        "-o",
        path_str(&made),
        "--encrypt",
        path_str(&plain),
    ]);
    let made = std::fs::read(&made).unwrap();
    for i in [made.len() / 2, made.len() - 3] {
        let mut bad = made.clone();
        bad[i] ^= 0x10;
        must_fail(&bad, &format!("gpg file, byte {i}"));
    }
}

/// A destination with `pgp_public_key`: every file is `<name>.gpg`, `gpg --decrypt` turns each
/// into exactly the file the same dump writes unencrypted, the receipt names the key and lists
/// the encrypted objects' sizes and sha256, and the loader (with the secret key) loads the
/// same rows as from the plain dump; without the key it refuses, naming the fingerprint.
#[cfg(feature = "duckdb")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_dump_decrypts_to_the_plain_dump_and_loads_the_same_rows() {
    use byob::load::{DuckDbTarget, LoadOutcome, Loader, PgpSecretKey, ReceiptLocation};
    use byob::run::{self, RunOptions, Silent};
    use byob_testkit::generate::{self, GenerateOptions};
    use sha2::{Digest, Sha256};

    if !byob_testkit::gpg::available("an_encrypted_dump_decrypts_to_the_plain_dump_and_loads_the_same_rows") {
        return;
    }
    let gpg = Gpg::new();
    let fpr = gpg.gen_key("Acme Data <data@acme.example>", "rsa3072", "encr", "never", &[], "");
    let public = String::from_utf8(gpg.export_public(&fpr)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let options =
        GenerateOptions { out: dir.path().join("lake"), scale: 0.002, seed: 11, ..GenerateOptions::default() };
    generate::generate(&options, &|_, _| {}).unwrap();
    let tables: String = generate::TABLES.iter().map(|t| format!("[[tables]]\nname = \"{t}\"\n")).collect();
    let text = format!(
        "[source]\ntype = \"parquet\"\npath = \"lake\"\n\n{tables}\n\
         [[destinations]]\nid = \"plain\"\ntenant = \"acme\"\nfolder = \"buckets/plain\"\nformat = {{ type = \"parquet\", codec = \"zstd\" }}\n\n\
         [[destinations]]\nid = \"sealed\"\ntenant = \"acme\"\nfolder = \"buckets/sealed\"\nformat = {{ type = \"parquet\", codec = \"zstd\" }}\n\
         pgp_public_key = \"\"\"\n{public}\"\"\"\n\n[state]\npath = \"state\"\n"
    );
    std::fs::write(dir.path().join("byob.toml"), text).unwrap();
    let config = byob::config::Config::load(&dir.path().join("byob.toml")).unwrap_or_else(|e| panic!("{e}"));
    let run_id = "2024-05-06T04:00".parse().unwrap();
    let options = RunOptions { run: run_id, filter: byob::plan::PlanFilter::default() };
    let report = run::run(&config, &options, std::sync::Arc::new(Silent)).await.unwrap();
    assert_eq!(report.failed().count(), 0);

    let read = |d: &str| {
        byob::receipt::Receipt::from_json(&std::fs::read(dir.path().join(format!("buckets/{d}/receipt.json"))).unwrap())
            .unwrap()
    };
    let (plain, sealed) = (read("plain"), read("sealed"));
    let encryption = sealed.encryption.as_ref().expect("the receipt says the files are encrypted");
    assert_eq!((encryption.kind.as_str(), encryption.fingerprint.as_str()), ("openpgp", fpr.as_str()));
    assert!(plain.encryption.is_none());
    let mut files = 0;
    for (name, table) in &sealed.tables {
        for (file, plain_file) in table.files.iter().zip(&plain.tables[name].files) {
            assert_eq!(file.key, format!("{}.gpg", plain_file.key));
            let stored = std::fs::read(dir.path().join("buckets/sealed").join(&file.key)).unwrap();
            assert_eq!((stored.len() as u64, hex::encode(Sha256::digest(&stored))), (file.bytes, file.sha256.clone()));
            let opened = dir.path().join(format!("opened-{files}"));
            let out = gpg.decrypt(&dir.path().join("buckets/sealed").join(&file.key), &opened);
            assert!(out.status.success(), "gpg --decrypt {}: {}", file.key, String::from_utf8_lossy(&out.stderr));
            let expected = std::fs::read(dir.path().join("buckets/plain").join(&plain_file.key)).unwrap();
            assert!(std::fs::read(&opened).unwrap() == expected, "{} decrypts to the plain file", file.key);
            files += 1;
        }
    }
    assert!(files >= generate::TABLES.len());

    let location = |d: &str| {
        ReceiptLocation::parse(&dir.path().join(format!("buckets/{d}/receipt.json")).to_string_lossy()).unwrap()
    };
    let refused = Loader::local().load(&location("sealed"), &DuckDbTarget::new(dir.path().join("x.duckdb"))).await;
    let message = refused.expect_err("no key").to_string();
    assert!(message.contains(&fpr) && message.contains("BYOB_LOAD_PGP_KEY_FILE"), "{message}");
    let secret = PgpSecretKey { key: gpg.export_secret(&fpr, ""), passphrase: None };
    let rows = |outcome: LoadOutcome| match outcome {
        LoadOutcome::Loaded(report) => report.tables,
        other => panic!("expected a load, got {other:?}"),
    };
    let sealed_rows = rows(
        Loader::local()
            .with_pgp_key(secret)
            .load(&location("sealed"), &DuckDbTarget::new(dir.path().join("s.duckdb")))
            .await
            .unwrap(),
    );
    let plain_rows =
        rows(Loader::local().load(&location("plain"), &DuckDbTarget::new(dir.path().join("p.duckdb"))).await.unwrap());
    assert_eq!(sealed_rows, plain_rows);
}

/// One customer's key expiring must not stop the others: the config still loads (the key
/// parses), that destination's export fails naming the expiry, and every other destination
/// gets its receipt; garbage in `pgp_public_key` is a config problem.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_key_fails_its_own_destination_and_no_other() {
    use byob::run::{self, RunOptions, Silent};
    use byob_testkit::generate::{self, GenerateOptions};

    if !byob_testkit::gpg::available("an_expired_key_fails_its_own_destination_and_no_other") {
        return;
    }
    let gpg = Gpg::new();
    let fpr =
        gpg.gen_key("Old <old@example.com>", "rsa2048", "encr", "1d", &["--faked-system-time", "20200101T000000!"], "");
    let public = String::from_utf8(gpg.export_public(&fpr)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let options = GenerateOptions { out: dir.path().join("lake"), scale: 0.002, seed: 5, ..GenerateOptions::default() };
    generate::generate(&options, &|_, _| {}).unwrap();
    let tables: String = generate::TABLES.iter().map(|t| format!("[[tables]]\nname = \"{t}\"\n")).collect();
    let config_with = |key: &str| {
        format!(
            "[source]\ntype = \"parquet\"\npath = \"lake\"\n\n{tables}\n\
             [[destinations]]\nid = \"fine\"\ntenant = \"acme\"\nfolder = \"buckets/fine\"\n\n\
             [[destinations]]\nid = \"expired\"\ntenant = \"globex\"\nfolder = \"buckets/expired\"\n\
             pgp_public_key = \"\"\"\n{key}\"\"\"\n\n[state]\npath = \"state\"\n"
        )
    };
    let path = dir.path().join("byob.toml");
    std::fs::write(&path, config_with("not a key")).unwrap();
    let problems = byob::config::Config::load(&path).expect_err("garbage is a config problem").to_string();
    assert!(problems.contains("destinations[1].pgp_public_key"), "{problems}");
    assert!(!problems.contains("not a key"), "the key text is never echoed: {problems}");

    std::fs::write(&path, config_with(&public)).unwrap();
    let config = byob::config::Config::load(&path).unwrap_or_else(|e| panic!("an expired key still parses: {e}"));
    let options = RunOptions { run: "2024-05-06T04:00".parse().unwrap(), filter: byob::plan::PlanFilter::default() };
    let report = run::run(&config, &options, std::sync::Arc::new(Silent)).await.unwrap();
    let failed: Vec<_> = report.failed().map(|d| d.destination.clone()).collect();
    assert_eq!(failed, ["expired"]);
    let error =
        report.failed().next().and_then(|d| d.outcome.as_ref().err()).map(|e| e.to_string()).unwrap_or_default();
    assert!(error.contains("expired"), "{error}");
    assert!(dir.path().join("buckets/fine/receipt.json").exists(), "the other destination got its receipt");
    assert!(!dir.path().join("buckets/expired/receipt.json").exists());
}
