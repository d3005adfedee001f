//! zr-hbone: an HBONE client and server built like Istio's ztunnel (rustls
//! through tokio-rustls, the h2 crate, tokio), to test zring against the
//! TLS and HTTP/2 stacks it meets in a real mesh.
//!
//!   zr-hbone client --addr IP:PORT --cert F --key F --ca F --expect-id ID
//!                   --authority IP:PORT [--streams N] [--bytes N] [--kx GROUP]
//!       One TLS connection, N concurrent CONNECT streams on it; each sends
//!       N bytes (its own pseudo-random sequence), half-closes, and reads
//!       the echo to its end; sent and received bytes are compared by
//!       SHA-256. Prints `result=ok ...`, or `result=fail ...` with the
//!       reason (a TLS alert shows as alert=NAME); exits 0 only when every
//!       stream came back intact.
//!
//!   zr-hbone server --listen IP:PORT --cert F --key F --ca F
//!                   [--max-streams N] [--refuse-first N] [--kx GROUP]
//!       An HBONE server: CONNECT to :authority, 200 once connected, then
//!       bytes both ways. Prints READY on stdout, then on stderr one `tls`
//!       line per handshake and one `stream` line per stream (byte counts
//!       and SHA-256 each way). --refuse-first resets the first N streams
//!       with REFUSED_STREAM.
//!
//!   --kx x25519|secp256r1|secp384r1 limits key exchange to that group
//!   (default: rustls's X25519, P-256, P-384), so that a peer whose first
//!   key share is another group must answer a HelloRetryRequest.
//!
//! HTTP/2 settings are ztunnel's (src/proxy/h2/{client,server}.rs): 4 MiB
//! stream and 16 MiB connection windows, 1 MiB frames, no push; the server
//! allows 200 concurrent streams unless told otherwise.

mod tls;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::poll_fn;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const WINDOW: u32 = 4 << 20;
const CONN_WINDOW: u32 = 16 << 20;
const FRAME: u32 = 1 << 20;

struct Args(HashMap<String, String>);

impl Args {
    fn parse(v: &[String]) -> Result<Args, String> {
        let mut m = HashMap::new();
        let mut it = v.iter();
        while let Some(k) = it.next() {
            let k = k.strip_prefix("--").ok_or_else(|| format!("unexpected argument {}", k))?;
            let val = it.next().ok_or_else(|| format!("--{} needs a value", k))?;
            m.insert(k.to_string(), val.clone());
        }
        Ok(Args(m))
    }
    fn get(&self, k: &str) -> Result<String, String> {
        self.0.get(k).cloned().ok_or_else(|| format!("--{} is required", k))
    }
    fn num(&self, k: &str, def: usize) -> Result<usize, String> {
        match self.0.get(k) {
            None => Ok(def),
            Some(v) => v.parse().map_err(|_| format!("--{}: not a number: {}", k, v)),
        }
    }
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{:02x}", b)).collect()
}

/// rustls's error inside an I/O error, named as the alert when it is one.
fn why(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(x) = cur {
        if let Some(t) = x.downcast_ref::<rustls::Error>() {
            return match t {
                rustls::Error::AlertReceived(a) => format!("alert={:?}", a),
                other => format!("tls=\"{}\"", other),
            };
        }
        if let Some(io) = x.downcast_ref::<h2::Error>().and_then(|h| h.get_io()) {
            if let Some(inner) = io.get_ref() {
                cur = Some(inner);
                continue;
            }
        }
        if let Some(io) = x.downcast_ref::<std::io::Error>() {
            if let Some(inner) = io.get_ref() {
                cur = Some(inner);
                continue;
            }
            return format!("io=\"{}\"", io);
        }
        cur = x.source();
    }
    format!("error=\"{}\"", e)
}

// ------------------------------------------------------------------ client

/// The bytes stream `idx` sends: xorshift64, seeded by the index.
fn fill(seed: &mut u64, buf: &mut [u8]) {
    for chunk in buf.chunks_mut(8) {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        let b = seed.to_le_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
}

/// Send `data` on an h2 stream, waiting for flow-control capacity.
async fn send_all(send: &mut h2::SendStream<Bytes>, mut data: Bytes) -> Result<(), String> {
    while !data.is_empty() {
        send.reserve_capacity(data.len());
        let cap = match poll_fn(|cx| send.poll_capacity(cx)).await {
            None => return Err("stream closed while sending".into()),
            Some(Err(e)) => return Err(format!("send: {}", e)),
            Some(Ok(c)) => c,
        };
        if cap == 0 {
            continue;
        }
        let part = data.split_to(cap.min(data.len()));
        send.send_data(part, false).map_err(|e| format!("send: {}", e))?;
    }
    Ok(())
}

struct StreamResult {
    sent: u64,
    got: u64,
    sent_sha: String,
    got_sha: String,
}

async fn one_stream(
    sr: h2::client::SendRequest<Bytes>,
    authority: String,
    idx: usize,
    n: usize,
) -> Result<StreamResult, String> {
    let mut sr = sr.ready().await.map_err(|e| format!("ready: {}", e))?;
    let req = http::Request::builder()
        .method(http::Method::CONNECT)
        .uri(authority.as_str())
        .header("forwarded", format!("for=\"127.0.0.1:{}\"", 40000 + idx))
        .body(())
        .map_err(|e| e.to_string())?;
    let (resp, mut send) = sr.send_request(req, false).map_err(|e| format!("request: {}", e))?;
    let resp = resp.await.map_err(|e| format!("response: {}", e))?;
    if resp.status() != http::StatusCode::OK {
        return Err(format!("status {}", resp.status().as_u16()));
    }
    let mut recv = resp.into_body();
    let writer = async move {
        let mut h = Sha256::new();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ (idx as u64 + 1);
        let mut left = n;
        while left > 0 {
            let mut buf = vec![0u8; left.min(256 << 10)];
            fill(&mut seed, &mut buf);
            h.update(&buf);
            left -= buf.len();
            send_all(&mut send, Bytes::from(buf)).await?;
        }
        send.send_data(Bytes::new(), true).map_err(|e| format!("end: {}", e))?;
        Ok::<String, String>(hex(&h.finalize()))
    };
    let reader = async move {
        let mut h = Sha256::new();
        let mut got = 0u64;
        while let Some(chunk) = recv.data().await {
            let chunk = chunk.map_err(|e| format!("recv: {}", e))?;
            h.update(&chunk);
            got += chunk.len() as u64;
            let _ = recv.flow_control().release_capacity(chunk.len());
        }
        Ok::<(u64, String), String>((got, hex(&h.finalize())))
    };
    let (w, r) = tokio::join!(writer, reader);
    let sent_sha = w?;
    let (got, got_sha) = r?;
    Ok(StreamResult { sent: n as u64, got, sent_sha, got_sha })
}

async fn client(a: Args) -> Result<(), String> {
    let addr: SocketAddr = a.get("addr")?.parse().map_err(|e| format!("--addr: {}", e))?;
    let kx = a.0.get("kx").map(|s| s.as_str());
    let cfg = tls::client_config(&a.get("cert")?, &a.get("key")?, &a.get("ca")?, &a.get("expect-id")?, kx)?;
    let authority = a.get("authority")?;
    let streams = a.num("streams", 1)?;
    let bytes = a.num("bytes", 65536)?;

    let tcp = TcpStream::connect(addr).await.map_err(|e| format!("connect: {}", e))?;
    tcp.set_nodelay(true).ok();
    let conn = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tls = conn
        .connect(rustls::ServerName::IpAddress(addr.ip()), tcp)
        .await
        .map_err(|e| format!("stage=handshake {}", why(&e)))?;
    {
        let (_, c) = tls.get_ref();
        println!(
            "tls version={:?} suite={:?} alpn={} peer_id={}",
            c.protocol_version().unwrap(),
            c.negotiated_cipher_suite().unwrap().suite(),
            String::from_utf8_lossy(c.alpn_protocol().unwrap_or(b"-")),
            c.peer_certificates()
                .and_then(|p| tls::spiffe_ids(&p[0].0).into_iter().next())
                .unwrap_or_else(|| "-".into())
        );
    }
    let (sr, connection) = h2::client::Builder::new()
        .initial_window_size(WINDOW)
        .initial_connection_window_size(CONN_WINDOW)
        .max_frame_size(FRAME)
        .initial_max_send_streams(100)
        .max_header_list_size(16 << 10)
        .max_send_buffer_size(WINDOW as usize)
        .enable_push(false)
        .handshake::<_, Bytes>(tls)
        .await
        .map_err(|e| format!("stage=h2 {}", why(&e)))?;
    let conn_err = tokio::spawn(async move { connection.await.err().map(|e| why(&e)) });

    let tasks: Vec<_> = (0..streams)
        .map(|i| tokio::spawn(one_stream(sr.clone(), authority.clone(), i, bytes)))
        .collect();
    drop(sr);
    let (mut ok, mut total) = (0usize, 0u64);
    let mut fails = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await.map_err(|e| e.to_string()).and_then(|r| r) {
            Ok(r) if r.sent == r.got && r.sent_sha == r.got_sha => {
                ok += 1;
                total += r.got;
            }
            Ok(r) => fails.push(format!(
                "stream {}: sent {} sha256 {}, got {} sha256 {}",
                i, r.sent, r.sent_sha, r.got, r.got_sha
            )),
            Err(e) => fails.push(format!("stream {}: {}", i, e)),
        }
    }
    if fails.is_empty() {
        println!("result=ok streams={} bytes={}", ok, total);
        return Ok(());
    }
    let ce = if conn_err.is_finished() {
        conn_err.await.ok().flatten().unwrap_or_else(|| "-".into())
    } else {
        "-".into()
    };
    Err(format!(
        "stage=streams ok={} failed={} connection={} first=\"{}\"",
        ok,
        fails.len(),
        ce,
        fails[0]
    ))
}

// ------------------------------------------------------------------ server

async fn pipe_down(
    mut up: tokio::net::tcp::OwnedReadHalf,
    mut send: h2::SendStream<Bytes>,
) -> Result<(u64, String), String> {
    let mut h = Sha256::new();
    let mut n = 0u64;
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let k = up.read(&mut buf).await.map_err(|e| format!("upstream read: {}", e))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
        send_all(&mut send, Bytes::copy_from_slice(&buf[..k])).await?;
    }
    send.send_data(Bytes::new(), true).map_err(|e| format!("end: {}", e))?;
    Ok((n, hex(&h.finalize())))
}

async fn pipe_up(
    mut recv: h2::RecvStream,
    mut up: tokio::net::tcp::OwnedWriteHalf,
) -> Result<(u64, String), String> {
    let mut h = Sha256::new();
    let mut n = 0u64;
    while let Some(chunk) = recv.data().await {
        let chunk = chunk.map_err(|e| format!("recv: {}", e))?;
        h.update(&chunk);
        n += chunk.len() as u64;
        up.write_all(&chunk).await.map_err(|e| format!("upstream write: {}", e))?;
        let _ = recv.flow_control().release_capacity(chunk.len());
    }
    up.shutdown().await.ok();
    Ok((n, hex(&h.finalize())))
}

async fn serve_stream(
    req: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    peer_id: String,
) {
    let authority = req.uri().authority().map(|a| a.to_string()).unwrap_or_default();
    let fwd = req
        .headers()
        .get("forwarded")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_string();
    let head = format!(
        "stream peer_id={} method={} authority={} forwarded={}",
        peer_id,
        req.method(),
        authority,
        fwd
    );
    let status = |s: u16| http::Response::builder().status(s).body(()).unwrap();
    if req.method() != http::Method::CONNECT {
        let _ = respond.send_response(status(400), true);
        eprintln!("{} status=400", head);
        return;
    }
    let up = match TcpStream::connect(authority.as_str()).await {
        Ok(s) => s,
        Err(e) => {
            let _ = respond.send_response(status(503), true);
            eprintln!("{} status=503 error=\"{}\"", head, e);
            return;
        }
    };
    up.set_nodelay(true).ok();
    let send = match respond.send_response(status(200), false) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{} status=200 result=error error=\"{}\"", head, e);
            return;
        }
    };
    let (ur, uw) = up.into_split();
    let (u, d) = tokio::join!(pipe_up(req.into_body(), uw), pipe_down(ur, send));
    match (u, d) {
        (Ok((un, us)), Ok((dn, ds))) => eprintln!(
            "{} status=200 up_bytes={} up_sha256={} down_bytes={} down_sha256={} result=ended",
            head, un, us, dn, ds
        ),
        (u, d) => eprintln!(
            "{} status=200 result=error up={:?} down={:?}",
            head,
            u.err(),
            d.err()
        ),
    }
}

async fn serve_conn(
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: tokio_rustls::TlsAcceptor,
    max_streams: u32,
    refuse: Arc<AtomicUsize>,
) {
    tcp.set_nodelay(true).ok();
    let tls = match acceptor.accept(tcp).await {
        Ok(t) => t,
        Err(e) => {
            eprintln!("handshake peer={} result=fail {}", peer, why(&e));
            return;
        }
    };
    let peer_id = {
        let (_, c) = tls.get_ref();
        let id = c
            .peer_certificates()
            .and_then(|p| tls::spiffe_ids(&p[0].0).into_iter().next())
            .unwrap_or_else(|| "-".into());
        eprintln!(
            "tls peer={} version={:?} suite={:?} peer_id={} alpn={}",
            peer,
            c.protocol_version().unwrap(),
            c.negotiated_cipher_suite().unwrap().suite(),
            id,
            String::from_utf8_lossy(c.alpn_protocol().unwrap_or(b"-"))
        );
        id
    };
    let mut conn = match h2::server::Builder::new()
        .initial_window_size(WINDOW)
        .initial_connection_window_size(CONN_WINDOW)
        .max_frame_size(FRAME)
        .max_header_list_size(65536)
        .max_send_buffer_size(400 << 10)
        .max_concurrent_streams(max_streams)
        .handshake::<_, Bytes>(tls)
        .await
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("h2 peer={} result=fail {}", peer, why(&e));
            return;
        }
    };
    while let Some(r) = conn.accept().await {
        match r {
            Ok((req, mut respond)) => {
                let left = refuse.load(Ordering::SeqCst);
                if left > 0 {
                    refuse.store(left - 1, Ordering::SeqCst);
                    respond.send_reset(h2::Reason::REFUSED_STREAM);
                    eprintln!(
                        "refused peer_id={} authority={}",
                        peer_id,
                        req.uri().authority().map(|a| a.to_string()).unwrap_or_default()
                    );
                    continue;
                }
                tokio::spawn(serve_stream(req, respond, peer_id.clone()));
            }
            Err(e) => {
                eprintln!("conn peer={} result=error {}", peer, why(&e));
                return;
            }
        }
    }
    eprintln!("conn peer={} result=ended", peer);
}

async fn server(a: Args) -> Result<(), String> {
    let kx = a.0.get("kx").map(|s| s.as_str());
    let cfg = tls::server_config(&a.get("cert")?, &a.get("key")?, &a.get("ca")?, kx)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listen = a.get("listen")?;
    let max_streams = a.num("max-streams", 200)? as u32;
    let refuse = Arc::new(AtomicUsize::new(a.num("refuse-first", 0)?));
    let l = TcpListener::bind(listen.as_str()).await.map_err(|e| format!("{}: {}", listen, e))?;
    println!("READY");
    loop {
        let (tcp, peer) = l.accept().await.map_err(|e| format!("accept: {}", e))?;
        tokio::spawn(serve_conn(tcp, peer, acceptor.clone(), max_streams, refuse.clone()));
    }
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let run = || -> Result<(), String> {
        let mode = argv.get(1).ok_or("usage: zr-hbone client|server --options")?;
        let a = Args::parse(&argv[2..])?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        match mode.as_str() {
            "client" => rt.block_on(client(a)),
            "server" => rt.block_on(server(a)),
            m => Err(format!("unknown mode {}", m)),
        }
    };
    if let Err(e) = run() {
        println!("result=fail {}", e);
        std::process::exit(1);
    }
}
