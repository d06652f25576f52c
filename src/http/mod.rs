//! HTTP JSON APIs as a store to extract from: `etl-extract
//! https://api.example.com/v1/orders`. Pages are fetched one at a time
//! (memory stays at one page), each whole before any of its records is
//! written, so a retried page never repeats a record; a run that stops
//! before the last page writes no `end` line, so nothing downstream commits.
//!
//! - [`source`]: the [`source::HttpSource`], fetching, retrying, emitting;
//! - [`pagination`]: which page comes next, and proof that the pages move;
//! - [`retry`]: backoff and `Retry-After`;
//! - [`secrets`]: `$NAME` expansion in headers and redaction of credentials;
//! - [`url`], [`path`]: URLs and places in a JSON body.

pub mod pagination;
pub mod path;
pub mod retry;
pub mod secrets;
pub mod source;
pub mod url;

use std::path::PathBuf;
use std::time::Duration;

pub use pagination::Pagination;
pub use path::JsonPath;
pub use secrets::{NameValue, Redactor};
pub use url::{Url, is_url};

/// The URL schemes of an HTTP JSON API.
pub const SCHEMES: [&str; 2] = ["http", "https"];

/// A checked HTTP extract.
#[derive(Debug, Clone)]
pub struct HttpPlan {
    /// The first page's URL, with `--param`s and the page size set.
    pub url: Url,
    /// Where the records are in a page; `None`: the body if it is an
    /// array, else its only array field.
    pub records: Option<JsonPath>,
    /// How the pages are linked.
    pub pagination: Pagination,
    /// Query parameter that carries the incremental lower bound.
    pub since_param: Option<String>,
    /// Request headers, `$NAME` expanded.
    pub headers: Vec<NameValue>,
    /// The `--param`s, `$NAME` expanded: in `url` already, and set again on
    /// every next link followed.
    pub params: Vec<NameValue>,
    /// Time limit of one request, body included.
    pub timeout: Duration,
    /// How often one page is asked for again after a failure.
    pub retries: u32,
    /// The most pages a run reads; more fails the run.
    pub max_pages: u64,
    /// The largest page body read; a larger one fails the run (a page is
    /// held in memory whole).
    pub max_page_bytes: u64,
    /// PEM certificates to trust instead of the bundled Mozilla roots.
    pub ca_cert: Option<PathBuf>,
    /// The credentials to keep out of every message.
    pub redactor: Redactor,
}

/// Default `--timeout`, in seconds.
pub const DEFAULT_TIMEOUT_SECS: u64 = 60;
/// Default `--retries`.
pub const DEFAULT_RETRIES: u32 = 5;
/// Default `--max-pages`.
pub const DEFAULT_MAX_PAGES: u64 = 10_000;
/// Default `--max-page-bytes`: 32 MiB. A page is held whole, and parsed
/// takes up to 12 times its size (a 74 MB page of small records: 870 MB),
/// so a run stays under about 400 MB.
pub const DEFAULT_MAX_PAGE_BYTES: u64 = 32 << 20;

/// The default stream name of an API: the URL's last path segment up to
/// its first dot (`/v1/orders.json` → `orders`), else its host.
pub fn default_stream(url: &Url) -> String {
    url.path
        .rsplit('/')
        .find(|s| !s.is_empty())
        .and_then(|s| s.split('.').next())
        .filter(|s| !s.is_empty())
        .map_or_else(
            || {
                url.authority
                    .split(':')
                    .next()
                    .unwrap_or("http")
                    .to_string()
            },
            str::to_string,
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_come_from_the_path() {
        let name = |u: &str| default_stream(&Url::parse(u).unwrap());
        assert_eq!(name("https://api.example.com/v1/orders"), "orders");
        assert_eq!(name("https://api.example.com/v1/orders.json?x=1"), "orders");
        assert_eq!(name("https://api.example.com/v1/orders/"), "orders");
        assert_eq!(name("http://127.0.0.1:8080/"), "127.0.0.1");
    }
}
