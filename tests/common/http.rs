//! A real HTTP/1.1 server on 127.0.0.1 for the HTTP source tests: a thread
//! with a std::net listener that answers each request with what a handler
//! decides (a page, an error status, a hang, a dropped connection, or the
//! server going away), and records every request it saw.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Request {
    /// The path, without the query.
    pub path: String,
    /// The request target as sent (path and query).
    pub target: String,
    /// Query parameters, percent-decoded.
    pub query: BTreeMap<String, String>,
    /// Header names lowercased.
    pub headers: BTreeMap<String, String>,
    /// When it arrived.
    pub at: Instant,
}

impl Request {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// What the server does with a request.
pub enum Reply {
    /// Answer with a status, headers and a body.
    Send(u16, Vec<(String, String)>, Vec<u8>),
    /// Wait this long before answering (for timeouts), then answer.
    Slow(Duration, Box<Reply>),
    /// Close the connection without answering, and stop listening: the
    /// server is gone (later connections are refused).
    Die,
    /// Send a 200 whose body stops half-way (the Content-Length promises
    /// twice what comes), then close the connection.
    Cut(Vec<u8>),
}

impl Reply {
    pub fn json(value: &serde_json::Value) -> Reply {
        Reply::Send(
            200,
            vec![("Content-Type".into(), "application/json".into())],
            value.to_string().into_bytes(),
        )
    }

    pub fn status(code: u16, body: &str) -> Reply {
        Reply::Send(code, Vec::new(), body.as_bytes().to_vec())
    }

    pub fn with_header(self, name: &str, value: &str) -> Reply {
        match self {
            Reply::Send(code, mut headers, body) => {
                headers.push((name.into(), value.into()));
                Reply::Send(code, headers, body)
            }
            other => other,
        }
    }
}

type Handler = Box<dyn FnMut(&Request) -> Reply + Send>;

/// A running server; stopped when dropped.
pub struct Server {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    pub fn start(handler: impl FnMut(&Request) -> Reply + Send + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("local addr");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let requests = Arc::clone(&requests);
            let stop = Arc::clone(&stop);
            let mut handler: Handler = Box::new(handler);
            std::thread::spawn(move || serve(listener, &mut handler, &requests, &stop))
        };
        Server {
            addr,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().expect("lock").clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept call; a server that died already refuses this.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(
    listener: TcpListener,
    handler: &mut Handler,
    requests: &Mutex<Vec<Request>>,
    stop: &AtomicBool,
) {
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(mut stream) = stream else { continue };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let Some(request) = read_request(&stream) else {
            continue;
        };
        requests.lock().expect("lock").push(request.clone());
        let mut reply = handler(&request);
        while let Reply::Slow(wait, inner) = reply {
            std::thread::sleep(wait);
            reply = *inner;
        }
        match reply {
            Reply::Send(code, headers, body) => {
                let mut head = format!("HTTP/1.1 {code} {}\r\n", reason(code));
                for (name, value) in headers {
                    head.push_str(&format!("{name}: {value}\r\n"));
                }
                head.push_str(&format!(
                    "Content-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                ));
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&body);
                let _ = stream.flush();
            }
            Reply::Cut(body) => {
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len() * 2
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&body);
                let _ = stream.flush();
            }
            Reply::Die => return,
            Reply::Slow(..) => unreachable!("unwrapped above"),
        }
    }
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        301 => "Moved Permanently",
        302 => "Found",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Whatever",
    }
}

fn read_request(stream: &TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let target = line.split_whitespace().nth(1)?.to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 {
            break;
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    let (path, query_text) = target.split_once('?').unwrap_or((&target, ""));
    let query = query_text
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect();
    Some(Request {
        path: path.to_string(),
        target: target.clone(),
        query,
        headers,
        at: Instant::now(),
    })
}

/// Percent-decoding (and `+` as space) for query parameters.
pub fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An orders API as SaaS products serve them: `GET /v1/orders`, newest
/// last, filtered by `updated_since` (inclusive), `limit` records a page
/// (100 by default), positioned by `offset`, `page` or `cursor`. Every
/// page offers every pagination style at once: a `next` link in the body,
/// a `meta.next_cursor` token and a `Link: rel="next"` header, so that a
/// test picks one with its flags. It checks `Authorization: Bearer TOKEN`
/// and never echoes it.
pub struct Api {
    pub server: Server,
    state: Arc<Mutex<ApiState>>,
}

/// What the API holds and how it misbehaves.
#[derive(Default)]
pub struct ApiState {
    pub records: Vec<serde_json::Value>,
    pub token: Option<String>,
    /// Replies served instead of a page (by page number, from 1), once each.
    pub faults: BTreeMap<u64, std::collections::VecDeque<Reply>>,
    /// Hand out the same cursor and next link on every page.
    pub repeat_cursor: bool,
    /// Serve the first page whatever offset or page is asked for.
    pub ignore_position: bool,
    /// Page N (key) holds the records of page M (value) while its links
    /// go on to page N + 1: the same records again under a new URL.
    pub repeat_pages: BTreeMap<u64, u64>,
}

/// The `updated_at` of the i-th record: one second apart.
pub fn stamp(i: usize) -> String {
    format!(
        "2026-11-05T{:02}:{:02}:{:02}Z",
        9 + i / 3600,
        (i / 60) % 60,
        i % 60
    )
}

/// The i-th record of the orders API.
pub fn order(i: usize) -> serde_json::Value {
    serde_json::json!({
        "id": i + 1,
        "updated_at": stamp(i),
        "amount": 10.25 + i as f64,
        "customer": {"name": format!("Zoë {i}"), "tier": null},
        "ref": format!("{:019}", 9_007_199_254_740_993u64 + i as u64),
    })
}

impl Api {
    /// The API with `n` records, requiring `token` when given.
    pub fn orders(n: usize, token: Option<&str>) -> Api {
        let state = Arc::new(Mutex::new(ApiState {
            records: (0..n).map(order).collect(),
            token: token.map(str::to_string),
            ..ApiState::default()
        }));
        let server = {
            let state = Arc::clone(&state);
            Server::start(move |request| answer(&mut state.lock().expect("lock"), request))
        };
        Api { server, state }
    }

    /// Changes the API's state.
    pub fn with<T>(&self, change: impl FnOnce(&mut ApiState) -> T) -> T {
        change(&mut self.state.lock().expect("lock"))
    }

    /// Serves `reply` once instead of page `page`.
    pub fn fault(&self, page: u64, reply: Reply) {
        self.with(|s| s.faults.entry(page).or_default().push_back(reply));
    }

    /// `http://127.0.0.1:PORT/v1/orders`.
    pub fn url(&self) -> String {
        self.server.url("/v1/orders")
    }
}

fn answer(state: &mut ApiState, request: &Request) -> Reply {
    if request.path != "/v1/orders" {
        return Reply::status(404, r#"{"error":"no such resource"}"#);
    }
    if let Some(token) = &state.token
        && request.header("authorization") != Some(&format!("Bearer {token}"))
    {
        return Reply::status(401, r#"{"error":"invalid or missing token"}"#);
    }
    let limit: usize = request
        .param("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(100)
        .min(100);
    let mut offset: usize = request
        .param("offset")
        .and_then(|o| o.parse().ok())
        .or_else(|| {
            request
                .param("page")
                .and_then(|p| p.parse::<usize>().ok())
                .map(|p| p.saturating_sub(1) * limit)
        })
        .or_else(|| {
            request
                .param("cursor")
                .and_then(|c| c.strip_prefix('c'))
                .and_then(|c| c.parse().ok())
        })
        .unwrap_or(0);
    if state.ignore_position {
        offset = 0;
    }
    let page = (offset / limit) as u64 + 1;
    if let Some(reply) = state.faults.get_mut(&page).and_then(|q| q.pop_front()) {
        return reply;
    }
    let since = request.param("updated_since");
    let matching: Vec<&serde_json::Value> = state
        .records
        .iter()
        .filter(|r| since.is_none_or(|s| r["updated_at"].as_str().is_some_and(|t| t >= s)))
        .collect();
    let served = state
        .repeat_pages
        .get(&page)
        .map_or(offset, |m| (*m as usize - 1) * limit);
    let data: Vec<&serde_json::Value> = matching.iter().skip(served).take(limit).copied().collect();
    let more = offset + limit < matching.len();
    let next_offset = if state.repeat_cursor {
        limit
    } else {
        offset + limit
    };
    let mut link = format!("/v1/orders?limit={limit}&offset={next_offset}");
    if let Some(since) = since {
        link.push_str(&format!("&updated_since={}", since.replace(':', "%3A")));
    }
    let body = serde_json::json!({
        "data": data,
        "next": if more { serde_json::Value::from(link.clone()) } else { serde_json::Value::Null },
        "meta": {
            "count": data.len(),
            "next_cursor": if more { serde_json::Value::from(format!("c{next_offset}")) } else { serde_json::Value::Null },
        },
    });
    let reply = Reply::json(&body);
    if more {
        reply.with_header("Link", &format!("<{link}>; rel=\"next\""))
    } else {
        reply
    }
}
