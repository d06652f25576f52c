//! AWS Signature Version 4 in the `Authorization` header, the form every
//! S3-compatible server accepts for every operation (a presigned URL's
//! query form is refused for some operations by some servers, and some
//! servers do not check it at all). Every header sent is signed, and the
//! payload's SHA-256: bodies are parts of at most a few MiB held in memory.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use super::config::Credentials;

/// The SHA-256 of a payload, as lowercase hex.
pub fn payload_hash(body: &[u8]) -> String {
    hex(&Sha256::digest(body))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// Percent-encodes a URI path as SigV4 wants it for S3: every byte but the
/// unreserved characters and `/`.
pub fn encode_path(path: &str) -> String {
    path.split('/')
        .map(crate::percent::encode)
        .collect::<Vec<_>>()
        .join("/")
}

/// The canonical query string: names and values encoded, sorted.
pub fn canonical_query(query: &[(&str, String)]) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (crate::percent::encode(k), crate::percent::encode(v)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// `YYYYMMDDTHHMMSSZ` for a time in seconds since 1970 (UTC).
pub fn amz_date(unix: u64) -> String {
    let days = i64::try_from(unix / 86_400).unwrap_or(0);
    let (y, m, d) = crate::calendar::civil(days);
    let secs = unix % 86_400;
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// One request to sign.
pub struct Request<'a> {
    /// `GET`, `PUT`, ...
    pub method: &'a str,
    /// The encoded path (`/bucket/key` or `/key`).
    pub path: &'a str,
    /// The canonical query string.
    pub query: &'a str,
    /// Headers, names lowercase, including `host`, `x-amz-date` and
    /// `x-amz-content-sha256`.
    pub headers: &'a [(String, String)],
    /// The payload's SHA-256, hex.
    pub payload: &'a str,
}

/// The `Authorization` header's value for `request`, made at `date`
/// (`amz_date`) in `region`.
pub fn authorization(
    request: &Request<'_>,
    credentials: &Credentials,
    region: &str,
    date: &str,
) -> String {
    let mut headers: Vec<(String, String)> = request
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    headers.sort();
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
    let signed = signed.join(";");
    let canonical = format!(
        "{}\n{}\n{}\n{canonical_headers}\n{signed}\n{}",
        request.method, request.path, request.query, request.payload
    );
    let day = &date[..8];
    let scope = format!("{day}/{region}/s3/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let key = hmac(format!("AWS4{}", credentials.secret_key).as_bytes(), day);
    let key = hmac(&key, region);
    let key = hmac(&key, "s3");
    let key = hmac(&key, "aws4_request");
    let signature = hex(&hmac(&key, &to_sign));
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
        credentials.access_key
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The GET Object example of AWS's Signature Version 4 documentation
    /// for S3 (header authorization).
    #[test]
    fn signs_the_documented_example() {
        let credentials = Credentials {
            access_key: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            token: None,
        };
        let empty = payload_hash(b"");
        let headers = vec![
            (
                "host".to_string(),
                "examplebucket.s3.amazonaws.com".to_string(),
            ),
            ("range".to_string(), "bytes=0-9".to_string()),
            ("x-amz-content-sha256".to_string(), empty.clone()),
            ("x-amz-date".to_string(), "20130524T000000Z".to_string()),
        ];
        let request = Request {
            method: "GET",
            path: "/test.txt",
            query: "",
            headers: &headers,
            payload: &empty,
        };
        let header = authorization(&request, &credentials, "us-east-1", "20130524T000000Z");
        assert_eq!(
            header,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn dates_paths_and_queries() {
        assert_eq!(amz_date(1_369_353_600), "20130524T000000Z");
        assert_eq!(amz_date(1_700_000_000), "20231114T221320Z");
        assert_eq!(encode_path("/b/a dir/x+y.csv"), "/b/a%20dir/x%2By.csv");
        assert_eq!(
            canonical_query(&[("uploadId", "a/b".into()), ("partNumber", "2".into())]),
            "partNumber=2&uploadId=a%2Fb"
        );
    }
}
