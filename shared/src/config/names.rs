//! AWS name rules the config checks: buckets, role ARNs, accounts, ExternalIds, regions,
//! endpoints.

#[allow(unused_imports)]
use super::*;

// ---------------------------------------------------------------------------------------------
// AWS names
// ---------------------------------------------------------------------------------------------

pub(super) const BUCKET_RULE: &str = "bucket names are 3-63 characters of lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit";

/// Checks an S3 general purpose bucket name against AWS's naming rules; the message says
/// which rule is broken and what is allowed.
pub fn check_bucket_name(name: &str) -> Result<(), String> {
    let len = name.chars().count();
    if !(3..=63).contains(&len) {
        return Err(format!("{BUCKET_RULE}; this one has {len}"));
    }
    let bad: BTreeSet<char> =
        name.chars().filter(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '.' || *c == '-')).collect();
    if !bad.is_empty() {
        let listed: Vec<String> = bad.iter().map(|c| format!("{c:?}")).collect();
        return Err(format!("{BUCKET_RULE}; this one contains {}", listed.join(", ")));
    }
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !alnum(name.chars().next()) || !alnum(name.chars().last()) {
        return Err(format!("{BUCKET_RULE}; this one starts or ends with a symbol"));
    }
    if name.contains("..") {
        return Err("bucket names must not contain two adjacent dots".to_owned());
    }
    let labels: Vec<&str> = name.split('.').collect();
    if labels.len() == 4 && labels.iter().all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit())) {
        return Err("bucket names must not be formatted as an IP address (e.g. 192.168.5.4)".to_owned());
    }
    for prefix in ["xn--", "sthree-", "amzn-s3-demo-"] {
        if name.starts_with(prefix) {
            return Err(format!("bucket names must not start with {prefix:?} (reserved by AWS)"));
        }
    }
    for suffix in ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"] {
        if name.ends_with(suffix) {
            return Err(format!(
                "bucket names must not end with {suffix:?} (reserved by AWS for access points and special buckets)"
            ));
        }
    }
    Ok(())
}

pub(super) const ROLE_ARN_RULE: &str = "a role ARN looks like arn:aws:iam::123456789012:role/byob-writer: partition aws, aws-cn or aws-us-gov, a 12-digit account id, an optional /path/ and a role name of 1-64 letters, digits and +=,.@_-";

/// An IAM role ARN, `arn:<partition>:iam::<account>:role/<path/><name>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RoleArn {
    /// `aws`, `aws-cn` or `aws-us-gov`.
    pub partition: String,
    /// The 12-digit account that owns the role.
    pub account_id: String,
    /// The role's path, `/` or `/a/b/`.
    pub path: String,
    /// The role's name.
    pub name: String,
}

impl RoleArn {
    /// Parses and checks a role ARN; the message says what is wrong and what is allowed.
    pub fn parse(arn: &str) -> Result<RoleArn, String> {
        let err = |what: &str| format!("{what}; {ROLE_ARN_RULE}");
        let mut parts = arn.splitn(6, ':');
        let (Some("arn"), Some(partition), Some(service), Some(region), Some(account), Some(resource)) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(err("this is not an ARN"));
        };
        if !["aws", "aws-cn", "aws-us-gov"].contains(&partition) {
            return Err(err(&format!("unknown partition {partition:?}")));
        }
        if service != "iam" {
            return Err(err(&format!("the service is {service:?}, not \"iam\"")));
        }
        if !region.is_empty() {
            return Err(err("IAM ARNs have no region (\"iam::\")"));
        }
        check_account_id(account).map_err(|e| err(&e))?;
        let Some(rest) = resource.strip_prefix("role/") else {
            return Err(err("the resource is not \"role/...\""));
        };
        let (inner, name) = rest.rsplit_once('/').unwrap_or(("", rest));
        let path = if inner.is_empty() { "/".to_owned() } else { format!("/{inner}/") };
        let segment_ok = |seg: &str| !seg.is_empty() && seg.chars().all(|c| ('!'..='~').contains(&c));
        if path.len() > 512 || (!inner.is_empty() && !inner.split('/').all(segment_ok)) {
            return Err(err(&format!(
                "the role path {path:?} is invalid (segments of printable ASCII between single '/', at most 512 characters)"
            )));
        }
        let name_ok = |c: char| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c);
        if name.is_empty() || name.len() > 64 || !name.chars().all(name_ok) {
            return Err(err(&format!("the role name {name:?} is invalid")));
        }
        Ok(RoleArn { partition: partition.to_owned(), account_id: account.to_owned(), path, name: name.to_owned() })
    }
}

impl fmt::Display for RoleArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "arn:{}:iam::{}:role{}{}", self.partition, self.account_id, self.path, self.name)
    }
}

impl FromStr for RoleArn {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RoleArn::parse(s)
    }
}

/// Checks a 12-digit AWS account id.
pub fn check_account_id(s: &str) -> Result<(), String> {
    if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err("an AWS account id is exactly 12 digits, e.g. \"123456789012\"".to_owned())
    }
}

/// Checks an STS ExternalId: 2-1224 characters of letters, digits and `_+=,.@:/-`.
pub fn check_external_id(s: &str) -> Result<(), String> {
    let rule = "an ExternalId is 2-1224 characters of letters, digits and _+=,.@:/- (e.g. \"byob-acme-7f3e9c2a41d8\"), unique per customer";
    let len = s.chars().count();
    if !(2..=1224).contains(&len) {
        return Err(format!("{rule}; this one has {len}"));
    }
    if let Some(c) = s.chars().find(|c| !(c.is_ascii_alphanumeric() || "_+=,.@:/-".contains(*c))) {
        return Err(format!("{rule}; this one contains {c:?}"));
    }
    Ok(())
}

/// Checks the shape of an AWS region name: `[a-z]{2}(-[a-z]+)+-\d+`, e.g. `eu-west-1`,
/// `us-gov-west-1`.
pub fn check_region(s: &str) -> Result<(), String> {
    let rule = || {
        "a region looks like \"eu-west-1\" or \"us-gov-west-1\": two letters, one or more -words, then -digits"
            .to_owned()
    };
    let parts: Vec<&str> = s.split('-').collect();
    let (Some((last, middle)), Some(first)) = (parts.split_last(), parts.first()) else {
        return Err(rule());
    };
    let first_ok = first.len() == 2 && first.bytes().all(|b| b.is_ascii_lowercase());
    let words = &middle[1.min(middle.len())..];
    let middle_ok =
        !words.is_empty() && words.iter().all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()));
    let last_ok = !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit());
    if parts.len() >= 3 && first_ok && middle_ok && last_ok { Ok(()) } else { Err(rule()) }
}

/// Checks an endpoint URL: `http://` or `https://`, a host, no spaces.
pub fn check_endpoint_url(s: &str) -> Result<(), String> {
    let rest = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.starts_with('/') && !s.contains(char::is_whitespace) => Ok(()),
        _ => Err("an endpoint is an http:// or https:// URL, e.g. \"http://127.0.0.1:5000\"".to_owned()),
    }
}
