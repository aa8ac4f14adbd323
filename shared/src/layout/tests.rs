#![allow(clippy::unwrap_used)]

use super::*;

fn run() -> RunId {
    RunId::parse("2023-03-14T04:03").unwrap()
}

fn template_reason(s: &str) -> String {
    match KeyTemplate::parse(s) {
        Err(LayoutError::Template { template, reason }) => {
            assert_eq!(template, s);
            reason
        }
        other => panic!("{s:?} should be rejected, got {other:?}"),
    }
}

// ---- run ids --------------------------------------------------------------------------

#[test]
fn run_id_round_trips() {
    let r = run();
    assert_eq!(r.to_string(), "2023-03-14T04:03");
    assert_eq!("2023-03-14T04:03".parse::<RunId>().unwrap(), r);
    assert_eq!(
        (r.year(), r.month(), r.day(), r.hour(), r.minute()),
        ("2023".into(), "03".into(), "14".into(), "04".into(), "03".into())
    );
    assert_eq!(RunId::parse("0000-01-01T00:00").unwrap().to_string(), "0000-01-01T00:00");
    assert_eq!(RunId::parse("9999-12-31T23:59").unwrap().to_string(), "9999-12-31T23:59");
    assert_eq!(RunId::parse("2024-02-29T12:00").unwrap().day(), "29");
}

#[test]
fn run_id_rejects_everything_but_the_strict_form() {
    for bad in [
        "",
        "2023-03-14",
        "2023-03-14T04",
        "2023-03-14T04:03:00",
        "2023-03-14T04:03Z",
        "2023-3-14T04:03",
        "2023-03-14 04:03",
        "2023-03-14t04:03",
        "23-03-14T04:03",
        " 2023-03-14T04:03",
        "2023-03-14T04:03 ",
        "2023-13-14T04:03",
        "2023-02-30T04:03",
        "2023-02-29T04:03",
        "2023-03-14T24:00",
        "2023-03-14T04:60",
        "2023-00-14T04:03",
        "2023-03-00T04:03",
        "+023-03-14T04:03",
        "2023/03/14T04:03",
        "２０２３-03-14T04:03",
    ] {
        let e = RunId::parse(bad).unwrap_err();
        assert!(matches!(&e, LayoutError::RunId { input, .. } if input == bad), "{bad:?}: {e}");
        assert!(e.to_string().contains("YYYY-MM-DDTHH:MM"), "{e}");
    }
}

#[test]
fn run_id_orders_chronologically_and_hashes() {
    let a = RunId::parse("2023-03-13T15:04").unwrap();
    let b = RunId::parse("2023-03-14T04:03").unwrap();
    let c = RunId::parse("2024-01-01T00:00").unwrap();
    assert!(a < b && b < c);
    let set: std::collections::HashSet<_> = [a, b, b, c].into_iter().collect();
    assert_eq!(set.len(), 3);
}

#[test]
fn run_id_from_scheduled_time_truncates_and_converts() {
    let cases = [
        ("2022-03-22T18:59:43Z", "2022-03-22T18:59"),
        ("2022-03-22T18:59:59.999Z", "2022-03-22T18:59"),
        ("2022-03-22T18:59:00Z", "2022-03-22T18:59"),
        ("2022-03-22T18:59:43+00:00", "2022-03-22T18:59"),
        ("2022-03-22T20:59:43+02:00", "2022-03-22T18:59"),
        ("2022-03-22T00:30:00-05:30", "2022-03-22T06:00"),
        ("2022-12-31T23:30:00-01:00", "2023-01-01T00:30"),
    ];
    for (input, want) in cases {
        assert_eq!(RunId::from_scheduled_time(input).unwrap().to_string(), want, "{input}");
    }
    for bad in ["", "2022-03-22T18:59", "2022-03-22 18:59:43", "yesterday", "2022-03-22T18:59:43"] {
        let e = RunId::from_scheduled_time(bad).unwrap_err();
        assert!(matches!(e, LayoutError::ScheduledTime { .. }), "{bad:?}");
        assert!(e.to_string().contains("RFC 3339"), "{e}");
    }
}

#[test]
fn run_id_now_is_a_whole_minute() {
    let now = RunId::now();
    assert_eq!(RunId::parse(&now.to_string()).unwrap(), now);
    assert_eq!(now.datetime().second(), 0);
}

#[test]
fn run_id_serde_is_the_string() {
    let r = run();
    assert_eq!(serde_json::to_string(&r).unwrap(), "\"2023-03-14T04:03\"");
    assert_eq!(serde_json::from_str::<RunId>("\"2023-03-14T04:03\"").unwrap(), r);
    assert!(serde_json::from_str::<RunId>("\"2023-03-14T04:03:00Z\"").is_err());
    assert!(serde_json::from_str::<RunId>("17").is_err());
}

// ---- shards, receipts, names ----------------------------------------------------------

#[test]
fn shard_names_have_twelve_digits() {
    assert_eq!(shard_name(0), "000000000000");
    assert_eq!(shard_name(1), "000000000001");
    assert_eq!(shard_name(SHARD_STRIDE), "000001000000");
    assert_eq!(shard_name(MAX_SHARD), "999999999999");
    assert_eq!(shard_name(3 * SHARD_STRIDE + 7), "000003000007");
}

#[test]
fn receipt_keys() {
    assert_eq!(RECEIPT_FILE, "receipt.json");
    assert_eq!(run_receipt_key(&run()), "2023-03-14T04:03/receipt.run.json");
    assert!(!run_receipt_key(&run()).ends_with(RECEIPT_FILE), "one key per dump fires a receipt.json trigger");
    assert_eq!(join("exports/acme", &run_receipt_key(&run())), "exports/acme/2023-03-14T04:03/receipt.run.json");
    assert_eq!(join("exports/acme", RECEIPT_FILE), "exports/acme/receipt.json");
}

#[test]
fn table_names() {
    for ok in ["companies", "a", "_x", "Events_2023", &"t".repeat(63)] {
        validate_table_name(ok).unwrap();
    }
    for (bad, why) in [
        ("", "empty"),
        ("1abc", "digit"),
        ("a-b", "'-'"),
        ("a.b", "'.'"),
        ("a b", "' '"),
        ("a/b", "'/'"),
        ("é", "'é'"),
        (&"t".repeat(64), "64"),
    ] {
        let e = validate_table_name(bad).unwrap_err();
        assert!(matches!(&e, LayoutError::TableName { name, .. } if name == bad));
        let msg = e.to_string();
        assert!(msg.contains(why) && msg.contains("1-63"), "{bad:?}: {msg}");
    }
}

#[test]
fn destination_ids() {
    for ok in ["acme", "acme-eu_1", "1st", &"a".repeat(64)] {
        validate_destination_id(ok).unwrap();
    }
    for (bad, why) in [
        ("", "empty"),
        ("-acme", "symbol"),
        ("_acme", "symbol"),
        ("Acme", "'A'"),
        ("ac me", "' '"),
        ("acme.eu", "'.'"),
        ("acme/eu", "'/'"),
        (&"a".repeat(65), "65"),
    ] {
        let e = validate_destination_id(bad).unwrap_err();
        assert!(matches!(&e, LayoutError::DestinationId { id, .. } if id == bad));
        let msg = e.to_string();
        assert!(msg.contains(why) && msg.contains("1-64"), "{bad:?}: {msg}");
    }
}

// ---- prefixes -------------------------------------------------------------------------

#[test]
fn prefixes_are_normalized() {
    for (input, want) in [
        ("", ""),
        ("exports", "exports"),
        ("exports/", "exports"),
        ("exports/acme", "exports/acme"),
        ("exports/acme/", "exports/acme"),
        ("year=2023/x!-_.*'()", "year=2023/x!-_.*'()"),
        ("..a/b..", "..a/b.."),
    ] {
        assert_eq!(normalize_prefix(input).unwrap(), want, "{input:?}");
    }
    assert_eq!(normalize_prefix(&"a".repeat(512)).unwrap().len(), 512);
}

#[test]
fn prefixes_are_rejected_with_a_reason() {
    for (bad, why) in [
        ("/", "starts with '/'"),
        ("/exports", "starts with '/'"),
        ("exports//acme", "empty segment"),
        ("exports//", "empty segment"),
        ("exports/../acme", "\"..\""),
        ("./exports", "\".\""),
        ("exports/.", "\".\""),
        ("exports/acme corp", "' '"),
        ("exports\\acme", "'\\\\'"),
        ("exports/acme:1", "':'"),
        ("exports/{run}", "'{'"),
        (&"a".repeat(513), "513 bytes"),
    ] {
        let e = normalize_prefix(bad).unwrap_err();
        assert!(matches!(&e, LayoutError::Prefix { prefix, .. } if prefix == bad));
        assert!(e.to_string().contains(why), "{bad:?}: {e}");
    }
}

#[test]
fn join_never_doubles_slashes() {
    assert_eq!(join("", "a/b.parquet"), "a/b.parquet");
    assert_eq!(join("p", "a/b"), "p/a/b");
    assert_eq!(join("p/", "a/b"), "p/a/b");
    assert_eq!(join("p/", "/a/b"), "p/a/b");
    assert_eq!(join("p/q", ""), "p/q");
    assert_eq!(join("", ""), "");
}

// ---- key templates --------------------------------------------------------------------

#[test]
fn default_template_is_dreamdatas_layout() {
    let t = KeyTemplate::default();
    assert_eq!(KeyTemplate::parse(KeyTemplate::DEFAULT).unwrap(), t);
    assert_eq!(t.as_str(), KeyTemplate::DEFAULT);
    assert_eq!(
        t.render(&run(), "companies", 0, "parquet.gz"),
        "2023-03-14T04:03/companies/companies_000000000000.parquet.gz"
    );
    assert_eq!(t.render(&run(), "companies", 1, "csv.gz"), "2023-03-14T04:03/companies/companies_000000000001.csv.gz");
    assert_eq!(t.folder(&run(), "companies"), "2023-03-14T04:03/companies");
}

#[test]
fn custom_templates_render() {
    let cases = [
        (
            "{prefix}/{run}/{table}/{table}_{shard}.{ext}",
            "2023-03-14T04:03/companies/companies_000000000007.parquet.gz",
            "2023-03-14T04:03/companies",
        ),
        (
            "{table}/year={YYYY}/month={MM}/day={DD}/hour={HH}/{run}/part-{shard}.{ext}",
            "companies/year=2023/month=03/day=14/hour=04/2023-03-14T04:03/part-000000000007.parquet.gz",
            "companies/year=2023/month=03/day=14/hour=04/2023-03-14T04:03",
        ),
        ("{run}_{table}/{shard}", "2023-03-14T04:03_companies/000000000007", "2023-03-14T04:03_companies"),
        (
            "dumps/{YYYY}{MM}{DD}/{run}/{table}/{table}-{YYYY}-{MM}-{DD}_{shard}.{ext}",
            "dumps/20230314/2023-03-14T04:03/companies/companies-2023-03-14_000000000007.parquet.gz",
            "dumps/20230314/2023-03-14T04:03/companies",
        ),
        (
            "{run}/{table}/(x)!*'_{shard}",
            "2023-03-14T04:03/companies/(x)!*'_000000000007",
            "2023-03-14T04:03/companies",
        ),
    ];
    for (template, key, folder) in cases {
        let t = KeyTemplate::parse(template).unwrap();
        assert_eq!(t.render(&run(), "companies", 7, "parquet.gz"), key, "{template}");
        assert_eq!(t.folder(&run(), "companies"), folder, "{template}");
        assert!(key.starts_with(&format!("{folder}/")));
        assert_eq!(t.to_string(), template);
    }
}

#[test]
fn templates_are_rejected_with_a_reason() {
    for (bad, why) in [
        ("", "empty"),
        ("/{run}/{table}/{table}_{shard}.{ext}", "starts with '/'"),
        ("{prefix}/", "empty segment"),
        ("{prefix}", "{prefix} must be a whole first segment"),
        ("{prefix}{run}/{table}/{shard}", "{prefix} must be a whole first segment"),
        ("{run}/{prefix}/{table}/{shard}", "{prefix} is allowed only as the very first segment"),
        ("{run}/{table}/{table}_{sahrd}.{ext}", "unknown placeholder {sahrd}"),
        ("{run}/{table}/{}_{shard}", "unknown placeholder {}"),
        ("{run}/{table}/{TABLE}_{shard}", "unknown placeholder {TABLE}"),
        ("{run}/{table}/{table}_{shard.{ext}", "no matching '}'"),
        ("{run}/{table}/{table}_{shard}.{ext", "no matching '}'"),
        ("{run}/{table}/{table}_shard}", "without a matching '{'"),
        ("{run}/{ta/ble}/{shard}", "no matching '}'"),
        ("{run}//{table}/{shard}", "empty segment"),
        ("{run}/{table}/{shard}/", "empty segment"),
        ("{run}/../{table}/{shard}", "\"..\""),
        ("./{run}/{table}/{shard}", "\".\""),
        ("{run}/{table} x/{shard}", "' '"),
        ("{run}/{table}/{shard}:x", "':'"),
        ("{run}/{table}/{shard}#", "'#'"),
        ("{run}\\{table}/{shard}", "'\\\\'"),
        ("{run}/{table}/{table}.{ext}", "no {shard}"),
        ("{run}/{shard}/{table}.{ext}", "{shard} may appear only in the file name"),
        ("{run}/{ext}/{table}/{shard}", "{ext} may appear only in the file name"),
        ("{run}/{table}.{ext}/{shard}", "{ext} may appear only in the file name"),
        ("{table}/{table}_{shard}.{ext}", "{run} must appear in the folder part"),
        ("{run}/{table}_{shard}.{ext}", "{table} must appear in the folder part"),
        ("{run}_{table}_{shard}.{ext}", "{run} must appear in the folder part"),
        (&format!("{{run}}/{{table}}/{}{{shard}}", "a".repeat(300)), "at most 256"),
    ] {
        let reason = template_reason(bad);
        assert!(reason.contains(why), "{bad:?}: {reason}");
    }
    assert!(template_reason("{run}/{table}/{nope}_{shard}").contains(PLACEHOLDERS));
}

#[test]
fn template_serde_is_the_string() {
    let t = KeyTemplate::default();
    let json = serde_json::to_string(&t).unwrap();
    assert_eq!(json, "\"{run}/{table}/{table}_{shard}.{ext}\"");
    assert_eq!(serde_json::from_str::<KeyTemplate>(&json).unwrap(), t);
    assert!(serde_json::from_str::<KeyTemplate>("\"/abs/{shard}\"").is_err());
}

#[test]
fn layout_error_reason_omits_the_input() {
    let e = KeyTemplate::parse("{run}/{table}/{x}{shard}").unwrap_err();
    assert!(e.to_string().contains("{run}/{table}/{x}{shard}"));
    assert!(e.reason().starts_with("unknown placeholder {x}"));
}
