//! `etl-extract`'s flags for HTTP JSON APIs, and their checks.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{ArgGroup, Args};

use crate::error::usage;
use crate::http::secrets::{self, NameValue, Redactor};
use crate::http::{self, HttpPlan, JsonPath, Pagination, Url};

/// The flags of an HTTP source (INPUT is an http:// or https:// URL).
#[derive(Debug, Clone, Args)]
#[command(group(
    ArgGroup::new("pagination")
        .args(["next", "cursor_param", "offset_param", "page_param"])
        .multiple(false)
))]
pub struct HttpArgs {
    /// Where the records are in a response: a dotted path (data.items) or a
    /// JSON pointer (/data/items) [default: the body if it is an array, else
    /// its only array field]
    #[arg(long, value_name = "PATH", help_heading = "HTTP sources")]
    pub records: Option<String>,

    /// Paginate by a next-page URL in the body at PATH (absolute or
    /// relative); a missing, null or empty one ends the run [default
    /// pagination: RFC 8288 Link rel="next" headers, if the server sends them]
    #[arg(long, value_name = "PATH", help_heading = "HTTP sources")]
    pub next: Option<String>,

    /// Paginate by a token: send it back as query parameter NAME
    #[arg(
        long,
        value_name = "NAME",
        requires = "cursor_path",
        help_heading = "HTTP sources"
    )]
    pub cursor_param: Option<String>,

    /// Where the next-page token is in the body (missing, null, false or
    /// empty: last page)
    #[arg(
        long,
        value_name = "PATH",
        requires = "cursor_param",
        help_heading = "HTTP sources"
    )]
    pub cursor_path: Option<String>,

    /// Paginate by offset: query parameter NAME carries the number of
    /// records read so far; an empty page ends the run
    #[arg(long, value_name = "NAME", help_heading = "HTTP sources")]
    pub offset_param: Option<String>,

    /// Paginate by page number in query parameter NAME; an empty page ends
    /// the run
    #[arg(long, value_name = "NAME", help_heading = "HTTP sources")]
    pub page_param: Option<String>,

    /// The number of the first page for --page-param
    #[arg(
        long,
        value_name = "N",
        requires = "page_param",
        help_heading = "HTTP sources"
    )]
    pub first_page: Option<u64>,

    /// Ask for pages of N records, in query parameter --limit-param
    #[arg(
        long,
        value_name = "N",
        requires = "limit_param",
        help_heading = "HTTP sources"
    )]
    pub page_size: Option<u64>,

    /// The query parameter that carries --page-size (e.g. limit, per_page)
    #[arg(
        long,
        value_name = "NAME",
        requires = "page_size",
        help_heading = "HTTP sources"
    )]
    pub limit_param: Option<String>,

    /// Incremental: send the bookmark (or --since) to the API as query
    /// parameter NAME, so that it returns only newer records. The API should
    /// include records at that very value (>=): those already loaded are
    /// skipped here, as every record is still checked against the bookmark
    #[arg(
        long,
        value_name = "NAME",
        requires = "cursor",
        help_heading = "HTTP sources"
    )]
    pub since_param: Option<String>,

    /// Request header 'Name: value', repeatable. Write it in single quotes:
    /// $NAME and ${NAME} are expanded by etlkit from its environment ($$ is
    /// a literal $), so a token never shows in the process list; it is
    /// masked (***) in every message
    #[arg(
        short = 'H',
        long = "header",
        value_name = "HEADER",
        help_heading = "HTTP sources"
    )]
    pub headers: Vec<String>,

    /// Query parameter 'name=value' added to every request (next links the
    /// API hands out included), repeatable; $NAME is expanded as in --header
    #[arg(
        long = "param",
        value_name = "NAME=VALUE",
        help_heading = "HTTP sources"
    )]
    pub params: Vec<String>,

    /// Time limit of one request, body included, in seconds [default: 60]
    #[arg(long, value_name = "SECONDS", help_heading = "HTTP sources")]
    pub timeout: Option<f64>,

    /// Ask again for a page after a connection failure, timeout, 408, 429 or
    /// 5xx, up to N times, waiting 1, 2, 4... s or as Retry-After says
    /// [default: 5]
    #[arg(long, value_name = "N", help_heading = "HTTP sources")]
    pub retries: Option<u32>,

    /// Fail (writing no end line) rather than read more than N pages
    /// [default: 10000]
    #[arg(long, value_name = "N", help_heading = "HTTP sources")]
    pub max_pages: Option<u64>,

    /// Fail (writing no end line) on a page larger than SIZE (bytes, or with
    /// K, M, G): a page is held in memory whole until its records are
    /// checked, and parsed takes up to 12 times its size (small records)
    /// [default: 32M]
    #[arg(long, value_name = "SIZE", value_parser = super::parse_size, help_heading = "HTTP sources")]
    pub max_page_bytes: Option<u64>,

    /// Trust the CA certificates in this PEM file (a private CA) instead of
    /// the bundled Mozilla roots
    #[arg(long, value_name = "FILE", help_heading = "HTTP sources")]
    pub ca_cert: Option<PathBuf>,
}

impl HttpArgs {
    /// The first HTTP flag given, for the error when INPUT is no URL.
    fn first_given(&self) -> Option<&'static str> {
        let given = [
            ("--records", self.records.is_some()),
            ("--next", self.next.is_some()),
            ("--cursor-param", self.cursor_param.is_some()),
            ("--offset-param", self.offset_param.is_some()),
            ("--page-param", self.page_param.is_some()),
            ("--page-size", self.page_size.is_some()),
            ("--since-param", self.since_param.is_some()),
            ("--header", !self.headers.is_empty()),
            ("--param", !self.params.is_empty()),
            ("--timeout", self.timeout.is_some()),
            ("--retries", self.retries.is_some()),
            ("--max-pages", self.max_pages.is_some()),
            ("--max-page-bytes", self.max_page_bytes.is_some()),
            ("--ca-cert", self.ca_cert.is_some()),
        ];
        given.iter().find(|(_, set)| *set).map(|(flag, _)| *flag)
    }
}

/// The URL among the inputs, when INPUT is one; an HTTP flag without one
/// is a usage error.
pub(super) fn url_input(inputs: &[PathBuf], h: &HttpArgs) -> Result<Option<String>> {
    let urls: Vec<String> = inputs
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .filter(|p| http::is_url(p))
        .collect();
    match urls.as_slice() {
        [] => match h.first_given() {
            Some(flag) => Err(usage(format!(
                "{flag} applies to an http:// or https:// INPUT"
            ))),
            None => Ok(None),
        },
        [url] if inputs.len() == 1 => Ok(Some(url.clone())),
        _ => Err(usage("an http:// or https:// INPUT must be the only input")),
    }
}

fn path_arg(flag: &str, text: &str) -> Result<JsonPath> {
    JsonPath::parse(text).map_err(|e| usage(format!("{flag}: {e}")))
}

fn name_arg(flag: &str, name: &str) -> Result<String> {
    if name.is_empty() {
        return Err(usage(format!("{flag} needs a parameter name")));
    }
    Ok(name.to_string())
}

/// The plan of a read from an API: its flags checked, `$NAME` expanded.
/// Only the HTTP flags are read here; the program's own (stream, cursor,
/// rejects) are its caller's.
pub(super) fn plan(
    h: &HttpArgs,
    url: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<HttpPlan> {
    // The URL may hold a credential (?api_key=...): the error does not repeat it.
    let mut start = Url::parse(url).map_err(|e| usage(format!("the INPUT URL: {e}")))?;
    let mut redactor = Redactor::default();
    let mut headers = Vec::new();
    let mut params = Vec::new();
    for text in &h.headers {
        let (name, raw) = secrets::split_header(text).map_err(|e| usage(e.to_string()))?;
        let (value, used) =
            secrets::expand(&raw, env).map_err(|e| usage(format!("--header {name}: {e}")))?;
        if value.contains(['\r', '\n']) {
            return Err(usage(format!(
                "--header {name}: the value holds a line break"
            )));
        }
        used.iter().for_each(|s| redactor.add(s));
        if secrets::is_credential_name(&name) {
            redactor.add(&value);
            // `Bearer <token>`: the token alone is the secret too.
            if let Some((_, token)) = value.split_once(' ') {
                redactor.add(token.trim());
            }
        }
        headers.push(NameValue { name, value });
    }
    for text in &h.params {
        let (name, raw) = secrets::split_param(text).map_err(|e| usage(e.to_string()))?;
        let (value, used) =
            secrets::expand(&raw, env).map_err(|e| usage(format!("--param {name}: {e}")))?;
        used.iter().for_each(|s| redactor.add(s));
        if secrets::is_credential_name(&name) {
            redactor.add(&value);
        }
        start = start.with_param(&name, &value);
        params.push(NameValue { name, value });
    }
    // A credential written into the URL itself (?api_key=...) is masked too.
    for pair in start.query.iter().flat_map(|q| q.split('&')) {
        if let Some((name, value)) = pair.split_once('=')
            && secrets::is_credential_name(name)
        {
            redactor.add(value);
        }
    }
    if let (Some(param), Some(size)) = (&h.limit_param, h.page_size) {
        if size == 0 {
            return Err(usage("--page-size must be at least 1"));
        }
        start = start.with_param(&name_arg("--limit-param", param)?, &size.to_string());
    }
    let pagination = if let Some(path) = &h.next {
        Pagination::NextLink(path_arg("--next", path)?)
    } else if let (Some(param), Some(path)) = (&h.cursor_param, &h.cursor_path) {
        Pagination::Cursor {
            param: name_arg("--cursor-param", param)?,
            path: path_arg("--cursor-path", path)?,
        }
    } else if let Some(param) = &h.offset_param {
        Pagination::Offset {
            param: name_arg("--offset-param", param)?,
        }
    } else if let Some(param) = &h.page_param {
        Pagination::PageNumber {
            param: name_arg("--page-param", param)?,
            first: h.first_page.unwrap_or(1),
        }
    } else {
        Pagination::LinkHeader
    };
    let timeout = h.timeout.unwrap_or(http::DEFAULT_TIMEOUT_SECS as f64);
    if !(timeout > 0.0 && timeout <= 86_400.0) {
        return Err(usage(
            "--timeout must be more than 0 and at most 86400 seconds",
        ));
    }
    let max_pages = h.max_pages.unwrap_or(http::DEFAULT_MAX_PAGES);
    if max_pages == 0 {
        return Err(usage("--max-pages must be at least 1"));
    }
    Ok(HttpPlan {
        url: start,
        records: h
            .records
            .as_deref()
            .map(|p| path_arg("--records", p))
            .transpose()?,
        pagination,
        since_param: h
            .since_param
            .as_deref()
            .map(|p| name_arg("--since-param", p))
            .transpose()?,
        headers,
        params,
        timeout: Duration::from_secs_f64(timeout),
        retries: h.retries.unwrap_or(http::DEFAULT_RETRIES),
        max_pages,
        max_page_bytes: h.max_page_bytes.unwrap_or(http::DEFAULT_MAX_PAGE_BYTES),
        ca_cert: h.ca_cert.clone(),
        redactor,
    })
}
