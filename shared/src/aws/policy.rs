//! The IAM policies a destination needs, as `byob iam-policy` prints them.
//!
//! - The customer's **trust policy**: our writer role (`aws.writer_role_arn`) is the only
//!   principal, and only with the destination's ExternalId (the confused-deputy guard).
//! - The customer's **permission policy**: `s3:PutObject` on `<bucket>/<prefix>/*` only (it
//!   also authorizes CreateMultipartUpload, UploadPart and CompleteMultipartUpload), plus
//!   `s3:AbortMultipartUpload` on the same objects so a failed upload is cleaned up at once
//!   instead of leaving billed parts until a lifecycle rule removes them (it can only discard
//!   unfinished uploads, never a finished object), plus `s3:PutObjectAcl` when
//!   `bucket_owner_full_control` is set and `s3:PutObjectTagging` when tags are set (S3
//!   requires both for those headers), plus `kms:GenerateDataKey` and `kms:Decrypt` on their
//!   key with SSE-KMS (GenerateDataKey encrypts each object; S3 needs Decrypt to reuse the data
//!   key across the parts of a multipart upload).
//! - Our **writer role's policy**: `sts:AssumeRole` on exactly the customer roles of the
//!   configured S3 destinations; and our **execution role's policy**: `sts:AssumeRole` on the
//!   writer role, plus, when the source is a Parquet lake in S3, `s3:ListBucket` on the lake's
//!   bucket limited to its prefixes (`s3:prefix`) and `s3:GetObject` on the objects under them
//!   ([`lake_read_statements`]).
//!
//! This module must never grant a read, list, head or delete on a customer's bucket: nothing
//! byob does there needs one. The only reads it grants are our own role's, on our own lake.

use serde_json::{Value, json};

use super::AwsError;
use crate::config::{Config, DestinationConfig, Encryption, RoleArn};

/// The policies of one destination.
#[derive(Clone, Debug, PartialEq)]
pub struct DestinationPolicies {
    /// The destination id.
    pub destination: String,
    /// The customer's role (`destinations[].role_arn`).
    pub customer_role_arn: String,
    /// The customer role's trust policy.
    pub customer_trust_policy: Value,
    /// The customer role's permission policy.
    pub customer_permission_policy: Value,
    /// Our writer role (`aws.writer_role_arn`).
    pub writer_role_arn: String,
    /// Our writer role's permission policy.
    pub writer_role_policy: Value,
    /// Our execution roles' permission policy (the Lambda functions, `byob run`).
    pub execution_role_policy: Value,
}

impl DestinationPolicies {
    /// Everything as one JSON document, each policy a complete IAM policy document.
    pub fn to_json(&self) -> Value {
        json!({
            "destination": self.destination,
            "customer_role_arn": self.customer_role_arn,
            "customer_trust_policy": self.customer_trust_policy,
            "customer_permission_policy": self.customer_permission_policy,
            "writer_role_arn": self.writer_role_arn,
            "writer_role_policy": self.writer_role_policy,
            "execution_role_policy": self.execution_role_policy,
        })
    }
}

/// The policies of destination `id` of `config`. Needs `aws.writer_role_arn` (the principal
/// the customer trusts) and a destination with `bucket`, `role_arn` and `external_id`.
pub fn for_destination(config: &Config, id: &str) -> Result<DestinationPolicies, AwsError> {
    let problem = |reason: String| AwsError::Destination { destination: id.to_owned(), reason };
    let destination = config.destination(id).ok_or_else(|| {
        let ids: Vec<&str> = config.destinations.iter().map(|d| d.id.as_str()).collect();
        problem(format!("no such destination; the configured ones are: {}", ids.join(", ")))
    })?;
    let writer = config.aws.writer_role_arn.clone().ok_or_else(|| {
        problem("aws.writer_role_arn is not set: the customer's trust policy names that one stable role of ours".into())
    })?;
    let role_arn =
        destination.role_arn.clone().ok_or_else(|| problem("has no role_arn (the customer's role)".into()))?;
    let external_id = destination
        .external_id
        .clone()
        .ok_or_else(|| problem("has no external_id (we generate one per customer)".into()))?;
    let customer_roles: Vec<String> =
        config.destinations.iter().filter(|d| d.bucket.is_some()).filter_map(|d| d.role_arn.clone()).collect();
    Ok(DestinationPolicies {
        destination: id.to_owned(),
        customer_trust_policy: trust_policy(&writer, &external_id),
        customer_permission_policy: permission_policy(destination, config.aws.region.as_deref())?,
        writer_role_policy: assume_role_policy("ByobAssumeCustomerRoles", &customer_roles),
        execution_role_policy: execution_role_policy(config, &writer),
        customer_role_arn: role_arn,
        writer_role_arn: writer,
    })
}

/// A trust policy letting `principal_role_arn` assume the role only with `external_id`.
pub fn trust_policy(principal_role_arn: &str, external_id: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "ByobWriterWithExternalId",
            "Effect": "Allow",
            "Principal": {"AWS": principal_role_arn},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": external_id}}
        }]
    })
}

/// A policy allowing `sts:AssumeRole` on exactly `roles` (sorted, without duplicates).
pub fn assume_role_policy(sid: &str, roles: &[String]) -> Value {
    let mut roles = roles.to_vec();
    roles.sort();
    roles.dedup();
    json!({
        "Version": "2012-10-17",
        "Statement": [{"Sid": sid, "Effect": "Allow", "Action": "sts:AssumeRole", "Resource": roles}]
    })
}

/// Our execution role's policy: assume the writer role; read the lake when it is in S3.
fn execution_role_policy(config: &Config, writer: &str) -> Value {
    let mut policy = assume_role_policy("ByobAssumeWriterRole", &[writer.to_owned()]);
    let partition = writer.split(':').nth(1).filter(|p| !p.is_empty()).unwrap_or("aws");
    if let Some(statements) = policy["Statement"].as_array_mut() {
        statements.extend(lake_read_statements(config, partition));
    }
    policy
}

/// What reading a Parquet lake in S3 needs, and nothing more: `s3:ListBucket` on each lake
/// bucket with an `s3:prefix` condition naming the lake's prefixes, and `s3:GetObject` on the
/// objects under them. A prefix ends where a table path's `{tenant}` begins. None when the
/// source is not a lake in S3.
pub fn lake_read_statements(config: &Config, partition: &str) -> Vec<Value> {
    let crate::config::SourceConfig::Parquet(lake) = &config.source else { return Vec::new() };
    let root = lake.path.display().to_string();
    let mut locations = vec![root.clone()];
    for table in &config.tables {
        match &table.path {
            Some(path) => locations.push(path.display().to_string()),
            None => locations.push(format!("{}/{}", root.trim_end_matches('/'), table.name)),
        }
    }
    // bucket -> object patterns: `prefix/*` for a folder, the key itself for one file, and
    // `...tenant_id=*` where a `{tenant}` folder begins.
    let mut buckets: std::collections::BTreeMap<String, Vec<String>> = std::collections::BTreeMap::new();
    for location in locations {
        let Some(rest) = location.strip_prefix("s3://") else { continue };
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        let pattern = match key.split_once("{tenant}") {
            Some((before, _)) => format!("{before}*"),
            None if key.ends_with(".parquet") => key.to_owned(),
            None if key.is_empty() => "*".to_owned(),
            None => format!("{}/*", key.trim_end_matches('/')),
        };
        buckets.entry(bucket.to_owned()).or_default().push(pattern);
    }
    let mut statements = Vec::new();
    for (bucket, mut patterns) in buckets {
        patterns.sort();
        patterns.dedup();
        // A pattern another `.../*` pattern already covers is dropped.
        let covered =
            |p: &String| patterns.iter().any(|q| q != p && q.ends_with('*') && p.starts_with(q.trim_end_matches('*')));
        let kept: Vec<String> = patterns.iter().filter(|p| !covered(p)).cloned().collect();
        let objects: Vec<String> = kept.iter().map(|p| format!("arn:{partition}:s3:::{bucket}/{p}")).collect();
        let sid = |what: &str| format!("ByobLake{what}{}", bucket.replace(|c: char| !c.is_ascii_alphanumeric(), ""));
        statements.push(json!({
            "Sid": sid("List"),
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": format!("arn:{partition}:s3:::{bucket}"),
            "Condition": {"StringLike": {"s3:prefix": kept}}
        }));
        statements.push(json!({"Sid": sid("Read"), "Effect": "Allow", "Action": "s3:GetObject", "Resource": objects}));
    }
    statements
}

/// The objects byob writes: `arn:<partition>:s3:::<bucket>/<prefix>/*`.
pub fn objects_arn(partition: &str, bucket: &str, prefix: &str) -> String {
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() {
        format!("arn:{partition}:s3:::{bucket}/*")
    } else {
        format!("arn:{partition}:s3:::{bucket}/{prefix}/*")
    }
}

/// The customer role's permission policy for `destination` (see the module documentation).
/// `default_region` places a bare KMS key id or alias when the destination has no region.
pub fn permission_policy(destination: &DestinationConfig, default_region: Option<&str>) -> Result<Value, AwsError> {
    let problem =
        |reason: &str| AwsError::Destination { destination: destination.id.clone(), reason: reason.to_owned() };
    let bucket = destination.bucket.as_deref().ok_or_else(|| problem("has no bucket"))?;
    let role = destination.role_arn.as_deref().ok_or_else(|| problem("has no role_arn"))?;
    let role = RoleArn::parse(role).map_err(|e| problem(&e))?;
    let account = destination.bucket_owner().unwrap_or_else(|| role.account_id.clone());
    let mut actions = vec!["s3:PutObject", "s3:AbortMultipartUpload"];
    if destination.bucket_owner_full_control {
        actions.push("s3:PutObjectAcl");
    }
    if !destination.tags.is_empty() {
        actions.push("s3:PutObjectTagging");
    }
    let mut statements = vec![json!({
        "Sid": "ByobWriteObjects",
        "Effect": "Allow",
        "Action": actions,
        "Resource": objects_arn(&role.partition, bucket, &destination.prefix),
    })];
    if let Some(Encryption::SseKms { kms_key_id }) = &destination.encryption {
        let region = destination.region.as_deref().or(default_region).unwrap_or("*");
        let mut statement = json!({
            "Sid": "ByobEncryptWithYourKey",
            "Effect": "Allow",
            "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
        });
        let (resource, alias) = kms_resource(&role.partition, region, &account, kms_key_id);
        statement["Resource"] = json!(resource);
        if let Some(alias) = alias {
            statement["Condition"] = json!({"ForAnyValue:StringEquals": {"kms:ResourceAliases": alias}});
        }
        statements.push(statement);
    }
    Ok(json!({"Version": "2012-10-17", "Statement": statements}))
}

/// The KMS resource for a key given as key ARN, alias ARN, `alias/name` or key id: a key ARN,
/// or (for aliases, which IAM cannot name as a resource) every key of the account with a
/// `kms:ResourceAliases` condition.
fn kms_resource(partition: &str, region: &str, account: &str, key: &str) -> (String, Option<String>) {
    if let Some(rest) = key.strip_prefix("arn:") {
        // arn:<partition>:kms:<region>:<account>:key/<id> or ...:alias/<name>
        let parts: Vec<&str> = rest.splitn(5, ':').collect();
        if let [p, "kms", r, a, resource] = parts.as_slice()
            && let Some(name) = resource.strip_prefix("alias/")
        {
            return (format!("arn:{p}:kms:{r}:{a}:key/*"), Some(format!("alias/{name}")));
        }
        return (key.to_owned(), None);
    }
    if key.starts_with("alias/") {
        return (format!("arn:{partition}:kms:{region}:{account}:key/*"), Some(key.to_owned()));
    }
    (format!("arn:{partition}:kms:{region}:{account}:key/{key}"), None)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn destination() -> DestinationConfig {
        let mut d = DestinationConfig::local("acme", "acme", "x");
        d.folder = None;
        d.bucket = Some("acme-data".into());
        d.prefix = "exports/byob".into();
        d.role_arn = Some("arn:aws:iam::222233334444:role/byob-writer".into());
        d.external_id = Some("byob-acme-7f3e".into());
        d
    }

    fn actions(policy: &Value) -> Vec<String> {
        policy["Statement"][0]["Action"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_owned()).collect()
    }

    #[test]
    fn the_lake_is_read_only_under_its_prefixes() {
        let text = "[source]\ntype = \"parquet\"\npath = \"s3://platform-lake/lake\"\n\n\
                    [[tables]]\nname = \"events\"\npath = \"s3://platform-lake/by-tenant/events/tenant_id={tenant}/\"\n\n\
                    [[tables]]\nname = \"companies\"\n\n\
                    [[tables]]\nname = \"ads\"\npath = \"s3://ads-archive/2024/ads.parquet\"\n\n\
                    [[destinations]]\nid = \"acme\"\ntenant = \"acme\"\nfolder = \"out\"\n";
        let config = Config::from_toml_str(text, std::path::Path::new("/tmp")).unwrap();
        let statements = lake_read_statements(&config, "aws");
        assert_eq!(
            Value::Array(statements),
            json!([
                {"Sid": "ByobLakeListadsarchive", "Effect": "Allow", "Action": "s3:ListBucket",
                 "Resource": "arn:aws:s3:::ads-archive", "Condition": {"StringLike": {"s3:prefix": ["2024/ads.parquet"]}}},
                {"Sid": "ByobLakeReadadsarchive", "Effect": "Allow", "Action": "s3:GetObject",
                 "Resource": ["arn:aws:s3:::ads-archive/2024/ads.parquet"]},
                {"Sid": "ByobLakeListplatformlake", "Effect": "Allow", "Action": "s3:ListBucket",
                 "Resource": "arn:aws:s3:::platform-lake",
                 "Condition": {"StringLike": {"s3:prefix": ["by-tenant/events/tenant_id=*", "lake/*"]}}},
                {"Sid": "ByobLakeReadplatformlake", "Effect": "Allow", "Action": "s3:GetObject",
                 "Resource": ["arn:aws:s3:::platform-lake/by-tenant/events/tenant_id=*", "arn:aws:s3:::platform-lake/lake/*"]},
            ])
        );
        // A local lake needs nothing.
        let local = Config::from_toml_str(&text.replace("s3://", "/data/"), std::path::Path::new("/tmp")).unwrap();
        assert!(lake_read_statements(&local, "aws").is_empty());
    }

    #[test]
    fn the_permission_policy_is_put_only_on_the_prefix() {
        let p = permission_policy(&destination(), None).unwrap();
        assert_eq!(actions(&p), ["s3:PutObject", "s3:AbortMultipartUpload"]);
        assert_eq!(p["Statement"][0]["Resource"], "arn:aws:s3:::acme-data/exports/byob/*");
        assert_eq!(p["Statement"].as_array().unwrap().len(), 1);
        let text = p.to_string();
        for forbidden in ["GetObject", "ListBucket", "DeleteObject", "s3:*", "HeadObject"] {
            assert!(!text.contains(forbidden), "{forbidden} in {text}");
        }

        let mut d = destination();
        d.prefix = String::new();
        d.bucket_owner_full_control = true;
        d.tags.insert("team".into(), "data".into());
        let p = permission_policy(&d, None).unwrap();
        assert_eq!(actions(&p), ["s3:PutObject", "s3:AbortMultipartUpload", "s3:PutObjectAcl", "s3:PutObjectTagging"]);
        assert_eq!(p["Statement"][0]["Resource"], "arn:aws:s3:::acme-data/*");
    }

    #[test]
    fn sse_kms_adds_generate_data_key_and_decrypt_on_the_key() {
        let cases = [
            (
                "arn:aws:kms:eu-west-1:222233334444:key/1234abcd",
                "arn:aws:kms:eu-west-1:222233334444:key/1234abcd",
                None,
            ),
            ("1234abcd", "arn:aws:kms:eu-west-1:222233334444:key/1234abcd", None),
            ("alias/exports", "arn:aws:kms:eu-west-1:222233334444:key/*", Some("alias/exports")),
            (
                "arn:aws:kms:eu-west-1:222233334444:alias/exports",
                "arn:aws:kms:eu-west-1:222233334444:key/*",
                Some("alias/exports"),
            ),
        ];
        for (key, resource, alias) in cases {
            let mut d = destination();
            d.region = Some("eu-west-1".into());
            d.encryption = Some(Encryption::SseKms { kms_key_id: key.into() });
            let p = permission_policy(&d, None).unwrap();
            let kms = &p["Statement"][1];
            assert_eq!(kms["Action"], json!(["kms:GenerateDataKey", "kms:Decrypt"]));
            assert_eq!(kms["Resource"], resource, "{key}");
            assert_eq!(kms["Condition"]["ForAnyValue:StringEquals"]["kms:ResourceAliases"].as_str(), alias, "{key}");
        }
    }

    #[test]
    fn trust_and_assume_role_policies() {
        let t = trust_policy("arn:aws:iam::111122223333:role/byob-destination-writer", "byob-acme-7f3e");
        let s = &t["Statement"][0];
        assert_eq!(s["Principal"]["AWS"], "arn:aws:iam::111122223333:role/byob-destination-writer");
        assert_eq!(s["Action"], "sts:AssumeRole");
        assert_eq!(s["Condition"]["StringEquals"]["sts:ExternalId"], "byob-acme-7f3e");
        let w = assume_role_policy("S", &["b".into(), "a".into(), "b".into()]);
        assert_eq!(w["Statement"][0]["Resource"], json!(["a", "b"]));
    }
}
