//! The one TCP connect of the broker clients: every address a name
//! resolves to is tried in turn, with Nagle off.

use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// A TCP connection to `host:port`, trying each address it resolves to
/// (10 s each), with Nagle off: brokers answer small requests. `server`
/// names it in errors (never with a password).
pub fn connect(host: &str, port: u16, server: &str) -> Result<TcpStream> {
    let addrs: Vec<_> = (host, port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {server}"))?
        .collect();
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(10)) {
            Ok(stream) => {
                stream.set_nodelay(true)?;
                return Ok(stream);
            }
            Err(e) => last = Some(e),
        }
    }
    match last {
        Some(e) => Err(e).with_context(|| format!("cannot connect to {server}")),
        None => bail!("cannot connect to {server}: no address"),
    }
}

/// Is `e` a read that ran out of time (the timeout set on the socket)?
pub fn timed_out(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}
