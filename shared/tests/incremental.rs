//! Incremental dumps end to end: a full dump, then rows inserted, updated and written late
//! (inside the lookback), then incremental dumps, each loaded; after every load the warehouse
//! holds exactly the tenant's rows of the source. For both sources (PostgreSQL, a Parquet lake)
//! and both targets (PostgreSQL, DuckDB). Also: a failed run loses nothing (the next covers its
//! range), and a receipt whose predecessor was never loaded is refused, naming that run.
//!
//! The test keeps the truth in memory (`Model`) and writes it to the source after each change:
//! PostgreSQL tables, or a lake folder rewritten as Parquet files sorted by the watermark.

#![allow(clippy::unwrap_used)]

use byob_testkit::postgres as postgres_harness;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use byob::config::Config;
use byob::increment::TableMode;
use byob::layout::RunId;
use byob::load::{LoadError, LoadOutcome, Loader, PostgresTarget, ReceiptLocation, Target};
use byob::plan::PlanFilter;
use byob::receipt::Receipt;
use byob::run::{self, RunOptions, Silent};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

const MINUTE: i64 = 60_000_000;
/// 2024-03-01T00:00:00Z in microseconds.
const START: i64 = 1_709_251_200_000_000;

#[derive(Clone, Debug, PartialEq)]
struct Order {
    tenant: &'static str,
    status: String,
    amount: i64,
    updated_at: i64,
}

#[derive(Clone, Debug, PartialEq)]
struct Click {
    tenant: &'static str,
    id: i64,
    page: String,
    at: i64,
}

/// The source's truth: `orders` (rows change, primary key `order_id`) and `clicks` (rows only
/// added, no key).
struct Model {
    orders: BTreeMap<i64, Order>,
    clicks: Vec<Click>,
    clock: i64,
    next: i64,
}

impl Model {
    fn new() -> Model {
        let mut model = Model { orders: BTreeMap::new(), clicks: Vec::new(), clock: START, next: 1 };
        model.insert(300, 400);
        model
    }

    /// One minute later: a 30-minute lookback re-reads the last 30 ticks.
    fn tick(&mut self) -> i64 {
        self.clock += MINUTE;
        self.clock
    }

    /// `orders` new orders and `clicks` new clicks, every third of another tenant.
    fn insert(&mut self, orders: usize, clicks: usize) {
        for i in 0..orders.max(clicks) {
            let tenant = if i % 3 == 2 { "globex" } else { "acme" };
            let id = self.next;
            self.next += 1;
            let at = self.tick();
            if i < orders {
                self.orders.insert(id, Order { tenant, status: "new".into(), amount: id * 7 % 1000, updated_at: at });
            }
            if i < clicks {
                self.clicks.push(Click { tenant, id, page: format!("/p/{}", id % 17), at });
            }
        }
    }

    /// Changes `count` existing orders (every 11th), written now.
    fn update(&mut self, count: usize, status: &str) {
        let ids: Vec<i64> = self.orders.keys().copied().step_by(11).take(count).collect();
        for id in ids {
            let at = self.tick();
            let order = self.orders.get_mut(&id).unwrap();
            order.status = status.into();
            order.amount += 1;
            order.updated_at = at;
        }
    }

    /// Rows written by a transaction that committed late: their watermark is `ago` before the
    /// clock, inside the 30-minute lookback.
    fn late(&mut self, ago: i64) {
        let at = self.clock - ago;
        let id = *self.orders.keys().next().unwrap();
        let order = self.orders.get_mut(&id).unwrap();
        order.status = "late".into();
        order.updated_at = at;
        let id = self.next;
        self.next += 1;
        self.clicks.push(Click { tenant: "acme", id, page: "/late".into(), at });
    }

    /// acme's rows of `table`, as the target checks render them.
    fn rows(&self, table: &str) -> Vec<String> {
        let mut rows: Vec<String> = match table {
            "orders" => self
                .orders
                .iter()
                .filter(|(_, o)| o.tenant == "acme")
                .map(|(id, o)| format!("{id}|{}|{}|{}", o.status, o.amount, o.updated_at))
                .collect(),
            _ => self
                .clicks
                .iter()
                .filter(|c| c.tenant == "acme")
                .map(|c| format!("{}|{}|{}", c.id, c.page, c.at))
                .collect(),
        };
        rows.sort();
        rows
    }
}

#[derive(Clone, Copy, Debug)]
enum SourceKind {
    Postgres,
    Lake,
}

#[derive(Clone, Copy, Debug)]
enum TargetKind {
    Postgres,
    #[cfg(feature = "duckdb")]
    DuckDb,
}

struct Bench {
    dir: tempfile::TempDir,
    source: SourceKind,
    source_url: Option<String>,
    target: Box<dyn Target>,
    target_url: Option<String>,
    duckdb: Option<PathBuf>,
    config: Config,
}

impl Bench {
    async fn new(source: SourceKind, target: TargetKind) -> Option<Bench> {
        let pg = postgres_harness::shared()?;
        let dir = tempfile::tempdir().unwrap();
        let source_url = match source {
            SourceKind::Postgres => {
                let db = pg.database("incr_src").await;
                let client = postgres_harness::client(&pg.url(&db)).await;
                client
                    .batch_execute(
                        "CREATE TABLE orders (tenant_id text NOT NULL, order_id bigint PRIMARY KEY, status text NOT NULL, \
                           amount bigint NOT NULL, updated_at timestamptz NOT NULL); \
                         CREATE INDEX ON orders (tenant_id, updated_at); \
                         CREATE TABLE clicks (tenant_id text NOT NULL, click_id bigint NOT NULL, page text NOT NULL, \
                           at timestamptz NOT NULL); \
                         CREATE INDEX ON clicks (tenant_id, at);",
                    )
                    .await
                    .unwrap();
                Some(pg.url(&db))
            }
            SourceKind::Lake => None,
        };
        let source_section = match &source_url {
            Some(url) => format!("[source]\ntype = \"postgres\"\nurl = \"{url}\"\n"),
            None => "[source]\ntype = \"parquet\"\npath = \"lake\"\n".to_owned(),
        };
        let text = format!(
            "{source_section}\n\
             [[tables]]\nname = \"orders\"\nmode = \"incremental\"\nwatermark = \"updated_at\"\nprimary_key = [\"order_id\"]\nlookback = \"30m\"\n\n\
             [[tables]]\nname = \"clicks\"\nmode = \"incremental\"\nwatermark = \"at\"\nlookback = \"30m\"\n\n\
             [[destinations]]\nid = \"acme\"\ntenant = \"acme\"\nfolder = \"out/acme\"\nprefix = \"dump\"\nmax_file_rows = 90\n\
             format = {{ type = \"parquet\", codec = \"zstd\" }}\n\n\
             [export]\nparallelism = 3\ntarget_rows_per_slice = 100\n\n[state]\npath = \"state\"\n"
        );
        let path = dir.path().join("byob.toml");
        std::fs::write(&path, text).unwrap();
        let config = Config::load(&path).unwrap_or_else(|e| panic!("config: {e}"));
        let (target, target_url, duckdb): (Box<dyn Target>, _, _) = match target {
            TargetKind::Postgres => {
                let url = pg.url(&pg.database("incr_dst").await);
                (Box::new(PostgresTarget::from_url(&url).unwrap()), Some(url), None)
            }
            #[cfg(feature = "duckdb")]
            TargetKind::DuckDb => {
                let file = dir.path().join("warehouse.duckdb");
                (Box::new(byob::load::DuckDbTarget::new(&file)), None, Some(file))
            }
        };
        Some(Bench { dir, source, source_url, target, target_url, duckdb, config })
    }

    /// Writes the model to the source.
    async fn write(&self, model: &Model) {
        match self.source {
            SourceKind::Postgres => {
                let client = postgres_harness::client(self.source_url.as_ref().unwrap()).await;
                let ts = |micros: i64| format!("(TIMESTAMPTZ 'epoch' + {micros} * INTERVAL '1 microsecond')");
                let orders: Vec<String> = model
                    .orders
                    .iter()
                    .map(|(id, o)| {
                        format!("('{}', {id}, '{}', {}, {})", o.tenant, o.status, o.amount, ts(o.updated_at))
                    })
                    .collect();
                let clicks: Vec<String> = model
                    .clicks
                    .iter()
                    .map(|c| format!("('{}', {}, '{}', {})", c.tenant, c.id, c.page, ts(c.at)))
                    .collect();
                client
                    .batch_execute(&format!(
                        "BEGIN; TRUNCATE orders, clicks; INSERT INTO orders VALUES {}; INSERT INTO clicks VALUES {}; COMMIT;",
                        orders.join(", "),
                        clicks.join(", ")
                    ))
                    .await
                    .unwrap();
            }
            SourceKind::Lake => {
                let stamp = |values: Vec<i64>| -> ArrayRef {
                    Arc::new(TimestampMicrosecondArray::from(values).with_timezone("UTC"))
                };
                let ts_type = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
                let mut orders: Vec<(&i64, &Order)> = model.orders.iter().collect();
                orders.sort_by_key(|(_, o)| o.updated_at);
                let schema = Arc::new(Schema::new(vec![
                    Field::new("tenant_id", DataType::Utf8, false),
                    Field::new("order_id", DataType::Int64, false),
                    Field::new("status", DataType::Utf8, false),
                    Field::new("amount", DataType::Int64, false),
                    Field::new("updated_at", ts_type.clone(), false),
                ]));
                let batch = RecordBatch::try_new(
                    schema,
                    vec![
                        Arc::new(StringArray::from_iter_values(orders.iter().map(|(_, o)| o.tenant))),
                        Arc::new(Int64Array::from_iter_values(orders.iter().map(|(id, _)| **id))),
                        Arc::new(StringArray::from_iter_values(orders.iter().map(|(_, o)| o.status.as_str()))),
                        Arc::new(Int64Array::from_iter_values(orders.iter().map(|(_, o)| o.amount))),
                        stamp(orders.iter().map(|(_, o)| o.updated_at).collect()),
                    ],
                )
                .unwrap();
                self.write_lake("orders", &batch);
                let mut clicks = model.clicks.clone();
                clicks.sort_by_key(|c| c.at);
                let schema = Arc::new(Schema::new(vec![
                    Field::new("tenant_id", DataType::Utf8, false),
                    Field::new("click_id", DataType::Int64, false),
                    Field::new("page", DataType::Utf8, false),
                    Field::new("at", ts_type, false),
                ]));
                let batch = RecordBatch::try_new(
                    schema,
                    vec![
                        Arc::new(StringArray::from_iter_values(clicks.iter().map(|c| c.tenant))),
                        Arc::new(Int64Array::from_iter_values(clicks.iter().map(|c| c.id))),
                        Arc::new(StringArray::from_iter_values(clicks.iter().map(|c| c.page.as_str()))),
                        stamp(clicks.iter().map(|c| c.at).collect()),
                    ],
                )
                .unwrap();
                self.write_lake("clicks", &batch);
            }
        }
    }

    /// A lake table rewritten as two files of 64-row row groups, sorted by the watermark.
    fn write_lake(&self, table: &str, batch: &RecordBatch) {
        let folder = self.dir.path().join("lake").join(table);
        let _ = std::fs::remove_dir_all(&folder);
        std::fs::create_dir_all(&folder).unwrap();
        let half = batch.num_rows() / 2;
        for (n, part) in [batch.slice(0, half), batch.slice(half, batch.num_rows() - half)].iter().enumerate() {
            let file = std::fs::File::create(folder.join(format!("part-{n}.parquet"))).unwrap();
            let props = WriterProperties::builder().set_max_row_group_row_count(Some(64)).build();
            let mut writer = ArrowWriter::try_new(file, part.schema(), Some(props)).unwrap();
            writer.write(part).unwrap();
            writer.close().unwrap();
        }
    }

    async fn dump(&self, run: &str) -> Result<Receipt, String> {
        let run: RunId = run.parse().unwrap();
        let report = run::run(&self.config, &RunOptions { run, filter: PlanFilter::default() }, Arc::new(Silent))
            .await
            .map_err(|e| e.to_string())?;
        match &report.destinations[0].outcome {
            Ok(_) => {
                let path = self.out().join(format!("{run}/receipt.run.json"));
                Ok(Receipt::from_json(&std::fs::read(path).unwrap()).unwrap())
            }
            Err(e) => Err(e.to_string()),
        }
    }

    fn out(&self) -> PathBuf {
        self.dir.path().join("out/acme/dump")
    }

    async fn load(&self, run: &str) -> Result<LoadOutcome, LoadError> {
        let location = ReceiptLocation::Path(self.out().join(format!("{run}/receipt.run.json")));
        Loader::local().load(&location, self.target.as_ref()).await
    }

    /// The loaded rows of `table`, rendered as [`Model::rows`] renders them.
    async fn loaded(&self, table: &str) -> Vec<String> {
        let (key, columns, at) = match table {
            "orders" => ("order_id", "status, amount", "updated_at"),
            _ => ("click_id", "page", "at"),
        };
        if let Some(url) = &self.target_url {
            let client = postgres_harness::client(url).await;
            let parts: Vec<String> = columns.split(", ").map(|c| format!("{c}::text")).collect();
            let sql = format!(
                "SELECT concat_ws('|', {key}::text, {}, ((extract(epoch FROM {at}) * 1000000)::int8)::text) FROM byob.{table}",
                parts.join(", ")
            );
            let mut rows: Vec<String> = client.query(&sql, &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
            rows.sort();
            return rows;
        }
        #[cfg(feature = "duckdb")]
        if let Some(file) = &self.duckdb {
            let conn = duckdb::Connection::open(file).unwrap();
            let parts: Vec<String> = columns.split(", ").map(|c| format!("\"{c}\"::VARCHAR")).collect();
            let sql = format!(
                "SELECT concat_ws('|', \"{key}\"::VARCHAR, {}, epoch_us(\"{at}\")::VARCHAR) FROM \"{table}\"",
                parts.join(", ")
            );
            let mut statement = conn.prepare(&sql).unwrap();
            let mut rows: Vec<String> = statement.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
            rows.sort();
            return rows;
        }
        let _ = &self.duckdb;
        unreachable!("a target is set")
    }

    async fn assert_equal(&self, model: &Model, after: &str) {
        for table in ["orders", "clicks"] {
            let (want, got) = (model.rows(table), self.loaded(table).await);
            assert_eq!(got.len(), want.len(), "{table} after {after}: row count");
            assert!(got == want, "{table} after {after}: rows differ, e.g. {:?}", first_difference(&want, &got));
        }
    }
}

fn first_difference(want: &[String], got: &[String]) -> Option<(String, String)> {
    want.iter().zip(got).find(|(a, b)| a != b).map(|(a, b)| (a.clone(), b.clone()))
}

fn loaded_rows(outcome: &LoadOutcome) -> u64 {
    match outcome {
        LoadOutcome::Loaded(report) => report.rows,
        other => panic!("expected a load, got {other:?}"),
    }
}

async fn scenario(source: SourceKind, target: TargetKind) {
    let Some(bench) = Bench::new(source, target).await else { return };
    let case = format!("{source:?} -> {target:?}");
    let mut model = Model::new();
    bench.write(&model).await;

    // GIVEN a first run: full
    let first = bench.dump("2024-03-01T04:00").await.unwrap();
    let orders = &first.tables["orders"];
    assert_eq!(orders.mode, TableMode::Full, "{case}");
    let first_to = orders.range.as_ref().and_then(|r| r.to).unwrap();
    assert_eq!(orders.row_count, 200, "{case}: acme's 200 of 300 orders");
    loaded_rows(&bench.load("2024-03-01T04:00").await.unwrap());
    bench.assert_equal(&model, "the full dump").await;

    // WHEN rows are inserted, updated, and written late (inside the lookback)
    model.insert(30, 45);
    model.update(12, "paid");
    model.late(10 * MINUTE);
    bench.write(&model).await;
    let second = bench.dump("2024-03-01T05:00").await.unwrap();
    // THEN the next run is incremental, builds on the first, and holds only what changed
    let orders = &second.tables["orders"];
    assert_eq!(orders.mode, TableMode::Incremental, "{case}");
    assert_eq!(orders.builds_on, Some(first.run), "{case}");
    let range = orders.range.as_ref().unwrap();
    assert_eq!(range.from, Some(first_to), "{case}");
    assert!(range.reexported_from.is_some(), "{case}: the lookback re-reads before from");
    assert!(orders.row_count < 60, "{case}: {} rows is not an increment", orders.row_count);
    assert_eq!(orders.primary_key, ["order_id"]);
    assert!(second.tables["clicks"].primary_key.is_empty());
    loaded_rows(&bench.load("2024-03-01T05:00").await.unwrap());
    bench.assert_equal(&model, "the first incremental dump").await;

    // WHEN a run fails (its destination cannot be written), rows change meanwhile, and the next
    // run succeeds
    model.insert(10, 10);
    model.update(5, "shipped");
    bench.write(&model).await;
    let out = bench.dir.path().join("out/acme");
    let parked = bench.dir.path().join("parked");
    std::fs::rename(&out, &parked).unwrap();
    std::fs::write(&out, "not a folder").unwrap();
    let failed = bench.dump("2024-03-01T06:00").await;
    assert!(failed.is_err(), "{case}: the run with an unwritable destination must fail");
    std::fs::remove_file(&out).unwrap();
    std::fs::rename(&parked, &out).unwrap();
    model.insert(5, 5);
    model.late(5 * MINUTE);
    bench.write(&model).await;
    let fourth = bench.dump("2024-03-01T07:00").await.unwrap();
    // THEN it builds on the last run that finished, so the failed run's rows are in it
    assert_eq!(fourth.tables["orders"].builds_on, Some(second.run), "{case}");
    loaded_rows(&bench.load("2024-03-01T07:00").await.unwrap());
    bench.assert_equal(&model, "a failed run and the next").await;

    // WHEN a receipt is skipped
    model.insert(7, 7);
    bench.write(&model).await;
    bench.dump("2024-03-01T08:00").await.unwrap();
    model.update(3, "refunded");
    bench.write(&model).await;
    bench.dump("2024-03-01T09:00").await.unwrap();
    // THEN the later one is refused, naming the run that is missing, and nothing changes
    let before = bench.loaded("orders").await;
    let err = bench.load("2024-03-01T09:00").await.expect_err("a gap must be refused");
    assert!(matches!(err, LoadError::Gap { .. }), "{case}: {err}");
    assert!(err.to_string().contains("2024-03-01T08:00"), "{case}: {err}");
    assert!(!err.is_retryable());
    assert_eq!(bench.loaded("orders").await, before, "{case}: a refused receipt changes nothing");
    // and loading the missing one first catches up exactly
    loaded_rows(&bench.load("2024-03-01T08:00").await.unwrap());
    loaded_rows(&bench.load("2024-03-01T09:00").await.unwrap());
    bench.assert_equal(&model, "the skipped receipt and its successor").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_source_into_postgres() {
    scenario(SourceKind::Postgres, TargetKind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lake_source_into_postgres() {
    scenario(SourceKind::Lake, TargetKind::Postgres).await;
}

#[cfg(feature = "duckdb")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_source_into_duckdb() {
    scenario(SourceKind::Postgres, TargetKind::DuckDb).await;
}

#[cfg(feature = "duckdb")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lake_source_into_duckdb() {
    scenario(SourceKind::Lake, TargetKind::DuckDb).await;
}
