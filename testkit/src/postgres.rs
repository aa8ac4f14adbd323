//! A throwaway PostgreSQL cluster for the integration tests: `initdb` into a temporary
//! folder, `pg_ctl start` on 127.0.0.1 on a free port (its Unix socket inside the same
//! folder), trust authentication for the `postgres` superuser, durability off for speed.
//!
//! - Binaries: `BYOB_PG_BINDIR`, `pg_config --bindir`, `/usr/lib/postgresql/<v>/bin`, PATH;
//!   when none has them, `scripts/setup-postgres` installs the Debian package (unless
//!   `BYOB_PG_NO_INSTALL` is set).
//! - Root: initdb and postgres refuse to run as root, so under uid 0 the cluster is made and
//!   run as the `postgres` user (the Debian package creates it), or `nobody`, via `runuser`.
//! - One cluster per test binary ([`shared`]), each test in a database of its own
//!   ([`PgServer::database`]). A watchdog process stops the cluster and removes its folder
//!   when the test process exits, however it exits; [`PgServer::start`] gives a private
//!   cluster that stops when dropped.
//! - When PostgreSQL cannot be installed or started, [`shared`] prints a loud banner and
//!   returns `None` (the caller skips); with `BYOB_REQUIRE_POSTGRES=1` it panics instead.

pub use crate::files::files_under;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use byob::source::postgres::Connector;

/// A running cluster.
pub struct PgServer {
    /// The TCP port on 127.0.0.1.
    pub port: u16,
    /// The temporary folder: `data/`, `server.log`, the socket.
    pub dir: PathBuf,
    /// The CA certificate (PEM) that signed the server's certificate, for a TLS cluster.
    pub ca: Option<PathBuf>,
    bindir: PathBuf,
    run_as: Option<String>,
    stop_on_drop: bool,
}

static SHARED: OnceLock<Option<PgServer>> = OnceLock::new();

/// The cluster of this test binary, started on first use; `None` (after a loud message)
/// when PostgreSQL cannot be installed or started.
pub fn shared() -> Option<&'static PgServer> {
    SHARED
        .get_or_init(|| match PgServer::start_inner(false, false) {
            Ok(server) => {
                server.watch_this_process();
                Some(server)
            }
            Err(reason) => {
                skip_banner(&reason);
                None
            }
        })
        .as_ref()
}

pub fn skip_banner(reason: &str) {
    let required = std::env::var("BYOB_REQUIRE_POSTGRES").is_ok_and(|v| !v.is_empty() && v != "0");
    let line = "!".repeat(100);
    let message = format!(
        "\n{line}\n!!! POSTGRESQL TESTS SKIPPED: PostgreSQL could not be installed or started.\n!!! {reason}\n!!! Run scripts/setup-postgres (needs root or sudo) and retry.\n{line}\n"
    );
    if required {
        panic!("{message}BYOB_REQUIRE_POSTGRES is set, so this is a failure");
    }
    eprintln!("{message}");
}

impl PgServer {
    /// A private cluster, stopped and removed when dropped.
    pub fn start() -> Result<PgServer, String> {
        Self::start_inner(true, false)
    }

    /// A private cluster that accepts TCP connections only over TLS (`hostssl` in
    /// pg_hba.conf), with a certificate for 127.0.0.1 signed by a CA of its own ([`PgServer::ca`]);
    /// stopped and removed when dropped.
    pub fn start_tls() -> Result<PgServer, String> {
        Self::start_inner(true, true)
    }

    fn start_inner(stop_on_drop: bool, tls: bool) -> Result<PgServer, String> {
        let bindir = find_bindir().or_else(|| install().and_then(|_| find_bindir())).ok_or_else(|| {
            "no initdb/pg_ctl found (looked at BYOB_PG_BINDIR, pg_config --bindir, /usr/lib/postgresql/*/bin, PATH) and scripts/setup-postgres could not install them".to_owned()
        })?;
        let run_as = if is_root() { Some(unprivileged_user()?) } else { None };
        // The unprivileged user must be able to reach the folder: /tmp, not a private $TMPDIR.
        let parent = if run_as.is_some() { PathBuf::from("/tmp") } else { std::env::temp_dir() };
        let dir = tempfile::Builder::new().prefix("byob-pg-").tempdir_in(parent).map_err(|e| e.to_string())?.keep();
        if let Some(user) = &run_as {
            let (uid, gid) = ids(user)?;
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .map_err(|e| format!("chown {}: {e}", dir.display()))?;
        }
        let mut server = PgServer { port: 0, dir, ca: None, bindir, run_as, stop_on_drop };
        let initdb = server.run(
            "initdb",
            &[
                "-D",
                &server.data().display().to_string(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
        )?;
        if !initdb.status.success() {
            let e = format!("initdb failed: {}", String::from_utf8_lossy(&initdb.stderr));
            server.remove();
            return Err(e);
        }
        let mut ssl = "";
        if tls {
            if let Err(e) = server.make_certificates() {
                server.remove();
                return Err(e);
            }
            ssl = " -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key";
        }
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port()?;
            let options = format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 -c shared_buffers=128MB",
                server.dir.display()
            ) + ssl;
            let log = server.dir.join("server.log").display().to_string();
            let data = server.data().display().to_string();
            let out = server.run("pg_ctl", &["-D", &data, "-l", &log, "-w", "-t", "60", "-o", &options, "start"])?;
            if out.status.success() {
                server.port = port;
                return Ok(server);
            }
            last = format!(
                "pg_ctl start failed: {}{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(server.dir.join("server.log")).unwrap_or_default()
            );
        }
        server.remove();
        Err(last)
    }

    /// A CA, a server certificate for 127.0.0.1 signed by it, and a pg_hba.conf that allows
    /// TCP only over TLS.
    fn make_certificates(&mut self) -> Result<(), String> {
        let openssl = |args: &[&str]| -> Result<(), String> {
            let out = Command::new("openssl").args(args).current_dir(&self.dir).stdin(Stdio::null()).output();
            match out {
                Ok(o) if o.status.success() => Ok(()),
                Ok(o) => Err(format!("openssl {args:?}: {}", String::from_utf8_lossy(&o.stderr))),
                Err(e) => Err(format!("openssl is needed for the TLS test: {e}")),
            }
        };
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        openssl(
            &[
                &["req", "-x509"][..],
                &ec,
                &["-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=byob test CA"],
            ]
            .concat(),
        )?;
        openssl(
            &[&["req"][..], &ec, &["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"]].concat(),
        )?;
        std::fs::write(
            self.dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        )
        .map_err(|e| e.to_string())?;
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ])?;
        let data = self.data();
        let owner = match &self.run_as {
            Some(user) => Some(ids(user)?),
            None => None,
        };
        for (name, contents) in [
            ("server.crt", std::fs::read(self.dir.join("server.crt")).map_err(|e| e.to_string())?),
            ("server.key", std::fs::read(self.dir.join("server.key")).map_err(|e| e.to_string())?),
            ("pg_hba.conf", b"local all all trust\nhostssl all all 127.0.0.1/32 trust\n".to_vec()),
        ] {
            let path = data.join(name);
            std::fs::write(&path, contents).map_err(|e| format!("{}: {e}", path.display()))?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(|e| e.to_string())?;
            if let Some((uid, gid)) = owner {
                std::os::unix::fs::chown(&path, Some(uid), Some(gid)).map_err(|e| e.to_string())?;
            }
        }
        self.ca = Some(self.dir.join("ca.crt"));
        Ok(())
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Runs a PostgreSQL program (as the unprivileged user under root).
    fn run(&self, program: &str, args: &[&str]) -> Result<std::process::Output, String> {
        let path = self.bindir.join(program);
        let mut command = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&path);
                c
            }
            None => Command::new(&path),
        };
        command.args(args).current_dir(&self.dir).stdin(Stdio::null());
        command.output().map_err(|e| format!("running {}: {e}", path.display()))
    }

    /// The URL of database `db` on this cluster (no TLS, trust authentication).
    pub fn url(&self, db: &str) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/{db}?sslmode=disable", self.port)
    }

    /// A connector to database `db`.
    pub fn connector(&self, db: &str) -> Connector {
        Connector::from_url(&self.url(db), None, None).unwrap()
    }

    /// Creates a fresh, empty database named after `prefix` (unique within the process) and
    /// returns its name.
    pub async fn database(&self, prefix: &str) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!("{prefix}_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let admin = client(&self.url("postgres")).await;
        admin.batch_execute(&format!("CREATE DATABASE \"{name}\"")).await.unwrap();
        name
    }

    /// Starts a process that stops the cluster and removes its folder once this process
    /// has exited (statics are never dropped).
    fn watch_this_process(&self) {
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             if [ -f '{data}/postmaster.pid' ]; then kill -QUIT $(head -1 '{data}/postmaster.pid') 2>/dev/null; sleep 2; fi; \
             rm -rf '{dir}'",
            pid = std::process::id(),
            data = self.data().display(),
            dir = self.dir.display(),
        );
        let spawned = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        if let Err(e) = spawned {
            eprintln!("cannot start the PostgreSQL watchdog ({e}); {} may outlive the tests", self.dir.display());
        }
    }

    fn remove(&self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    /// The server log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if self.stop_on_drop {
            let data = self.data().display().to_string();
            let _ = self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
            self.remove();
        }
    }
}

/// A plain client (no TLS) whose connection runs on the current runtime.
pub async fn client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

fn has_server(dir: &Path) -> bool {
    ["initdb", "pg_ctl", "postgres"].iter().all(|p| dir.join(p).is_file())
}

fn find_bindir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("BYOB_PG_BINDIR").map(PathBuf::from)
        && has_server(&dir)
    {
        return Some(dir);
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if has_server(&dir) {
            return Some(dir);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            has_server(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, dir)) = versions.pop() {
        return Some(dir);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find(|dir| has_server(dir))
}

/// Runs `scripts/setup-postgres` once; `Some` when it succeeded.
fn install() -> Option<()> {
    if std::env::var_os("BYOB_PG_NO_INSTALL").is_some() {
        return None;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/setup-postgres");
    let status = Command::new(&script).stdout(Stdio::null()).status().ok()?;
    status.success().then_some(())
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn unprivileged_user() -> Result<String, String> {
    for user in ["postgres", "nobody"] {
        if ids(user).is_ok() {
            return Ok(user.to_owned());
        }
    }
    Err("running as root, and neither a `postgres` nor a `nobody` user exists to run the cluster as".to_owned())
}

fn ids(user: &str) -> Result<(u32, u32), String> {
    let id = |flag: &str| -> Result<u32, String> {
        let out = Command::new("id").args([flag, user]).output().map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!("no user {user}"));
        }
        String::from_utf8_lossy(&out.stdout).trim().parse().map_err(|e| format!("id {flag} {user}: {e}"))
    };
    Ok((id("-u")?, id("-g")?))
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    drop(listener);
    std::thread::sleep(Duration::from_millis(10));
    Ok(port)
}

/// What [`export_parquet`] wrote and read back.
pub struct Exported {
    /// Every row of every file, in file order.
    pub rows: arrow::record_batch::RecordBatch,
    /// The export task's result.
    pub result: byob::plan::TaskResult,
}

/// Exports one slice of `table` for `tenant` from `source` to Parquet (`codec`) in a fresh
/// local folder with byob's own export pipeline, then reads every file back with Parquet's
/// plain reader.
pub async fn export_parquet(
    source: &dyn byob::source::Source,
    table: &str,
    tenant: &str,
    columns: Option<&[&str]>,
    bounds: &byob::source::Bounds,
    codec: byob::format::Codec,
) -> byob::Result<Exported> {
    use byob::export::{self, Cancel};
    use byob::format::{Format, FormatKind};
    use byob::plan::ExportTask;
    use byob::sink::LocalSink;
    use byob::source::TableRequest;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    let dir = tempfile::tempdir().unwrap();
    let sink = LocalSink::new(dir.path());
    let spec = crate::spec::export_spec("2024-02-29T04:03", "out", Format::new(FormatKind::Parquet, codec));
    let request = TableRequest {
        table: table.into(),
        tenant: tenant.into(),
        tenant_column: "tenant_id".into(),
        columns: columns.map(|c| c.iter().map(|s| s.to_string()).collect()),
        window: None,
    };
    let task = ExportTask {
        destination: "d".into(),
        table: table.into(),
        slice: byob::source::Slice::WHOLE,
        bounds: bounds.clone(),
        increment: None,
    };
    let result =
        export::export(&task, &request, source, &sink, &spec, &Cancel::default(), std::sync::Arc::new(|_| {})).await?;
    let mut batches = Vec::new();
    let mut schema = None;
    for file in &result.files {
        let path = dir.path().join("out").join(&file.key);
        let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&path).unwrap()).unwrap();
        schema.get_or_insert_with(|| reader.schema().clone());
        for batch in reader.build().unwrap() {
            batches.push(batch.unwrap());
        }
    }
    let schema = schema.unwrap_or_else(|| std::sync::Arc::new(arrow::datatypes::Schema::empty()));
    let rows = arrow::compute::concat_batches(&schema, &batches).unwrap();
    Ok(Exported { rows, result })
}

/// This process's peak resident set (VmHWM), in MiB (the benchmarks' figure).
pub fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}
