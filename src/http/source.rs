//! An HTTP JSON API as a [`Source`]: page after page, each fetched whole
//! (with retries) and checked before its records are handed on.

use std::time::{Duration, SystemTime};

use anyhow::{Context as _, Result, anyhow, bail};
use serde_json::Value;
use ureq::Agent;
use ureq::tls::{PemItem, RootCerts, TlsConfig};

use super::pagination::{Page, Pager, fingerprint};
use super::path::JsonPath;
use super::retry::{MAX_RETRY_AFTER, backoff, is_retryable_status, parse_retry_after};
use super::url::Url;
use super::{HttpPlan, Redactor};
use crate::progress::Progress;
use crate::record::Schema;
use crate::rejects::Payload;
use crate::source::{Context, Emit, Source, deliver};

/// Redirects followed for one request (same server only).
const MAX_REDIRECTS: u32 = 10;

/// An API, read page by page.
pub struct HttpSource {
    plan: HttpPlan,
    agent: Agent,
    start: Url,
    /// Where the records are, once known (from the first page by default).
    records: Option<JsonPath>,
}

/// A page as it came off the wire.
struct Fetched {
    /// The URL it finally came from (after redirects).
    url: Url,
    body: Vec<u8>,
    links: Vec<String>,
}

/// Why one attempt failed.
enum Failed {
    /// Worth asking again: what happened, and how long the server asked
    /// us to wait.
    Retry(String, Option<Duration>),
    /// Asking again would not help.
    Fatal(anyhow::Error),
}

impl HttpSource {
    /// Prepares the client (TLS roots, timeouts) and the first URL, with
    /// the incremental lower bound in `--since-param` when there is one.
    pub fn open(plan: HttpPlan, since: Option<&Value>) -> Result<HttpSource> {
        let mut config = Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(plan.timeout))
            .user_agent(format!("etlkit/{}", env!("CARGO_PKG_VERSION")))
            .accept("application/json")
            // Redirects are followed here, after checking that they stay on
            // the API's server: the headers carry credentials.
            .max_redirects(0)
            .max_redirects_will_error(false);
        if let Some(path) = &plan.ca_cert {
            let pem = std::fs::read(path)
                .with_context(|| format!("cannot read --ca-cert {}", path.display()))?;
            let mut certs = Vec::new();
            for item in ureq::tls::parse_pem(&pem) {
                match item {
                    Ok(PemItem::Certificate(cert)) => certs.push(cert),
                    Ok(_) => {}
                    Err(e) => bail!("--ca-cert {}: {e}", path.display()),
                }
            }
            if certs.is_empty() {
                bail!(
                    "--ca-cert {}: no PEM certificate (-----BEGIN CERTIFICATE-----) in the file",
                    path.display()
                );
            }
            config = config.tls_config(
                TlsConfig::builder()
                    .root_certs(RootCerts::new_with_certs(&certs))
                    .build(),
            );
        }
        let agent: Agent = config.build().into();
        let mut start = plan.url.clone();
        if let (Some(param), Some(value)) = (&plan.since_param, since) {
            let text = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            start = start.with_param(param, &text);
        }
        Ok(HttpSource {
            records: plan.records.clone(),
            plan,
            agent,
            start,
        })
    }

    /// The API's URL for messages and the `begin` line, credentials masked.
    pub fn name(&self) -> String {
        self.plan.redactor.redact(&self.start.to_string())
    }

    fn redactor(&self) -> &Redactor {
        &self.plan.redactor
    }

    /// Fetches one page, asking again after failures worth retrying.
    fn fetch(&self, url: &Url, number: u64, progress: &Progress) -> Result<Fetched> {
        let shown = self.redactor().redact(&url.to_string());
        progress.detail(&format!("page {number}: GET {shown}"));
        let mut retry = 0;
        loop {
            let (why, asked) = match self.attempt(url) {
                Ok(page) => return Ok(page),
                Err(Failed::Fatal(err)) => bail!("page {number} ({shown}): {err:#}"),
                Err(Failed::Retry(why, asked)) => (why, asked),
            };
            if retry >= self.plan.retries {
                bail!(
                    "page {number} ({shown}): {why}; gave up after {} attempt{}",
                    retry + 1,
                    if retry == 0 { "" } else { "s" }
                );
            }
            let wait = match asked {
                Some(asked) if asked > MAX_RETRY_AFTER => bail!(
                    "page {number} ({shown}): {why}, and the server asks to wait {} s \
                     (more than the {} s etlkit waits)",
                    asked.as_secs(),
                    MAX_RETRY_AFTER.as_secs()
                ),
                Some(asked) => asked,
                None => backoff(retry),
            };
            retry += 1;
            progress.warn(&self.redactor().redact(&format!(
                "page {number}: {why}; retry {retry} of {} in {:.1} s",
                self.plan.retries,
                wait.as_secs_f64()
            )));
            std::thread::sleep(wait);
        }
    }

    /// One request (following same-server redirects) and its body.
    fn attempt(&self, url: &Url) -> Result<Fetched, Failed> {
        let mut url = url.clone();
        let mut redirects = 0;
        loop {
            let mut request = self.agent.get(url.to_string());
            for header in &self.plan.headers {
                request = request.header(header.name.as_str(), header.value.as_str());
            }
            let mut response = request.call().map_err(|e| classify(&e))?;
            let status = response.status().as_u16();
            if response.status().is_redirection()
                && let Some(location) = header(&response, "location")
            {
                redirects += 1;
                let target = url
                    .join(&location)
                    .map_err(|e| Failed::Fatal(anyhow!("HTTP {status} to {location:?}: {e}")))?;
                if target.origin() != url.origin() {
                    return Err(Failed::Fatal(anyhow!(
                        "HTTP {status} redirects to another server ({}); etlkit does not send \
                         the API's headers there: use the final URL",
                        target.origin()
                    )));
                }
                if redirects > MAX_REDIRECTS {
                    return Err(Failed::Fatal(anyhow!(
                        "more than {MAX_REDIRECTS} redirects"
                    )));
                }
                url = target;
                continue;
            }
            if response.status().is_success() {
                let links = response
                    .headers()
                    .get_all("link")
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .map(str::to_string)
                    .collect();
                let body = response
                    .body_mut()
                    .with_config()
                    .limit(self.plan.max_page_bytes)
                    .read_to_vec()
                    .map_err(|e| classify(&e))?;
                return Ok(Fetched { url, body, links });
            }
            let reason = response.status().canonical_reason().unwrap_or_default();
            if is_retryable_status(status) {
                let asked = header(&response, "retry-after")
                    .and_then(|v| parse_retry_after(&v, SystemTime::now()));
                return Err(Failed::Retry(format!("HTTP {status} {reason}"), asked));
            }
            let text = response
                .body_mut()
                .with_config()
                .limit(64 * 1024)
                .lossy_utf8(true)
                .read_to_string()
                .unwrap_or_default();
            let hint = match status {
                401 | 403 => " (check the credentials in --header)",
                _ => "",
            };
            return Err(Failed::Fatal(anyhow!(
                "HTTP {status} {reason}{hint}: {}",
                snippet(&text)
            )));
        }
    }

    /// Where the records of a page are. Without `--records`, the first
    /// page decides, and every later page must have them there too.
    fn records_path(&mut self, body: &Value) -> Result<JsonPath> {
        if self.records.is_none() {
            self.records = Some(find_records(body)?);
        }
        Ok(self.records.clone().expect("set just above"))
    }
}

/// The records at `path` in a page (null: none).
fn records_at<'a>(body: &'a Value, path: &JsonPath, number: u64) -> Result<&'a [Value]> {
    match path.find(body) {
        Some(Value::Array(items)) => Ok(items),
        Some(Value::Null) => Ok(&[]),
        Some(other) => bail!(
            "page {number}: --records {path} is {}, not an array of records",
            crate::record::describe_kind(other)
        ),
        None => bail!("page {number}: the response has no --records {path}"),
    }
}

/// Where the records are when `--records` does not say: the body if it
/// is an array, else its only top-level array field.
fn find_records(body: &Value) -> Result<JsonPath> {
    match body {
        Value::Array(_) => Ok(JsonPath::root()),
        Value::Object(fields) => {
            let arrays: Vec<&String> = fields
                .iter()
                .filter(|(_, v)| v.is_array())
                .map(|(k, _)| k)
                .collect();
            match arrays.as_slice() {
                [one] => Ok(JsonPath::field(one)),
                [] => bail!(
                    "the response holds no array of records at its top level (fields: {}); \
                     name the array with --records (e.g. --records data.items)",
                    fields.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
                several => bail!(
                    "the response holds several arrays ({}); choose the records with --records",
                    several
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        }
        other => bail!(
            "the response is {}, not an array or object holding records",
            crate::record::describe_kind(other)
        ),
    }
}

/// A response header's value, if it is text.
fn header(response: &ureq::http::Response<ureq::Body>, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// What went wrong with a request, and whether to ask again.
fn classify(err: &ureq::Error) -> Failed {
    use ureq::Error as E;
    match err {
        E::Timeout(_) => Failed::Retry("the request timed out (--timeout)".into(), None),
        // rustls reports a refused certificate through the I/O error (as
        // InvalidData): asking again would get the same certificate.
        E::Io(e) if e.kind() == std::io::ErrorKind::InvalidData => Failed::Fatal(anyhow!(
            "connection failed: {e} (an API with a private CA needs --ca-cert)"
        )),
        E::Io(e) => Failed::Retry(format!("connection failed: {e}"), None),
        E::ConnectionFailed => Failed::Retry("connection failed".into(), None),
        E::HostNotFound => Failed::Retry("host not found".into(), None),
        E::Protocol(e) => Failed::Retry(format!("bad HTTP response: {e}"), None),
        E::Decompress(kind, e) => {
            Failed::Retry(format!("cannot decompress the {kind} response: {e}"), None)
        }
        E::BodyExceedsLimit(limit) => Failed::Fatal(anyhow!(
            "the page is larger than {} (--max-page-bytes); ask the API for smaller pages \
             (--page-size) or raise --max-page-bytes",
            size_text(*limit)
        )),
        E::Rustls(e) => Failed::Fatal(anyhow!(
            "TLS: {e} (an API with a private CA needs --ca-cert)"
        )),
        other => Failed::Fatal(anyhow!("{other}")),
    }
}

/// A size as `--max-page-bytes` takes it: `64M`, `1G`, `1500K`, or bytes.
fn size_text(bytes: u64) -> String {
    for (unit, size) in [("G", 1u64 << 30), ("M", 1 << 20), ("K", 1 << 10)] {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{}{unit}", bytes / size);
        }
    }
    format!("{bytes} bytes")
}

/// The start of a response body, on one line, for an error message.
fn snippet(text: &str) -> String {
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.is_empty() {
        return "(empty body)".into();
    }
    let cut: String = line.chars().take(200).collect();
    if cut.len() < line.len() {
        format!("{cut}...")
    } else {
        cut
    }
}

impl Source for HttpSource {
    fn schema(&self) -> Schema {
        Vec::new()
    }

    fn run(&mut self, emit: &mut Emit<'_>, cx: &mut Context<'_>) -> Result<()> {
        let mut pager = Pager::new(
            self.plan.pagination.clone(),
            self.start.clone(),
            self.plan.params.clone(),
        );
        let mut next = Some(pager.first());
        let mut number = 0u64;
        while let Some(url) = next {
            number += 1;
            if number > self.plan.max_pages {
                return Err(self.redactor().error(anyhow!(
                    "more than {} pages (--max-pages); the next one is {url}",
                    self.plan.max_pages
                )));
            }
            // Everything about the page is checked before a record of it is
            // handed on. Every error is redacted (a record may echo the
            // token); a closed pipe stays recognisable.
            let checked = (|| -> Result<_> {
                let Fetched {
                    url: page_url,
                    body: bytes,
                    links,
                } = self.fetch(&url, number, cx.progress)?;
                let shown = self.redactor().redact(&page_url.to_string());
                let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
                let body: Value = serde_json::from_slice(text).map_err(|e| {
                    anyhow!(
                        "page {number} ({shown}): the response is not JSON ({e}): {}",
                        snippet(&String::from_utf8_lossy(&text[..text.len().min(400)]))
                    )
                })?;
                // The parsed page is what is kept: the bytes go at once.
                drop(bytes);
                let at = |e: anyhow::Error| anyhow!("{shown}: {e:#}");
                let path = self.records_path(&body).map_err(at)?;
                let records = records_at(&body, &path, number).map_err(at)?;
                let following = pager
                    .next(&Page {
                        number,
                        url: &page_url,
                        body: &body,
                        links: &links,
                        records: records.len(),
                        fingerprint: fingerprint(records),
                    })
                    .map_err(at)?;
                Ok((shown, body, path, following))
            })();
            let (shown, body, path, following) = checked.map_err(|e| self.redactor().error(e))?;
            let records = records_at(&body, &path, number)?;
            let mut hand_on = || -> Result<()> {
                for (i, record) in records.iter().enumerate() {
                    cx.read += 1;
                    let line = i as u64 + 1;
                    let bytes = serde_json::to_vec(record)?;
                    if record.is_object() {
                        deliver(emit, &bytes, cx, &shown, line)?;
                    } else {
                        let reason = format!(
                            "a record must be a JSON object, not {}",
                            crate::record::describe_kind(record)
                        );
                        cx.rejects
                            .reject(&shown, line, &reason, Payload::Raw(&bytes))?;
                    }
                }
                Ok(())
            };
            hand_on().map_err(|e| self.redactor().error(e))?;
            next = following;
        }
        let plural = if number == 1 { "" } else { "s" };
        cx.progress.detail(&format!("{number} page{plural} read"));
        Ok(())
    }
}

impl crate::store::Readable for HttpPlan {
    /// Prepares the first request; nothing is asked of the API before the
    /// stream has begun, so a run that fails from the first request on is
    /// a cut stream downstream, never an empty one. A record may echo the
    /// API's token: rejects entries are masked like messages.
    fn open_source(
        &self,
        window: Option<crate::source::Window<'_>>,
        cx: &mut Context<'_>,
    ) -> Result<crate::store::OpenedSource> {
        cx.rejects.mask_with(self.redactor.clone());
        let source = HttpSource::open(self.clone(), window.and_then(|w| w.lower))?;
        let name = source.name();
        Ok(crate::store::OpenedSource::new(Box::new(source), name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn records_are_found_without_being_named() {
        assert_eq!(find_records(&json!([{"a": 1}])).unwrap(), JsonPath::root());
        assert_eq!(
            find_records(&json!({"data": [], "next": null})).unwrap(),
            JsonPath::field("data")
        );
        let err = find_records(&json!({"a": [], "b": []})).unwrap_err();
        assert!(err.to_string().contains("several arrays (a, b)"));
        let err = find_records(&json!({"total": 3})).unwrap_err();
        assert!(err.to_string().contains("--records"));
        assert!(find_records(&json!("x")).is_err());
    }

    #[test]
    fn snippets_are_one_short_line() {
        assert_eq!(
            snippet("<html>\n  <b>bad</b>\n</html>"),
            "<html> <b>bad</b> </html>"
        );
        assert_eq!(snippet(""), "(empty body)");
        assert_eq!(snippet(&"x".repeat(300)).len(), 203);
    }
}
