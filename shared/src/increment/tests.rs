use super::*;

fn run(s: &str) -> RunId {
    s.parse().expect("run id")
}

fn ts(s: &str) -> Watermark {
    s.parse().expect("timestamp")
}

fn columns() -> Vec<ColumnSchema> {
    vec![ColumnSchema { name: "id".into(), data_type: "int64".into(), nullable: false }]
}

fn found(max: Option<Watermark>) -> HighWater {
    HighWater { kind: WatermarkKind::Timestamp, max, columns: columns() }
}

fn wanted(lookback: Option<Lookback>, full_every: Option<Span>) -> Wanted<'static> {
    Wanted { column: "updated_at", incremental: true, primary_key: &[], lookback, full_every }
}

/// A full dump of run 2024-01-01T04:00 up to 04:00:00Z.
fn full_at_four() -> (RunId, Range) {
    let first = run("2024-01-01T04:00");
    let range = Range {
        column: "updated_at".into(),
        from: None,
        to: Some(ts("2024-01-01T04:00:00Z")),
        reexported_from: None,
        full_run: first,
    };
    (first, range)
}

#[test]
fn watermarks_round_trip_through_json_in_their_readable_forms() {
    for (value, json) in [
        (Watermark::Integer(-42), "-42"),
        (Watermark::Timestamp(1_700_000_000_123_456_000), "\"2023-11-14T22:13:20.123456Z\""),
        (Watermark::Timestamp(1_700_000_000_000_000_001), "\"2023-11-14T22:13:20.000000001Z\""),
        (Watermark::Date(19_724), "\"2024-01-02\""),
    ] {
        assert_eq!(serde_json::to_string(&value).expect("json"), json);
        assert_eq!(serde_json::from_str::<Watermark>(json).expect("parses"), value);
    }
    let err = serde_json::from_str::<Watermark>("\"yesterday\"").expect_err("not a watermark");
    assert!(err.to_string().contains("yesterday"), "{err}");
}

#[test]
fn spans_parse_units_and_refuse_the_rest() {
    assert_eq!(Span::parse("90m").map(Span::seconds), Ok(5400));
    assert_eq!(Span::parse("7d").map(Span::seconds), Ok(604_800));
    assert_eq!(Span::parse("7d").map(|s| s.to_string()).as_deref(), Ok("7d"));
    for bad in ["", "7", "d", "0h", "7w", "-1h", "1.5h"] {
        let err = Span::parse(bad).expect_err(bad);
        assert!(err.contains("s, m, h or d"), "{err}");
    }
}

#[test]
fn windows_hold_their_range_and_nulls_only_when_full() {
    let incremental =
        Window { column: "w".into(), after: Some(Watermark::Integer(10)), through: Some(Watermark::Integer(20)) };
    assert!(!incremental.holds(Some(Watermark::Integer(10))));
    assert!(incremental.holds(Some(Watermark::Integer(11))));
    assert!(incremental.holds(Some(Watermark::Integer(20))));
    assert!(!incremental.holds(Some(Watermark::Integer(21))));
    assert!(!incremental.holds(None));
    let full = Window { column: "w".into(), after: None, through: Some(Watermark::Integer(20)) };
    assert!(
        full.holds(None) && full.holds(Some(Watermark::Integer(i64::MIN))) && !full.holds(Some(Watermark::Integer(21)))
    );
    let empty = Window { column: "w".into(), after: None, through: None };
    assert!(empty.holds(None) && !empty.holds(Some(Watermark::Integer(0))));

    // Row-group statistics: only an incremental window skips.
    let i = |v| Some(Watermark::Integer(v));
    assert!(!incremental.may_overlap(i(0), i(10)));
    assert!(incremental.may_overlap(i(0), i(11)));
    assert!(incremental.may_overlap(i(20), i(30)));
    assert!(!incremental.may_overlap(i(21), i(30)));
    assert!(incremental.may_overlap(None, None));
    assert!(full.may_overlap(i(21), i(30)));
}

#[test]
fn the_first_run_is_full_and_the_next_builds_on_it() {
    let first = run("2024-01-01T04:00");
    let (full, why) =
        decide(first, &wanted(None, None), None, &found(Some(ts("2024-01-01T03:59:00Z")))).expect("decides");
    assert_eq!(full.mode, TableMode::Full);
    assert_eq!(full.range.to, Some(ts("2024-01-01T03:59:00Z")));
    assert_eq!(full.range.full_run, first);
    assert!(why.is_some_and(|w| w.contains("no earlier run")));
    assert_eq!(full.window(), Window { column: "updated_at".into(), after: None, through: full.range.to });

    let second = run("2024-01-01T15:00");
    let cols = columns();
    let previous = Previous { run: first, range: Some(&full.range), columns: &cols };
    let (next, why) = decide(second, &wanted(None, None), Some(&previous), &found(Some(ts("2024-01-01T14:00:00Z"))))
        .expect("decides");
    assert_eq!(why, None);
    assert_eq!(next.mode, TableMode::Incremental);
    assert_eq!(next.builds_on, Some(first));
    assert_eq!(next.range.from, full.range.to);
    assert_eq!(next.range.to, Some(ts("2024-01-01T14:00:00Z")));
    assert_eq!(next.range.full_run, first);
    assert_eq!(next.window().after, full.range.to);

    // No new rows (or rows deleted): the range stays put, never backwards.
    let (still, _) = decide(second, &wanted(None, None), Some(&previous), &found(Some(ts("2023-01-01T00:00:00Z"))))
        .expect("decides");
    assert_eq!((still.range.from, still.range.to), (full.range.to, full.range.to));
    let (none, _) = decide(second, &wanted(None, None), Some(&previous), &found(None)).expect("decides");
    assert_eq!(none.range.to, full.range.to);
}

#[test]
fn lookback_reexports_before_from_and_must_fit_the_column() {
    let (first, range) = full_at_four();
    let cols = columns();
    let previous = Previous { run: first, range: Some(&range), columns: &cols };
    let lookback = Some(Lookback::Duration(Span::parse("30m").expect("span")));
    let (next, _) = decide(
        run("2024-01-01T05:00"),
        &wanted(lookback, None),
        Some(&previous),
        &found(Some(ts("2024-01-01T05:00:00Z"))),
    )
    .expect("decides");
    assert_eq!(next.range.from, Some(ts("2024-01-01T04:00:00Z")));
    assert_eq!(next.range.reexported_from, Some(ts("2024-01-01T03:30:00Z")));
    assert_eq!(next.window().after, Some(ts("2024-01-01T03:30:00Z")));

    let err = decide(run("2024-01-01T05:00"), &wanted(Some(Lookback::Amount(5)), None), Some(&previous), &found(None))
        .expect_err("a number on a timestamp");
    assert!(err.contains("lookback 5") && err.contains("duration"), "{err}");
    assert_eq!(
        Watermark::Date(10).minus(&Lookback::Duration(Span::parse("25h").expect("span"))),
        Some(Watermark::Date(8))
    );
}

#[test]
fn full_dumps_come_back_when_asked_or_when_the_chain_cannot_continue() {
    let (first, range) = full_at_four();
    let cols = columns();
    let previous = Previous { run: first, range: Some(&range), columns: &cols };
    let now = found(Some(ts("2024-01-08T04:00:00Z")));
    let every = Some(Span::parse("7d").expect("span"));
    let (before, _) = decide(run("2024-01-08T03:59"), &wanted(None, every), Some(&previous), &now).expect("decides");
    assert_eq!(before.mode, TableMode::Incremental);
    let (due, why) = decide(run("2024-01-08T04:00"), &wanted(None, every), Some(&previous), &now).expect("decides");
    assert_eq!((due.mode, due.range.full_run), (TableMode::Full, run("2024-01-08T04:00")));
    assert!(why.is_some_and(|w| w.contains("full_every = \"7d\"")));

    let other = Range { column: "inserted_at".into(), ..range.clone() };
    let moved = Previous { range: Some(&other), ..previous.clone() };
    let (full, why) = decide(run("2024-01-02T04:00"), &wanted(None, None), Some(&moved), &now).expect("decides");
    assert!(full.mode == TableMode::Full && why.is_some_and(|w| w.contains("inserted_at")));

    let wider =
        vec![columns()[0].clone(), ColumnSchema { name: "plan".into(), data_type: "string".into(), nullable: true }];
    let (full, why) = decide(
        run("2024-01-02T04:00"),
        &wanted(None, None),
        Some(&previous),
        &HighWater { columns: wider, ..now.clone() },
    )
    .expect("decides");
    assert!(full.mode == TableMode::Full && why.is_some_and(|w| w.contains("columns changed")));

    let empty = Range { to: None, ..range.clone() };
    let (full, _) = decide(
        run("2024-01-02T04:00"),
        &wanted(None, None),
        Some(&Previous { range: Some(&empty), ..previous.clone() }),
        &now,
    )
    .expect("decides");
    assert_eq!(full.mode, TableMode::Full);

    let not_incremental = Wanted { incremental: false, ..wanted(None, None) };
    let (full, why) = decide(run("2024-01-02T04:00"), &not_incremental, Some(&previous), &now).expect("decides");
    assert!(full.mode == TableMode::Full && why.is_none());
}
