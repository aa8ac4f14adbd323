//! Validation: every rule, every problem at once.

#[allow(unused_imports)]
use super::*;

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

/// What validation looks at: a whole config, or the parts of one that could be read.
pub(super) struct View<'a> {
    pub(super) source: Option<&'a SourceConfig>,
    pub(super) source_present: bool,
    pub(super) tables: Vec<Option<&'a TableConfig>>,
    pub(super) destinations: Vec<Option<&'a DestinationConfig>>,
    pub(super) export: Option<&'a ExportConfig>,
    pub(super) aws: Option<&'a AwsConfig>,
    pub(super) state: Option<&'a StateConfig>,
}

pub(super) const MAX_TAGS: usize = 10;

/// Where a destination writes: bucket, the bucket's endpoint, folder, normalized prefix.
pub(super) type Location<'a> = (Option<&'a str>, Option<&'a str>, Option<&'a Path>, String);

/// The longest label byob puts into an STS session name after the destination id: `byob
/// check`'s `check-<UTC time>` (a run's label, `2023-03-14T04-03`, is shorter), so ids that
/// differ in their session names under it differ under every label.
pub(super) const LONGEST_SESSION_LABEL: &str = "check-00000000T000000Z";

/// How many leading characters of a destination id survive into every STS session name.
pub(super) fn id_chars_in_session_names() -> usize {
    let longest = "x".repeat(64);
    let name = crate::names::session_name(&longest, LONGEST_SESSION_LABEL);
    name.len().saturating_sub("byob-".len() + 1 + LONGEST_SESSION_LABEL.len())
}

impl View<'_> {
    pub(super) fn validate(&self, problems: &mut Vec<ConfigProblem>) {
        if !self.source_present {
            problems.push(ConfigProblem::at(
                "source",
                "is required: where rows come from, e.g. [source] type = \"parquet\", path = \"lake\"",
            ));
        }
        if let Some(source) = self.source {
            validate_source(source, problems);
        }
        self.validate_tables(problems);
        self.validate_destinations(problems);
        if let Some(export) = self.export {
            validate_export(export, problems);
        }
        if let Some(aws) = self.aws {
            validate_aws(aws, problems);
        }
        if let Some(state) = self.state
            && state.path.as_os_str().is_empty()
        {
            problems.push(ConfigProblem::at("state.path", "must not be empty; the default is \".byob-state\""));
        }
    }

    pub(super) fn validate_tables(&self, problems: &mut Vec<ConfigProblem>) {
        if self.tables.is_empty() {
            problems.push(ConfigProblem::at(
                "tables",
                "at least one table is required, e.g. [[tables]] name = \"companies\"",
            ));
        }
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, table) in self.tables.iter().enumerate() {
            let Some(table) = table else { continue };
            let at = |field: &str| format!("tables[{i}].{field}");
            match layout::validate_table_name(&table.name) {
                Err(e) => problems.push(ConfigProblem::with_str(at("name"), &table.name, e.reason())),
                Ok(()) => {
                    let lower = table.name.to_ascii_lowercase();
                    if let Some(&first) = seen.get(&lower) {
                        problems.push(ConfigProblem::with_str(
                            at("name"),
                            &table.name,
                            format!("tables[{first}] has the same name; table names must be unique, ignoring case"),
                        ));
                    } else {
                        seen.insert(lower, i);
                    }
                }
            }
            if let Some(column) = &table.tenant_column {
                check_column(problems, at("tenant_column"), column);
            }
            if let Some(columns) = &table.columns {
                if columns.is_empty() {
                    problems.push(ConfigProblem::at(
                        at("columns"),
                        "list at least one column, or leave columns out to export all",
                    ));
                }
                let mut names = BTreeSet::new();
                for (j, column) in columns.iter().enumerate() {
                    let path = format!("tables[{i}].columns[{j}]");
                    if !check_column(problems, path.clone(), column) {
                        continue;
                    }
                    if !names.insert(column.as_str()) {
                        problems.push(ConfigProblem::with_str(
                            path,
                            column,
                            "is listed twice; each column appears once",
                        ));
                    }
                }
            }
            if let Some(path) = &table.path
                && path.as_os_str().is_empty()
            {
                problems.push(ConfigProblem::at(
                    at("path"),
                    "must not be empty; leave it out to read <source.path>/<name>",
                ));
            }
            let postgres = matches!(self.source, Some(SourceConfig::Postgres(_)));
            let parquet = matches!(self.source, Some(SourceConfig::Parquet(_)));
            if postgres && table.path.is_some() {
                problems.push(ConfigProblem::at(
                    at("path"),
                    "applies to parquet sources only; a PostgreSQL table reads <source.schema>.<name> or its query",
                ));
            }
            if let Some(query) = &table.query {
                if parquet {
                    problems.push(ConfigProblem::at(at("query"), "applies to postgres sources only"));
                }
                let body = query.trim().trim_end_matches(';').trim();
                if body.is_empty() || body.contains('\0') {
                    problems.push(ConfigProblem::at(
                        at("query"),
                        "must be a SELECT returning the tenant column, e.g. \"SELECT id, tenant_id, name FROM crm.companies\"",
                    ));
                }
            }
            if let Some(key) = &table.slice_key {
                if parquet {
                    problems.push(ConfigProblem::at(
                        at("slice_key"),
                        "applies to postgres sources only (a lake is sliced by row groups)",
                    ));
                }
                check_column(problems, at("slice_key"), key);
            }
            validate_increment(table, &at, problems);
        }
    }

    pub(super) fn validate_destinations(&self, problems: &mut Vec<ConfigProblem>) {
        if self.destinations.is_empty() {
            problems.push(ConfigProblem::at(
                "destinations",
                "at least one destination is required, e.g. [[destinations]] id = \"acme\", tenant = \"acme\", folder = \"out/acme\"",
            ));
        }
        // A destination without a schedule is due at every firing, and the firings follow the
        // finest schedule in use: mixing would silently dump it hourly.
        let scheduled: Vec<usize> = self
            .destinations
            .iter()
            .enumerate()
            .filter(|(_, d)| d.is_some_and(|d| d.schedule.is_some()))
            .map(|(i, _)| i)
            .collect();
        if let Some(&first) = scheduled.first() {
            for (i, d) in self.destinations.iter().enumerate() {
                if d.is_some_and(|d| d.schedule.is_none()) {
                    problems.push(ConfigProblem::at(
                        format!("destinations[{i}].schedule"),
                        format!(
                            "is missing while destinations[{first}] has one: without a schedule a destination is due at every firing of the deployed schedule, which follows the finest schedule in use; set one, e.g. schedule = \"twice-daily\""
                        ),
                    ));
                }
            }
        }
        // Table names are known only if every table could be read.
        let table_names: Option<Vec<&str>> = self.tables.iter().map(|t| t.map(|t| t.name.as_str())).collect();
        let mut ids: HashMap<&str, usize> = HashMap::new();
        let mut sessions: HashMap<String, (usize, &str)> = HashMap::new();
        // (bucket, its endpoint, folder, normalized prefix) -> the first destination there
        let mut locations: HashMap<Location<'_>, usize> = HashMap::new();
        let mut external_ids: HashMap<&str, (usize, &str)> = HashMap::new();
        for (i, d) in self.destinations.iter().enumerate() {
            let Some(d) = d else { continue };
            let at = |field: &str| format!("destinations[{i}].{field}");

            match layout::validate_destination_id(&d.id) {
                Err(e) => problems.push(ConfigProblem::with_str(at("id"), &d.id, e.reason())),
                Ok(()) => {
                    if let Some(&first) = ids.get(d.id.as_str()) {
                        problems.push(ConfigProblem::with_str(
                            at("id"),
                            &d.id,
                            format!("destinations[{first}] has the same id; destination ids must be unique"),
                        ));
                    } else {
                        ids.insert(&d.id, i);
                        // STS session names keep only the first characters of an id: two ids
                        // that agree there would look the same in the customer's CloudTrail.
                        let session = crate::names::session_name(&d.id, LONGEST_SESSION_LABEL);
                        if let Some(&(first, other)) = sessions.get(&session) {
                            problems.push(ConfigProblem::with_str(
                                at("id"),
                                &d.id,
                                format!(
                                    "destinations[{first}] (id {other:?}) gets the same STS session name {session:?}: session names keep only the first {} characters of an id; make the two ids differ within them",
                                    id_chars_in_session_names()
                                ),
                            ));
                        } else {
                            sessions.insert(session, (i, &d.id));
                        }
                    }
                }
            }
            // Two destinations writing to one place would overwrite each other's files and
            // receipts (a bucket and a folder never collide; a prefix is compared normalized).
            if let (Ok(prefix), true) = (layout::normalize_prefix(&d.prefix), d.bucket.is_some() != d.folder.is_some())
            {
                let endpoint = d.bucket.as_ref().and(d.endpoint_url.as_deref());
                let key = (d.bucket.as_deref(), endpoint, d.folder.as_deref(), prefix);
                if let Some(&first) = locations.get(&key) {
                    let (field, place) = match (&d.bucket, &d.folder) {
                        (Some(bucket), _) => ("bucket", format!("s3://{bucket}/{}", key.3)),
                        (_, Some(folder)) => ("folder", format!("{}/{}", folder.display(), key.3)),
                        _ => ("prefix", key.3.clone()),
                    };
                    problems.push(ConfigProblem::at(
                        at(field),
                        format!(
                            "destinations[{first}] writes to the same place ({place}); each destination needs a bucket (or folder) and prefix of its own, or their files and receipts overwrite each other"
                        ),
                    ));
                } else {
                    locations.insert(key, i);
                }
            }
            if d.tenant.trim().is_empty() {
                problems.push(ConfigProblem::with_str(
                    at("tenant"),
                    &d.tenant,
                    "must not be empty: it selects the rows this destination receives",
                ));
            } else if d.tenant.trim() != d.tenant {
                problems.push(ConfigProblem::with_str(
                    at("tenant"),
                    &d.tenant,
                    "has leading or trailing spaces, which would match no rows",
                ));
            }

            match (&d.bucket, &d.folder) {
                (Some(_), Some(_)) => problems.push(ConfigProblem::at(
                    format!("destinations[{i}]"),
                    "set exactly one of bucket (the customer's S3 bucket) or folder (a local folder standing in for one); both are set",
                )),
                (None, None) => problems.push(ConfigProblem::at(
                    format!("destinations[{i}]"),
                    "set exactly one of bucket (the customer's S3 bucket) or folder (a local folder standing in for one); neither is set",
                )),
                (None, Some(folder)) if folder.as_os_str().is_empty() => {
                    problems.push(ConfigProblem::at(at("folder"), "must not be empty"));
                }
                _ => {}
            }
            if let Some(bucket) = &d.bucket {
                if let Err(e) = check_bucket_name(bucket) {
                    problems.push(ConfigProblem::with_str(at("bucket"), bucket, e));
                }
                if d.role_arn.is_none() {
                    problems.push(ConfigProblem::at(
                        at("role_arn"),
                        "is required for an S3 destination: the customer's role byob assumes to write, e.g. \"arn:aws:iam::123456789012:role/byob-writer\"",
                    ));
                }
                if d.external_id.is_none() {
                    problems.push(ConfigProblem::at(
                        at("external_id"),
                        "is required for an S3 destination: the ExternalId we generated for this customer, which their role's trust policy requires",
                    ));
                }
            }
            if let Some(arn) = &d.role_arn
                && let Err(e) = RoleArn::parse(arn)
            {
                problems.push(ConfigProblem::with_str(at("role_arn"), arn, e));
            }
            if let Some(external_id) = &d.external_id {
                if let Err(e) = check_external_id(external_id) {
                    problems.push(ConfigProblem::with_str(at("external_id"), external_id, e));
                } else if let Some(&(first, tenant)) = external_ids.get(external_id.as_str()) {
                    if tenant != d.tenant {
                        problems.push(ConfigProblem::with_str(
                            at("external_id"),
                            external_id,
                            format!(
                                "destinations[{first}] (tenant {tenant:?}) uses the same ExternalId; it must be unique per customer, or it no longer guards against the confused deputy"
                            ),
                        ));
                    }
                } else {
                    external_ids.insert(external_id, (i, &d.tenant));
                }
                if d.role_arn.is_none() && d.bucket.is_none() {
                    problems
                        .push(ConfigProblem::at(at("external_id"), "is sent when assuming role_arn, which is not set"));
                }
            }
            if let Some(owner) = &d.expected_bucket_owner
                && let Err(e) = check_account_id(owner)
            {
                problems.push(ConfigProblem::with_str(at("expected_bucket_owner"), owner, e));
            }
            if let Some(region) = &d.region
                && let Err(e) = check_region(region)
            {
                problems.push(ConfigProblem::with_str(at("region"), region, e));
            }
            if let Some(url) = &d.endpoint_url
                && let Err(e) = check_endpoint_url(url)
            {
                problems.push(ConfigProblem::with_str(at("endpoint_url"), url, e));
            }
            if let Err(e) = layout::normalize_prefix(&d.prefix) {
                problems.push(ConfigProblem::with_str(at("prefix"), &d.prefix, e.reason()));
            }
            match KeyTemplate::parse(&d.key_template) {
                Err(e) => problems.push(ConfigProblem::with_str(at("key_template"), &d.key_template, e.reason())),
                Ok(template) => match (&d.partition_by, template.has_partition()) {
                    (Some(_), false) => problems.push(ConfigProblem::with_str(
                        at("key_template"),
                        &d.key_template,
                        "has no {partition} while partition_by is set: each partition needs files of its own, e.g. \"{run}/{table}/{partition}/{table}_{shard}.{ext}\"",
                    )),
                    (None, true) => problems.push(ConfigProblem::with_str(
                        at("key_template"),
                        &d.key_template,
                        "uses {partition} but partition_by is not set, e.g. partition_by = { column = \"occurred_at\", grain = \"day\" }",
                    )),
                    _ => {}
                },
            }
            // Only whether the key parses: whether it is usable NOW (expiry, revocation) is
            // checked by this destination's exports and by `byob check`, so one customer's key
            // expiring fails that destination alone, never the whole config (every customer).
            if let Some(key) = &d.pgp_public_key
                && let Err(e) = crate::format::pgp::RecipientKey::parse(key.as_bytes())
            {
                // Never echo the key: the message says what is wrong with it.
                problems.push(ConfigProblem::at(at("pgp_public_key"), e.to_string()));
            }
            let incremental = self.tables.iter().flatten().any(|t| t.mode == TableMode::Incremental);
            if let Some(every) = d.full_every
                && !incremental
            {
                problems.push(ConfigProblem::at(
                    at("full_every"),
                    format!("is \"{every}\" but no table has mode = \"incremental\": every run is already full; leave it out"),
                ));
            }
            if let Some(partition) = &d.partition_by
                && partition.column.trim().is_empty()
            {
                problems.push(ConfigProblem::at(
                    at("partition_by.column"),
                    "must name a date or timestamp column, e.g. \"occurred_at\"",
                ));
            }
            if let Err(e) = d.format.validate() {
                problems.push(ConfigProblem::new(at("format"), serde_json::to_string(&d.format).ok(), e));
            }
            if d.max_file_rows < 1 {
                problems.push(ConfigProblem::with_num(at("max_file_rows"), d.max_file_rows, "must be at least 1"));
            }
            if d.max_file_bytes < ByteSize::mib(1) {
                problems.push(ConfigProblem::with_num(
                    at("max_file_bytes"),
                    d.max_file_bytes.0,
                    format!("is {}; files must be allowed at least 1 MiB (the default is 256 MiB)", d.max_file_bytes),
                ));
            } else if let Some(export) = self.export {
                // A file may exceed max_file_bytes by a row group; keep half of S3's 10,000
                // parts in reserve for that.
                let limit = export.part_size.0.saturating_mul(5_000);
                if d.max_file_bytes.0 > limit {
                    problems.push(ConfigProblem::with_num(
                        at("max_file_bytes"),
                        d.max_file_bytes.0,
                        format!(
                            "is {}; a file must fit in 5,000 upload parts of export.part_size ({}), i.e. at most {}: raise export.part_size or lower max_file_bytes",
                            d.max_file_bytes,
                            export.part_size,
                            ByteSize(limit)
                        ),
                    ));
                }
            }
            if let Some(Encryption::SseKms { kms_key_id }) = &d.encryption
                && (kms_key_id.trim().is_empty() || kms_key_id.contains(char::is_whitespace))
            {
                problems.push(ConfigProblem::with_str(
                    at("encryption.kms_key_id"),
                    kms_key_id,
                    "must be the customer's KMS key id, key ARN, alias or alias ARN, without spaces",
                ));
            }
            validate_tags(i, &d.tags, problems);
            if let Some(subset) = &d.tables {
                if subset.is_empty() {
                    problems.push(ConfigProblem::at(
                        at("tables"),
                        "list at least one table, or leave tables out to send all",
                    ));
                }
                let mut seen = BTreeSet::new();
                for (j, name) in subset.iter().enumerate() {
                    let path = format!("destinations[{i}].tables[{j}]");
                    if !seen.insert(name.as_str()) {
                        problems.push(ConfigProblem::with_str(path, name, "is listed twice"));
                    } else if let Some(known) = &table_names
                        && !known.contains(&name.as_str())
                    {
                        problems.push(ConfigProblem::with_str(
                            path,
                            name,
                            format!("no such table; the configured tables are: {}", known.join(", ")),
                        ));
                    }
                }
            }
        }
    }
}

pub(super) fn validate_source(source: &SourceConfig, problems: &mut Vec<ConfigProblem>) {
    match source {
        SourceConfig::Parquet(p) => {
            if p.path.as_os_str().is_empty() {
                problems
                    .push(ConfigProblem::at("source.path", "must not be empty: the lake's root folder, e.g. \"lake\""));
            }
            check_column(problems, "source.tenant_column".to_owned(), &p.tenant_column);
        }
        SourceConfig::Postgres(p) => {
            match (&p.url, &p.secret) {
                (Some(_), Some(_)) => problems.push(ConfigProblem::at(
                    "source",
                    "set exactly one of url (a connection URL) or secret (a Secrets Manager secret in the RDS format); both are set",
                )),
                (None, None) => problems.push(ConfigProblem::at(
                    "source",
                    "set exactly one of url (e.g. \"postgresql://byob@127.0.0.1:5432/platform\") or secret (a Secrets Manager secret ARN or name in the RDS format); neither is set",
                )),
                _ => {}
            }
            if let Some(url) = &p.url
                && let Err(e) = check_postgres_url(url.expose())
            {
                // Never the value: a URL may carry a password.
                problems.push(ConfigProblem::at("source.url", e));
            }
            if let Some(secret) = &p.secret
                && let Err(e) = check_secret_id(secret)
            {
                problems.push(ConfigProblem::at("source.secret", e));
            }
            if p.schema.is_empty() || p.schema.chars().any(char::is_control) {
                problems.push(ConfigProblem::with_str(
                    "source.schema",
                    &p.schema,
                    "must be a schema name: not empty, no control characters (the default is \"public\")",
                ));
            }
            check_column(problems, "source.tenant_column".to_owned(), &p.tenant_column);
            if let Some(ca_file) = &p.ca_file
                && ca_file.as_os_str().is_empty()
            {
                problems.push(ConfigProblem::at(
                    "source.ca_file",
                    "must not be empty; leave it out to trust the system's roots only",
                ));
            }
        }
    }
}

/// Checks a PostgreSQL connection URL without ever echoing it (it may hold a password).
pub(super) fn check_postgres_url(url: &str) -> Result<(), String> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err("must be a URL starting with postgresql:// or postgres://, e.g. \"postgresql://byob@127.0.0.1:5432/platform\" (the value is not shown: it may hold a password)".to_owned());
    }
    match url.parse::<tokio_postgres::Config>() {
        Err(e) => Err(format!(
            "is not a valid PostgreSQL URL: {} (the value is not shown: it may hold a password)",
            crate::redact::redact_url(&crate::pg::pg_message(&e), url)
        )),
        Ok(config) if config.get_hosts().is_empty() => Err("names no host".to_owned()),
        Ok(config) if config.get_user().is_none_or(str::is_empty) => {
            Err("names no user (postgresql://USER@host/db)".to_owned())
        }
        Ok(_) => Ok(()),
    }
}

/// Checks the shape of a Secrets Manager secret id: a name (1-512 characters of letters,
/// digits and `/_+=.@-`) or an ARN.
pub(super) fn check_secret_id(id: &str) -> Result<(), String> {
    let rule = "a secret is its ARN (arn:aws:secretsmanager:<region>:<account>:secret:<name>) or its name (1-512 characters of letters, digits and /_+=.@-)";
    if let Some(rest) = id.strip_prefix("arn:") {
        let parts: Vec<&str> = rest.splitn(6, ':').collect();
        let ok = parts.len() == 6
            && parts[1] == "secretsmanager"
            && check_region(parts[2]).is_ok()
            && check_account_id(parts[3]).is_ok()
            && parts[4] == "secret"
            && !parts[5].is_empty();
        return if ok { Ok(()) } else { Err(format!("{rule}; this ARN is not a secretsmanager secret ARN")) };
    }
    let len = id.chars().count();
    if (1..=512).contains(&len) && id.chars().all(|c| c.is_ascii_alphanumeric() || "/_+=.@-".contains(c)) {
        Ok(())
    } else {
        Err(rule.to_owned())
    }
}

/// Checks a column name is non-empty and without control characters; returns whether it is.
pub(super) fn check_column(problems: &mut Vec<ConfigProblem>, path: String, column: &str) -> bool {
    if column.trim().is_empty() || column.chars().any(char::is_control) {
        problems.push(ConfigProblem::with_str(path, column, "must be a column name: not empty, no control characters"));
        return false;
    }
    if column.len() > layout::MAX_IDENTIFIER_BYTES {
        problems.push(ConfigProblem::with_str(
            path,
            column,
            "must be at most 63 bytes: warehouses (PostgreSQL) truncate longer names; select it under a shorter alias",
        ));
        return false;
    }
    true
}

pub(super) fn validate_tags(i: usize, tags: &BTreeMap<String, String>, problems: &mut Vec<ConfigProblem>) {
    if tags.len() > MAX_TAGS {
        problems.push(ConfigProblem::at(
            format!("destinations[{i}].tags"),
            format!("has {} tags; S3 allows at most {MAX_TAGS} per object", tags.len()),
        ));
    }
    let allowed = |c: char| c.is_alphanumeric() || c == ' ' || "+-=._:/@".contains(c);
    for (key, value) in tags {
        let path = push_key(format!("destinations[{i}].tags"), key);
        let len = key.chars().count();
        if !(1..=128).contains(&len) || !key.chars().all(allowed) {
            problems.push(ConfigProblem::with_str(
                path.clone(),
                key,
                "tag keys are 1-128 characters of letters, digits, spaces and +-=._:/@",
            ));
        } else if key.starts_with("aws:") {
            problems.push(ConfigProblem::with_str(
                path.clone(),
                key,
                "tag keys starting with \"aws:\" are reserved by AWS",
            ));
        }
        if value.chars().count() > 256 || !value.chars().all(allowed) {
            problems.push(ConfigProblem::with_str(
                path,
                value,
                "tag values are at most 256 characters of letters, digits, spaces and +-=._:/@",
            ));
        }
    }
}

pub(super) fn validate_export(export: &ExportConfig, problems: &mut Vec<ConfigProblem>) {
    if !(1..=256).contains(&export.parallelism) {
        problems.push(ConfigProblem::with_num("export.parallelism", export.parallelism, "must be 1-256 tasks at once"));
    }
    if export.part_size < ByteSize::mib(5) || export.part_size > ByteSize::gib(5) {
        problems.push(ConfigProblem::with_num(
            "export.part_size",
            export.part_size.0,
            format!("is {}; S3 multipart parts are 5 MiB to 5 GiB (the default is 8 MiB)", export.part_size),
        ));
    }
    if export.row_group_bytes < ByteSize::mib(1) || export.row_group_bytes > ByteSize::gib(1) {
        problems.push(ConfigProblem::with_num(
            "export.row_group_bytes",
            export.row_group_bytes.0,
            format!("is {}; row groups are 1 MiB to 1 GiB (the default is 32 MiB)", export.row_group_bytes),
        ));
    }
    if export.gzip_level > 9 {
        problems.push(ConfigProblem::with_num("export.gzip_level", export.gzip_level, "gzip levels are 0-9"));
    }
    let sizes = [
        ("export.upload_bytes_in_flight", export.upload_bytes_in_flight, ByteSize::mib(5), ByteSize::gib(5), "32 MiB"),
        ("export.read_ahead_bytes", export.read_ahead_bytes, ByteSize::mib(1), ByteSize::gib(1), "16 MiB"),
        ("export.upload_queue_bytes", export.upload_queue_bytes, ByteSize::mib(1), ByteSize::gib(1), "16 MiB"),
        ("export.gzip_block_bytes", export.gzip_block_bytes, ByteSize::kib(64), ByteSize::mib(64), "2 MiB"),
    ];
    for (path, value, min, max, default) in sizes {
        if value < min || value > max {
            problems.push(ConfigProblem::with_num(
                path,
                value.0,
                format!("is {value}; it must be {min} to {max} (the default is {default})"),
            ));
        }
    }
    if export.target_rows_per_slice < 1 {
        problems.push(ConfigProblem::with_num(
            "export.target_rows_per_slice",
            export.target_rows_per_slice,
            "must be at least 1",
        ));
    }
}

pub(super) fn validate_aws(aws: &AwsConfig, problems: &mut Vec<ConfigProblem>) {
    if let Some(arn) = &aws.writer_role_arn
        && let Err(e) = RoleArn::parse(arn)
    {
        problems.push(ConfigProblem::with_str("aws.writer_role_arn", arn, e));
    }
    if let Some(region) = &aws.region
        && let Err(e) = check_region(region)
    {
        problems.push(ConfigProblem::with_str("aws.region", region, e));
    }
    if let Some(url) = &aws.endpoint_url
        && let Err(e) = check_endpoint_url(url)
    {
        problems.push(ConfigProblem::with_str("aws.endpoint_url", url, e));
    }
}

/// A table's incremental settings: a watermark for incremental mode, keys and lookback only
/// with one, each a column the table exports.
fn validate_increment(table: &TableConfig, at: &dyn Fn(&str) -> String, problems: &mut Vec<ConfigProblem>) {
    let exported = |column: &str| table.columns.as_ref().is_none_or(|columns| columns.iter().any(|c| c == column));
    match &table.watermark {
        None => {
            if table.mode == TableMode::Incremental {
                problems.push(ConfigProblem::at(
                    at("watermark"),
                    "is required with mode = \"incremental\": the column whose value only grows when a row is written, e.g. watermark = \"updated_at\"",
                ));
            }
            for field in ["primary_key", "lookback"] {
                let set = if field == "lookback" { table.lookback.is_some() } else { table.primary_key.is_some() };
                if set {
                    problems.push(ConfigProblem::at(
                        at(field),
                        "applies only to a table with a watermark (mode = \"incremental\", watermark = \"updated_at\")",
                    ));
                }
            }
        }
        Some(column) => {
            if check_column(problems, at("watermark"), column) && !exported(column) {
                problems.push(ConfigProblem::with_str(
                    at("watermark"),
                    column,
                    "is not in columns: the loader needs the watermark of every row it merges; add it to columns",
                ));
            }
        }
    }
    if let Some(keys) = &table.primary_key {
        if keys.is_empty() {
            problems.push(ConfigProblem::at(
                at("primary_key"),
                "list at least one column, or leave primary_key out for a table whose rows never change",
            ));
        }
        let mut names = BTreeSet::new();
        for (j, column) in keys.iter().enumerate() {
            let path = at(&format!("primary_key[{j}]"));
            if !check_column(problems, path.clone(), column) {
                continue;
            }
            if !names.insert(column.as_str()) {
                problems.push(ConfigProblem::with_str(path, column, "is listed twice; each column appears once"));
            } else if !exported(column) {
                problems.push(ConfigProblem::with_str(
                    path,
                    column,
                    "is not in columns: the loader merges rows by it; add it to columns",
                ));
            }
        }
    }
    if let Some(Lookback::Amount(n)) = table.lookback
        && n <= 0
    {
        problems.push(ConfigProblem::at(
            at("lookback"),
            format!("is {n}; give a positive number (integer watermarks) or a duration such as \"30m\""),
        ));
    }
}
