#![allow(clippy::unwrap_used)]

use super::*;

#[test]
fn bucket_names() {
    for ok in ["abc", "acme-data-exports", "my.bucket.name", "a1b", &"a".repeat(63), "1-2", "192.168.5.4a"] {
        check_bucket_name(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    for (bad, why) in [
        ("ab", "this one has 2"),
        (&"a".repeat(64), "this one has 64"),
        ("My_Bucket", "'M', '_'"),
        ("my bucket", "' '"),
        ("-abc", "starts or ends"),
        ("abc-", "starts or ends"),
        (".abc", "starts or ends"),
        ("a..b", "two adjacent dots"),
        ("192.168.5.4", "IP address"),
        ("xn--abc", "\"xn--\""),
        ("sthree-abc", "\"sthree-\""),
        ("amzn-s3-demo-bucket", "\"amzn-s3-demo-\""),
        ("abc-s3alias", "\"-s3alias\""),
        ("abc--ol-s3", "\"--ol-s3\""),
        ("abc.mrap", "\".mrap\""),
        ("abc--x-s3", "\"--x-s3\""),
        ("abc--table-s3", "\"--table-s3\""),
    ] {
        let e = check_bucket_name(bad).unwrap_err();
        assert!(e.contains(why), "{bad}: {e}");
    }
}

#[test]
fn role_arns() {
    let a = RoleArn::parse("arn:aws:iam::123456789012:role/byob-writer").unwrap();
    assert_eq!((a.account_id.as_str(), a.path.as_str(), a.name.as_str()), ("123456789012", "/", "byob-writer"));
    let b = RoleArn::parse("arn:aws-us-gov:iam::123456789012:role/team/data/byob+w=,.@_-1").unwrap();
    assert_eq!(
        (b.partition.as_str(), b.path.as_str(), b.name.as_str()),
        ("aws-us-gov", "/team/data/", "byob+w=,.@_-1")
    );
    assert_eq!(b.to_string(), "arn:aws-us-gov:iam::123456789012:role/team/data/byob+w=,.@_-1");
    RoleArn::parse("arn:aws-cn:iam::123456789012:role/x").unwrap();
    for (bad, why) in [
        ("", "not an ARN"),
        ("byob-writer", "not an ARN"),
        ("arn:aws:iam::123456789012", "not an ARN"),
        ("arn:gcp:iam::123456789012:role/x", "partition"),
        ("arn:aws:s3::123456789012:role/x", "\"s3\""),
        ("arn:aws:iam:eu-west-1:123456789012:role/x", "no region"),
        ("arn:aws:iam::12345678901:role/x", "12 digits"),
        ("arn:aws:iam::12345678901a:role/x", "12 digits"),
        ("arn:aws:iam::123456789012:user/x", "\"role/...\""),
        ("arn:aws:iam::123456789012:role/", "role name \"\""),
        ("arn:aws:iam::123456789012:role/a b", "role name"),
        (&format!("arn:aws:iam::123456789012:role/{}", "x".repeat(65)), "role name"),
        ("arn:aws:iam::123456789012:role/a//b", "role path"),
    ] {
        let e = RoleArn::parse(bad).unwrap_err();
        assert!(e.contains(why) && e.contains("arn:aws:iam::123456789012:role/byob-writer"), "{bad}: {e}");
    }
}

#[test]
fn external_ids_regions_accounts_endpoints() {
    for ok in ["ab", "byob-acme-7f3e9c2a41d8", "a_b+c=d,e.f@g:h/i-j", &"x".repeat(1224)] {
        check_external_id(ok).unwrap();
    }
    for bad in ["a", "", "has space", "tab\t", "é1", &"x".repeat(1225)] {
        assert!(check_external_id(bad).unwrap_err().contains("2-1224"), "{bad}");
    }
    for ok in ["eu-west-1", "us-east-1", "us-gov-west-1", "ap-southeast-2", "cn-north-1", "me-central-10"] {
        check_region(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    for bad in ["", "eu", "eu-west", "euwest1", "EU-west-1", "eu-west-x", "e-west-1", "eu--1", "eu-west-1-", "eu-1"] {
        assert!(check_region(bad).is_err(), "{bad}");
    }
    check_account_id("123456789012").unwrap();
    for bad in ["", "12345678901", "1234567890123", "12345678901a"] {
        assert!(check_account_id(bad).is_err(), "{bad}");
    }
    for ok in ["http://127.0.0.1:5000", "https://s3.example.com/base"] {
        check_endpoint_url(ok).unwrap();
    }
    for bad in ["127.0.0.1:5000", "http://", "ftp://x", "http://a b", "http:///x"] {
        assert!(check_endpoint_url(bad).is_err(), "{bad}");
    }
}

#[test]
fn sensitive_values_are_never_shown() {
    let p = ConfigProblem::new("source.password", Some("\"hunter2\"".into()), "bad");
    assert_eq!(p.value, None);
    assert!(!p.to_string().contains("hunter2"));
    let p = type_problem("source.db_password".into(), "invalid type: string \"hunter2\", expected u64");
    assert!(!p.to_string().contains("hunter2"), "{p}");
    assert!(ConfigProblem::new("destinations[0].external_id", Some("\"x\"".into()), "m").value.is_some());
}

#[test]
fn paths_quote_unusual_keys() {
    assert_eq!(push_key(String::new(), "export"), "export");
    assert_eq!(push_key("destinations[0].tags".into(), "cost center"), "destinations[0].tags.\"cost center\"");
}
