//! A load generator for `recon serve`: starts the server on 127.0.0.1 with a fresh database in a
//! temporary directory, then runs three phases over N keep-alive connections (raw HTTP/1.1, one
//! thread each) and prints throughput, latency percentiles and the statuses seen:
//!
//! 1. POST: creates top-ups;
//! 2. GET: reads them back one by one;
//! 3. a mixed burst: creates and reads interleaved, all connections at once.
//!
//! Every phase is bounded in requests and in time, and it talks to no address but the server it
//! started on loopback.
//!
//! ```text
//! cargo build --release
//! cargo run --release --example api_load -- --recon target/release/recon \
//!     --connections 16 --posts 20000 --gets 50000 --burst 2000 --max-seconds 60
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const GROUP: &str = "1ea60f56-b67b-61fc-829a-0242ac130003";

struct Options {
    recon: String,
    connections: usize,
    posts: usize,
    gets: usize,
    burst: usize,
    max_seconds: u64,
}

fn options() -> Options {
    let mut o = Options {
        recon: "target/release/recon".to_string(),
        connections: 16,
        posts: 20_000,
        gets: 50_000,
        burst: 2_000,
        max_seconds: 60,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let value = pair.get(1).cloned().unwrap_or_default();
        let number = || value.parse::<usize>().expect("a number");
        match pair[0].as_str() {
            "--recon" => o.recon = value.clone(),
            "--connections" => o.connections = number().clamp(1, 256),
            "--posts" => o.posts = number().min(1_000_000),
            "--gets" => o.gets = number().min(1_000_000),
            "--burst" => o.burst = number().min(1_000_000),
            "--max-seconds" => o.max_seconds = (number() as u64).clamp(1, 600),
            other => panic!(
                "unknown option {other}; takes --recon PATH --connections N --posts N --gets N \
                 --burst N --max-seconds S"
            ),
        }
    }
    o
}

/// The server this generator started; killed when dropped.
struct Server {
    child: Child,
    address: String,
    token: String,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(recon: &str) -> Server {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let token = format!("{:032x}", rand::random::<u128>());
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, &token).expect("writing the token");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600))
                .expect("chmod 600 the token");
        }
        let log = std::fs::File::create(dir.path().join("serve.log")).expect("a log file");
        let mut child = Command::new(recon)
            .args(["serve", "--listen", "127.0.0.1:0", "--db"])
            .arg(dir.path().join("recon.sqlite"))
            .arg("--token-file")
            .arg(&token_file)
            .env_remove("RECON_DB")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {recon}: {e} (build it first)"));
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the listening line");
        let address = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        assert!(address.starts_with("127.0.0.1:"), "loopback only");
        Server {
            child,
            address,
            token,
            _dir: dir,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One keep-alive connection speaking just enough HTTP/1.1 for the API's answers.
struct Connection {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Connection {
    fn open(address: &str) -> std::io::Result<Connection> {
        let stream = TcpStream::connect(address)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Connection {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        })
    }

    /// Sends `request` and reads the answer: (status, body).
    fn exchange(&mut self, request: &[u8]) -> std::io::Result<(u16, String)> {
        self.writer.write_all(request)?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
        let mut length = 0;
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body)?;
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

fn post_request(server: &Server, amount: usize) -> Vec<u8> {
    let body = format!(
        r#"{{"account_group_id":"{GROUP}","cash_amount":"{}.{:02}","currency":"EUR"}}"#,
        amount % 10_000 + 1,
        amount % 100
    );
    format!(
        "POST /payments/topups HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        server.address,
        server.token,
        body.len()
    )
    .into_bytes()
}

fn get_request(server: &Server, id: &str) -> Vec<u8> {
    format!(
        "GET /payments/topups/{id} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\r\n",
        server.address, server.token
    )
    .into_bytes()
}

/// What one phase saw.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    statuses: std::collections::BTreeMap<u16, usize>,
    errors: usize,
    ids: Vec<String>,
}

/// Runs `total` requests over `connections` threads (each takes the next request number until
/// the count or the time is up).
fn phase(
    server: &Arc<Server>,
    connections: usize,
    total: usize,
    max: Duration,
    request: impl Fn(usize) -> Vec<u8> + Send + Sync + 'static,
) -> (Tally, Duration) {
    let next = Arc::new(AtomicUsize::new(0));
    let request = Arc::new(request);
    let started = Instant::now();
    let threads: Vec<_> = (0..connections)
        .map(|_| {
            let (server, next, request) = (server.clone(), next.clone(), request.clone());
            std::thread::spawn(move || {
                let mut tally = Tally::default();
                let mut connection = None;
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= total || started.elapsed() > max {
                        break;
                    }
                    let bytes = request(n);
                    let asked = Instant::now();
                    let answer = match connection.as_mut() {
                        Some(c) => Connection::exchange(c, &bytes),
                        None => Connection::open(&server.address).and_then(|mut c| {
                            let answer = c.exchange(&bytes);
                            connection = Some(c);
                            answer
                        }),
                    };
                    let took = asked.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                    match answer {
                        Ok((status, body)) => {
                            tally.latencies_us.push(took);
                            *tally.statuses.entry(status).or_default() += 1;
                            if status == 201
                                && let Some(at) = body.find("\"id\":\"")
                            {
                                tally.ids.push(body[at + 6..at + 42].to_string());
                            }
                        }
                        Err(_) => {
                            tally.errors += 1;
                            connection = None;
                        }
                    }
                }
                tally
            })
        })
        .collect();
    let mut all = Tally::default();
    for thread in threads {
        let tally = thread.join().expect("a load thread");
        all.latencies_us.extend(tally.latencies_us);
        for (status, count) in tally.statuses {
            *all.statuses.entry(status).or_default() += count;
        }
        all.errors += tally.errors;
        all.ids.extend(tally.ids);
    }
    (all, started.elapsed())
}

fn report(name: &str, tally: &mut Tally, took: Duration) {
    tally.latencies_us.sort_unstable();
    let n = tally.latencies_us.len();
    let at = |q: f64| {
        let i = ((n as f64 * q).ceil() as usize).clamp(1, n.max(1)) - 1;
        tally.latencies_us.get(i).copied().unwrap_or(0) as f64 / 1000.0
    };
    println!(
        "{name:<6} {n:>7} requests in {:>6.2} s = {:>7.0}/s  p50 {:>6.2} ms  p99 {:>6.2} ms  \
         max {:>7.2} ms  statuses {:?}  connection errors {}",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
        at(0.50),
        at(0.99),
        at(1.0),
        tally.statuses,
        tally.errors
    );
}

fn main() {
    let o = options();
    let server = Arc::new(Server::start(&o.recon));
    let max = Duration::from_secs(o.max_seconds);
    println!(
        "recon serve at {} with a fresh database; {} connections",
        server.address, o.connections
    );

    let (mut posts, took) = phase(&server, o.connections, o.posts, max, {
        let server = server.clone();
        move |n| post_request(&server, n)
    });
    report("POST", &mut posts, took);

    let ids = Arc::new(std::mem::take(&mut posts.ids));
    if ids.is_empty() {
        eprintln!("no top-up was created; stopping");
        std::process::exit(1);
    }
    let (mut gets, took) = phase(&server, o.connections, o.gets, max, {
        let (server, ids) = (server.clone(), ids.clone());
        move |n| get_request(&server, &ids[n % ids.len()])
    });
    report("GET", &mut gets, took);

    let (mut burst, took) = phase(&server, o.connections, o.burst, max, {
        let (server, ids) = (server.clone(), ids.clone());
        move |n| {
            if n % 2 == 0 {
                post_request(&server, n)
            } else {
                get_request(&server, &ids[n % ids.len()])
            }
        }
    });
    report("mixed", &mut burst, took);

    let failed = [&posts, &gets, &burst].iter().any(|t| {
        t.errors > 0
            || t.statuses
                .keys()
                .any(|s| !matches!(s, 200 | 201) && *s >= 400)
    });
    if failed {
        eprintln!("some requests failed (see the statuses above)");
        std::process::exit(1);
    }
}
