//! An S3 client (AWS and S3-compatible servers: MinIO, R2, Ceph, moto):
//! listing with continuation tokens, ranged and streamed reads, writes
//! with conditions, multipart uploads, deletes. Blocking HTTP through
//! `ureq` (rustls), requests signed with Signature Version 4 in their
//! header (`sign.rs`); where it connects and with which keys is settled
//! as the AWS tools settle it (`config.rs`). Plumbing: it knows no store.
//!
//! No secret reaches a message: errors name the operation, `s3://bucket/key`,
//! the HTTP status and S3's error code and message, never a header, a
//! signature or a key.

pub mod config;
pub mod multipart;
pub mod read;
pub mod sign;
pub mod url;
pub mod xml;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use ureq::Agent;

pub use config::{Credentials, Settings};
pub use url::ObjectUrl;

use crate::error::{Failure, Kind};

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Its key.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its ETag, quotes included, as S3 gives it.
    pub etag: String,
    /// When it was written, in seconds since 1970 (listings only).
    pub modified: Option<i64>,
}

/// Why a request did not succeed.
#[derive(Debug, Clone)]
pub enum Refusal {
    /// The server answered with an error status.
    Refused {
        /// The HTTP status.
        status: u16,
        /// S3's error code (`NoSuchBucket`), or the status's name when the
        /// answer had no body (a HEAD).
        code: String,
        /// S3's message, if any.
        message: String,
    },
    /// The request did not get an answer (connection, TLS, timeout).
    Transport(String),
}

impl Refusal {
    /// S3's error code, if the server answered.
    pub fn code(&self) -> Option<&str> {
        match self {
            Refusal::Refused { code, .. } => Some(code),
            Refusal::Transport(_) => None,
        }
    }
}

/// A request's condition on the object's current version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// None: write whatever is there.
    None,
    /// Only if no object has the key (`If-None-Match: *`).
    Absent,
    /// Only if the object's ETag is this one (`If-Match`).
    Matches(String),
}

/// A body to send.
type Body<'a> = &'a [u8];

/// An S3 client for one bucket.
#[derive(Clone)]
pub struct Client {
    agent: Agent,
    settings: Settings,
    bucket: String,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Client(s3://{})", self.bucket)
    }
}

/// What a request asks.
struct Call<'a> {
    method: &'a str,
    key: Option<&'a str>,
    query: Vec<(&'a str, String)>,
    headers: Vec<(&'a str, String)>,
    body: Body<'a>,
}

impl Client {
    /// A client for `bucket` with `settings`.
    pub fn new(settings: Settings, bucket: &str) -> Client {
        let config = Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(300)))
            .user_agent(format!("etlkit/{}", env!("CARGO_PKG_VERSION")))
            .max_redirects(0);
        Client {
            agent: config.build().into(),
            settings,
            bucket: bucket.to_string(),
        }
    }

    /// A client for the bucket of `url`, configured from the environment
    /// and the AWS profile files.
    pub fn from_env(url: &ObjectUrl) -> Result<Client> {
        let settings = Settings::from_env(&|name| std::env::var(name).ok())?;
        Ok(Client::new(settings, &url.bucket))
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// `s3://bucket/key` (or the bucket alone), for messages.
    pub fn shown(&self, key: Option<&str>) -> String {
        match key {
            Some(key) => format!("s3://{}/{key}", self.bucket),
            None => format!("s3://{}", self.bucket),
        }
    }

    /// The host and the encoded path of a request for `key` (None: the bucket).
    fn host_and_path(&self, key: Option<&str>) -> (String, String, String) {
        let key_path = key.map(sign::encode_path).unwrap_or_default();
        let (base, host, path) = match &self.settings.endpoint {
            Some(endpoint) if self.settings.path_style => {
                let host = endpoint
                    .split_once("://")
                    .map_or("", |(_, h)| h)
                    .to_string();
                (endpoint.clone(), host, format!("/{}", self.bucket))
            }
            Some(endpoint) => {
                let (scheme, host) = endpoint.split_once("://").unwrap_or(("https", endpoint));
                let host = format!("{}.{host}", self.bucket);
                (format!("{scheme}://{host}"), host, String::new())
            }
            None if self.settings.path_style || self.bucket.contains('.') => {
                let host = format!("s3.{}.amazonaws.com", self.settings.region);
                (format!("https://{host}"), host, format!("/{}", self.bucket))
            }
            None => {
                let host = format!("{}.s3.{}.amazonaws.com", self.bucket, self.settings.region);
                (format!("https://{host}"), host, String::new())
            }
        };
        let path = match key {
            Some(_) => format!("{path}/{key_path}"),
            None if path.is_empty() => "/".to_string(),
            None => path,
        };
        (base, host, path)
    }

    /// Sends one request; a 2xx answer is returned, anything else is a
    /// [`Refusal`] (S3's error code read from the answer's body).
    fn send(&self, call: Call<'_>) -> Result<ureq::http::Response<ureq::Body>, Refusal> {
        let (base, host, path) = self.host_and_path(call.key);
        let query = sign::canonical_query(&call.query);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let date = sign::amz_date(now);
        let payload = sign::payload_hash(call.body);
        let mut headers: Vec<(String, String)> = vec![
            ("host".into(), host),
            ("x-amz-date".into(), date.clone()),
            ("x-amz-content-sha256".into(), payload.clone()),
        ];
        if let Some(token) = self
            .settings
            .credentials
            .as_ref()
            .and_then(|c| c.token.clone())
        {
            headers.push(("x-amz-security-token".into(), token));
        }
        for (name, value) in &call.headers {
            headers.push((name.to_ascii_lowercase(), value.clone()));
        }
        let mut uri = format!("{base}{path}");
        if !query.is_empty() {
            uri.push('?');
            uri.push_str(&query);
        }
        let mut request = ureq::http::Request::builder().method(call.method).uri(&uri);
        if let Some(credentials) = &self.settings.credentials {
            let signed = sign::Request {
                method: call.method,
                path: &path,
                query: &query,
                headers: &headers,
                payload: &payload,
            };
            let authorization =
                sign::authorization(&signed, credentials, &self.settings.region, &date);
            request = request.header("authorization", authorization);
        }
        for (name, value) in &headers {
            if name != "host" {
                request = request.header(name.as_str(), value.as_str());
            }
        }
        let request = request
            .body(call.body)
            .map_err(|e| Refusal::Transport(format!("bad request: {e}")))?;
        let response = self
            .agent
            .run(request)
            .map_err(|e| Refusal::Transport(self.transport_text(&e)))?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(response);
        }
        let mut body = response.into_body();
        let text = body
            .with_config()
            .limit(1 << 20)
            .read_to_string()
            .unwrap_or_default();
        Err(refused(status, &text))
    }

    /// A failed connection in words, without the request's URL (whose
    /// query is harmless, but a message names objects as `s3://`).
    fn transport_text(&self, err: &ureq::Error) -> String {
        use ureq::Error as E;
        let server = self
            .settings
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("S3 in {}", self.settings.region));
        let cause = match err {
            E::Timeout(_) => "timed out".to_string(),
            E::ConnectionFailed => "connection refused".to_string(),
            E::HostNotFound => "host not found".to_string(),
            E::Io(e) => e.to_string(),
            other => other.to_string(),
        };
        format!("cannot reach {server}: {cause}")
    }

    /// `refusal` as the error of `what` (`cannot read`) on `key`, with a
    /// hint where the fix is plain.
    pub fn error(&self, what: &str, key: Option<&str>, refusal: Refusal) -> anyhow::Error {
        let target = self.shown(key);
        let (message, hint) = match refusal {
            Refusal::Transport(cause) => (format!("{what} {target}: {cause}"), None),
            Refusal::Refused {
                status,
                code,
                message,
            } => {
                let text = if message.is_empty() {
                    format!("{what} {target}: HTTP {status} {code}")
                } else {
                    format!("{what} {target}: HTTP {status} {code}: {message}")
                };
                let hint = match code.as_str() {
                    "NoSuchBucket" => Some(format!(
                        "bucket {:?} does not exist at {}",
                        self.bucket,
                        self.settings.endpoint.as_deref().unwrap_or("AWS")
                    )),
                    "InvalidAccessKeyId"
                    | "SignatureDoesNotMatch"
                    | "AccessDenied"
                    | "ExpiredToken"
                    | "InvalidToken"
                    | "Forbidden" => Some(format!(
                        "the request was signed with {}; check them (and AWS_REGION)",
                        self.settings.credentials_from
                    )),
                    _ => None,
                };
                (text, hint)
            }
        };
        let failure = Failure::new(Kind::Runtime, self.scrub(&message));
        match hint {
            Some(hint) => failure.hint(hint).into(),
            None => failure.into(),
        }
    }

    /// `text` with the secret key and session token masked (they are never
    /// put in a message; this is the second line of defence).
    fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        if let Some(c) = &self.settings.credentials {
            for secret in [Some(&c.secret_key), c.token.as_ref()]
                .into_iter()
                .flatten()
            {
                if secret.len() >= 4 {
                    out = out.replace(secret.as_str(), "****");
                }
            }
        }
        out
    }

    /// Every object whose key starts with `prefix`, in key order, page by
    /// page (ListObjectsV2 and its continuation tokens).
    pub fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut query = vec![
                ("list-type", "2".to_string()),
                ("prefix", prefix.to_string()),
            ];
            if let Some(token) = &token {
                query.push(("continuation-token", token.clone()));
            }
            let call = Call {
                method: "GET",
                key: None,
                query,
                headers: Vec::new(),
                body: &[],
            };
            let shown_prefix = (!prefix.is_empty()).then_some(prefix);
            let response = self
                .send(call)
                .map_err(|r| self.error("cannot list", shown_prefix, r))?;
            let text =
                read_text(response).map_err(|r| self.error("cannot list", shown_prefix, r))?;
            for item in xml::all(&text, "Contents") {
                let key = xml::first(item, "Key").unwrap_or_default();
                let size = xml::first(item, "Size")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let etag = xml::first(item, "ETag").unwrap_or_default();
                let modified = xml::first(item, "LastModified")
                    .and_then(|t| crate::calendar::epoch_seconds(&t));
                found.push(ObjectInfo {
                    key,
                    size,
                    etag,
                    modified,
                });
            }
            let truncated = xml::first(&text, "IsTruncated").as_deref() == Some("true");
            token = xml::first(&text, "NextContinuationToken");
            if !truncated || token.is_none() {
                return Ok(found);
            }
        }
    }

    /// The object's size and ETag; `None` when there is none.
    pub fn head(&self, key: &str) -> Result<Option<ObjectInfo>> {
        let call = Call {
            method: "HEAD",
            key: Some(key),
            query: Vec::new(),
            headers: Vec::new(),
            body: &[],
        };
        match self.send(call) {
            Ok(response) => {
                let header = |name: &str| {
                    response
                        .headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string)
                };
                Ok(Some(ObjectInfo {
                    key: key.to_string(),
                    size: header("content-length")
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0),
                    etag: header("etag").unwrap_or_default(),
                    modified: None,
                }))
            }
            Err(Refusal::Refused {
                status: 404, code, ..
            }) if code != "NoSuchBucket" => {
                // A HEAD's 404 has no body: ask the bucket whether it is there.
                self.list_check()?;
                Ok(None)
            }
            Err(Refusal::Refused {
                status: 403,
                code,
                message,
            }) if message.is_empty() => {
                // A HEAD's 403 has no body either: a listing says why.
                self.list_check()?;
                let refusal = Refusal::Refused {
                    status: 403,
                    code,
                    message,
                };
                Err(self.error("cannot read", Some(key), refusal))
            }
            Err(refusal) => Err(self.error("cannot read", Some(key), refusal)),
        }
    }

    /// Fails naming the bucket when it does not exist (or cannot be read).
    fn list_check(&self) -> Result<()> {
        let call = Call {
            method: "GET",
            key: None,
            query: vec![("list-type", "2".into()), ("max-keys", "1".into())],
            headers: Vec::new(),
            body: &[],
        };
        self.send(call)
            .map(drop)
            .map_err(|r| self.error("cannot list", None, r))
    }

    /// Bytes `from..` (to the end, or `len` bytes) of `key`, streamed;
    /// with `etag`, only while the object is that version.
    pub fn get(
        &self,
        key: &str,
        from: u64,
        len: Option<u64>,
        etag: Option<&str>,
    ) -> Result<ureq::http::Response<ureq::Body>, Refusal> {
        let mut headers = Vec::new();
        if from > 0 || len.is_some() {
            let range = match len {
                Some(len) => format!("bytes={from}-{}", from + len.max(1) - 1),
                None => format!("bytes={from}-"),
            };
            headers.push(("range", range));
        }
        if let Some(etag) = etag {
            headers.push(("if-match", etag.to_string()));
        }
        let call = Call {
            method: "GET",
            key: Some(key),
            query: Vec::new(),
            headers,
            body: &[],
        };
        self.send(call)
    }

    /// Writes `body` as `key` in one request, under `condition`; returns
    /// the new ETag.
    pub fn put(&self, key: &str, body: &[u8], condition: &Condition) -> Result<String, Refusal> {
        let call = Call {
            method: "PUT",
            key: Some(key),
            query: Vec::new(),
            headers: condition_headers(condition),
            body,
        };
        self.send(call).map(|r| etag_of(&r))
    }

    /// Deletes `key` (no error when it is not there).
    pub fn delete(&self, key: &str) -> Result<()> {
        let call = Call {
            method: "DELETE",
            key: Some(key),
            query: Vec::new(),
            headers: Vec::new(),
            body: &[],
        };
        self.send(call)
            .map(drop)
            .map_err(|r| self.error("cannot delete", Some(key), r))
    }
}

/// The headers of a condition.
fn condition_headers(condition: &Condition) -> Vec<(&'static str, String)> {
    match condition {
        Condition::None => Vec::new(),
        Condition::Absent => vec![("if-none-match", "*".into())],
        Condition::Matches(etag) => vec![("if-match", etag.clone())],
    }
}

/// A response's ETag header.
fn etag_of(response: &ureq::http::Response<ureq::Body>) -> String {
    response
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// A small answer's body as text.
fn read_text(response: ureq::http::Response<ureq::Body>) -> Result<String, Refusal> {
    response
        .into_body()
        .with_config()
        .limit(64 << 20)
        .read_to_string()
        .map_err(|e| Refusal::Transport(format!("cannot read the answer: {e}")))
}

/// A refusal from an error status and its body.
fn refused(status: u16, text: &str) -> Refusal {
    let code = xml::first(text, "Code").unwrap_or_else(|| {
        match status {
            301 => "PermanentRedirect",
            400 => "BadRequest",
            403 => "Forbidden",
            404 => "NotFound",
            412 => "PreconditionFailed",
            _ => "Error",
        }
        .to_string()
    });
    Refusal::Refused {
        status,
        code,
        message: xml::first(text, "Message").unwrap_or_default(),
    }
}
