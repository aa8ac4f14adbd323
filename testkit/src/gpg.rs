//! A throwaway gpg home for the OpenPGP tests: key generation, export, gpg encrypt/decrypt.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A temporary GNUPGHOME; its gpg-agent is stopped on drop.
pub struct Gpg {
    home: tempfile::TempDir,
}

/// Whether `gpg` runs here; prints a loud notice when it does not (panics instead when
/// `BYOB_REQUIRE_GPG` is set, for CI).
pub fn available(test: &str) -> bool {
    let ok = Command::new("gpg")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok && std::env::var_os("BYOB_REQUIRE_GPG").is_some() {
        panic!("{test}: `gpg` is not installed and BYOB_REQUIRE_GPG is set");
    }
    if !ok {
        // Straight to the process's stderr: the test harness captures eprintln! of passing tests.
        let bar = "!".repeat(78);
        let _ = writeln!(
            std::io::stderr(),
            "\n{bar}\n!!! SKIPPED {test}: `gpg` is not installed (apt-get install gnupg).\n\
             !!! The OpenPGP interop tests did NOT run.\n{bar}"
        );
    }
    ok
}

impl Default for Gpg {
    fn default() -> Self {
        Gpg::new()
    }
}

impl Gpg {
    pub fn new() -> Gpg {
        let home = tempfile::Builder::new().prefix("gpg-test-").tempdir().expect("temp GNUPGHOME");
        std::fs::set_permissions(home.path(), std::os::unix::fs::PermissionsExt::from_mode(0o700)).expect("chmod");
        Gpg { home }
    }

    pub fn dir(&self) -> &Path {
        self.home.path()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.home.path().join(name)
    }

    fn command(&self) -> Command {
        let mut c = Command::new("gpg");
        c.env("GNUPGHOME", self.home.path()).args([
            "--batch",
            "--yes",
            "--no-tty",
            "--quiet",
            "--pinentry-mode",
            "loopback",
        ]);
        c
    }

    /// Runs gpg with `args`; panics with its stderr on failure.
    pub fn run(&self, args: &[&str]) -> Output {
        let out = self.try_run(args);
        assert!(out.status.success(), "gpg {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        out
    }

    pub fn try_run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("running gpg")
    }

    /// `--quick-gen-key` with an empty passphrase (or `passphrase`); returns the new key's fingerprint.
    pub fn gen_key(
        &self,
        uid: &str,
        algo: &str,
        usage: &str,
        expire: &str,
        extra: &[&str],
        passphrase: &str,
    ) -> String {
        let mut args = vec!["--passphrase", passphrase];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--quick-gen-key", uid, algo, usage, expire]);
        self.run(&args);
        self.fingerprint(uid)
    }

    /// Primary fingerprint of the key holding `uid`, from `--with-colons`.
    pub fn fingerprint(&self, uid: &str) -> String {
        let out = self.run(&["--with-colons", "--list-keys", uid]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let line = text.lines().find(|l| l.starts_with("fpr:")).expect("fpr line");
        line.split(':').nth(9).expect("fingerprint field").to_owned()
    }

    pub fn export_public(&self, fpr: &str) -> Vec<u8> {
        self.run(&["--armor", "--export", fpr]).stdout
    }

    pub fn export_secret(&self, fpr: &str, passphrase: &str) -> Vec<u8> {
        self.run(&["--passphrase", passphrase, "--armor", "--export-secret-keys", fpr]).stdout
    }

    /// `gpg --decrypt input` into `output`; returns gpg's output (status and stderr).
    pub fn decrypt(&self, input: &Path, output: &Path) -> Output {
        self.try_run(&["--passphrase", "", "--output", path_str(output), "--decrypt", path_str(input)])
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", self.home.path())
            .args(["--kill", "all"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Deterministic test bytes (xorshift), not compressible.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}
