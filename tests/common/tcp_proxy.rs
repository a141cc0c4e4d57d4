//! A TCP proxy on loopback that a test can cut and restore: what an application behind it
//! sees of a PostgreSQL restart (open connections break, new ones are refused) without
//! touching the PostgreSQL that the other tests share.

use std::sync::Mutex;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The proxy; it stops with the test's runtime.
pub struct TcpProxy {
    pub port: u16,
    target: String,
    cuts: watch::Sender<u64>,
    accepting: Mutex<Option<JoinHandle<()>>>,
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

    /// Listens on the port again.
    pub fn restore(&self) {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket
            .bind(([127, 0, 0, 1], self.port).into())
            .expect("the proxy's port is free again");
        let listener = socket.listen(128).unwrap();
        let (target, cuts) = (self.target.clone(), self.cuts.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut cut = cuts.subscribe();
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        *self.accepting.lock().unwrap() = Some(task);
    }
}
