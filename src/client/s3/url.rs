//! `s3://bucket/key` addresses: the bucket and the key (or a prefix, or a
//! glob over keys).

use anyhow::Result;

use crate::error::usage;

/// An object (or a prefix) named by an `s3://` address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectUrl {
    /// The bucket.
    pub bucket: String,
    /// The key, prefix or pattern after the bucket (may be empty).
    pub key: String,
}

/// Is `text` an `s3://` address?
pub fn is_url(text: &str) -> bool {
    text.get(..5)
        .is_some_and(|s| s.eq_ignore_ascii_case("s3://"))
}

/// Does `text` name a prefix rather than an object: an `s3://` address
/// with a key whose last part has no file extension
/// (`s3://bucket/lake/orders`, `s3://bucket/lake/orders/`) and no glob?
/// Such an address is a dataset's.
pub fn names_prefix(text: &str) -> bool {
    is_url(text)
        && ObjectUrl::parse(text).is_ok_and(|url| {
            let key = url.key.trim_end_matches('/');
            let last = key.rsplit('/').next().unwrap_or_default();
            !key.is_empty() && !last.contains('.') && !key.contains(['*', '?', '['])
        })
}

impl ObjectUrl {
    /// Parses `s3://bucket/key`; credentials in the address are refused
    /// (they belong in AWS_* variables or a profile).
    pub fn parse(text: &str) -> Result<ObjectUrl> {
        let rest = text
            .get(5..)
            .filter(|_| is_url(text))
            .ok_or_else(|| usage("an object storage address starts with s3://"))?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.contains('@') || bucket.contains(':') {
            return Err(usage(
                "an s3:// address names a bucket and a key, no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE",
            ));
        }
        let valid = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
        if !valid {
            return Err(usage(format!(
                "s3://{bucket}: a bucket name is 3 to 63 lowercase letters, digits, dots and hyphens"
            )));
        }
        Ok(ObjectUrl {
            bucket: bucket.to_string(),
            key: key.to_string(),
        })
    }

    /// The address as given, for messages.
    pub fn shown(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bucket_and_key() {
        let u = ObjectUrl::parse("s3://my-bucket/in/2024/*.csv.gz").unwrap();
        assert_eq!(
            (u.bucket.as_str(), u.key.as_str()),
            ("my-bucket", "in/2024/*.csv.gz")
        );
        assert_eq!(ObjectUrl::parse("S3://abc").unwrap().key, "");
        assert!(ObjectUrl::parse("s3://AK:secret@b/k").is_err());
        assert!(ObjectUrl::parse("s3://Bad_Bucket/k").is_err());
        assert!(is_url("s3://x") && !is_url("s3:/x") && !is_url("./s3://x"));
        assert!(names_prefix("s3://abc/lake/orders") && names_prefix("s3://abc/lake/"));
        assert!(!names_prefix("s3://abc/lake/o.csv") && !names_prefix("s3://abc/in/*"));
        assert!(!names_prefix("s3://abc/") && !names_prefix("/tmp/x"));
    }
}
