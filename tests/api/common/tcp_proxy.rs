//! A TCP proxy on loopback that a test can cut and restore: what an application behind it
//! sees of a PostgreSQL restart (open connections break, new ones are refused) without
//! touching the PostgreSQL that the other tests share.
//!
//! It can also break one connection at one COMMIT ([`TcpProxy::fault_at_commit`]), to put a
//! transaction in doubt deterministically instead of hoping a cut lands on it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What happens to the COMMIT that [`TcpProxy::fault_at_commit`] catches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitFault {
    /// PostgreSQL receives the COMMIT and applies it; its answer never reaches the client.
    LoseAnswer,
    /// The COMMIT never reaches PostgreSQL, which rolls the transaction back.
    LoseCommit,
}

/// An armed fault: the first connection that sends `after` breaks at its next COMMIT.
struct Arm {
    after: &'static [u8],
    fault: CommitFault,
    fired: Arc<AtomicUsize>,
}

/// The proxy; it stops with the test's runtime.
pub struct TcpProxy {
    pub port: u16,
    target: String,
    cuts: watch::Sender<u64>,
    accepting: Mutex<Option<JoinHandle<()>>>,
    armed: Arc<Mutex<Option<Arm>>>,
}

impl TcpProxy {
    /// Forwards a free loopback port to `target` (`host:port`).
    pub async fn start(target: &str) -> TcpProxy {
        let port = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let proxy = TcpProxy {
            port,
            target: target.to_owned(),
            cuts: watch::channel(0u64).0,
            accepting: Mutex::new(None),
            armed: Arc::default(),
        };
        proxy.restore();
        proxy
    }

    /// Breaks every open connection and closes the port, so new connections are refused.
    pub fn cut(&self) {
        if let Some(task) = self.accepting.lock().unwrap().take() {
            task.abort();
        }
        self.cuts.send_modify(|n| *n += 1);
    }

    /// Arms a one-shot fault: the first connection whose client sends bytes containing
    /// `after` (a statement's text, say) breaks at its next COMMIT, as `fault` says. The
    /// counter reads 1 once it has fired.
    pub fn fault_at_commit(&self, after: &'static [u8], fault: CommitFault) -> Arc<AtomicUsize> {
        let fired = Arc::new(AtomicUsize::new(0));
        *self.armed.lock().unwrap() = Some(Arm {
            after,
            fault,
            fired: fired.clone(),
        });
        fired
    }

    /// Listens on the port again.
    pub fn restore(&self) {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket
            .bind(([127, 0, 0, 1], self.port).into())
            .expect("the proxy's port is free again");
        let listener = socket.listen(128).unwrap();
        let (target, cuts, armed) = (self.target.clone(), self.cuts.clone(), self.armed.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let mut cut = cuts.subscribe();
                let (target, armed) = (target.clone(), armed.clone());
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    // Set when the caught COMMIT's answer must not be relayed.
                    let hold = Arc::new(AtomicBool::new(false));
                    let to_server = to_server(client_read, server_write, armed, hold.clone());
                    let to_client = to_client(server_read, client_write, hold);
                    tokio::select! {
                        // A fault ends the connection when the client side ends: PostgreSQL
                        // sees the close; the answer side ends with it (or is held).
                        _ = async { tokio::join!(to_server, to_client) } => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        *self.accepting.lock().unwrap() = Some(task);
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Relays client -> server, breaking the connection at an armed COMMIT.
async fn to_server(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    armed: Arc<Mutex<Option<Arm>>>,
    hold: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut marked = false;
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        let fault = {
            let mut armed = armed.lock().unwrap();
            if let Some(arm) = armed.as_ref() {
                marked |= contains(chunk, arm.after);
            }
            // A simple query 'Q' "COMMIT", as sqlx ends a transaction.
            if marked && contains(chunk, b"COMMIT\0") {
                armed.take()
            } else {
                None
            }
        };
        if let Some(arm) = fault {
            hold.store(true, Ordering::SeqCst);
            arm.fired.fetch_add(1, Ordering::SeqCst);
            if arm.fault == CommitFault::LoseAnswer {
                let _ = to.write_all(chunk).await;
                // Time for PostgreSQL to apply it (its answer is held back).
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            // Dropping both halves closes the client's request side and PostgreSQL's socket.
            return;
        }
        if to.write_all(chunk).await.is_err() {
            return;
        }
    }
}

/// Relays server -> client until either side ends or an answer is held.
async fn to_client(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, hold: Arc<AtomicBool>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if hold.load(Ordering::SeqCst) || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
