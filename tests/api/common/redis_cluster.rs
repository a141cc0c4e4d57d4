//! A private Redis Cluster of three masters (no replicas) on free loopback ports, made from the
//! machine's `redis-server` and `redis-cli --cluster create`, for the tests that run the
//! instances on a cluster and kill one of its masters.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One master: its client port, its cluster-bus port, and the process while it runs.
struct Node {
    port: u16,
    bus: u16,
    child: Option<Child>,
}

/// A running cluster; every node is killed and its directory removed on drop.
pub struct RedisCluster {
    dir: PathBuf,
    nodes: Vec<Node>,
}

impl RedisCluster {
    /// Starts three masters, joins them into one cluster covering all slots, and waits until
    /// every node reports `cluster_state:ok`. Ports are picked free but not held until the
    /// servers bind them, so another test can take one in between (its TCP answer then passes
    /// for a node's): a cluster that does not form is started again on fresh ports, up to
    /// three times.
    pub async fn start() -> RedisCluster {
        let mut failures = Vec::new();
        for _ in 0..3 {
            match RedisCluster::try_start().await {
                Ok(cluster) => return cluster,
                Err(why) => failures.push(why),
            }
        }
        panic!("redis-cli --cluster create failed three times: {failures:#?}");
    }

    async fn try_start() -> Result<RedisCluster, String> {
        let dir = std::env::temp_dir().join(format!(
            "ecom-redis-cluster-{}-{}",
            std::process::id(),
            super::free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let nodes = (0..3)
            .map(|_| Node {
                port: super::free_port(),
                bus: super::free_port(),
                child: None,
            })
            .collect();
        let mut cluster = RedisCluster { dir, nodes };
        for i in 0..cluster.nodes.len() {
            cluster.start_node(i).await;
        }
        let addresses: Vec<String> = cluster
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli is installed (scripts/services.sh)");
        if !created.status.success() {
            // Dropping `cluster` stops its nodes and removes its directory.
            return Err(format!(
                "{addresses:?}: {}{}",
                String::from_utf8_lossy(&created.stdout),
                String::from_utf8_lossy(&created.stderr)
            ));
        }
        cluster.wait_until_ok().await;
        Ok(cluster)
    }

    /// REDIS_URL of the cluster: every node, comma-separated (REDIS_MODE=cluster).
    pub fn url(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The flags that put an app on this cluster.
    pub fn flags(&self) -> Vec<String> {
        vec![
            "--redis-mode".into(),
            "cluster".into(),
            "--redis-url".into(),
            self.url(),
        ]
    }

    /// Kills master `i` (SIGKILL: a crash). It keeps nothing but its cluster configuration.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts master `i` again on its ports, from its cluster configuration (so it takes its
    /// slots back, empty), and waits until the cluster is whole again.
    pub async fn restart(&mut self, i: usize) {
        self.start_node(i).await;
        self.wait_until_ok().await;
    }

    async fn start_node(&mut self, i: usize) {
        let node = &self.nodes[i];
        let (port, bus) = (node.port.to_string(), node.bus.to_string());
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port,
                "--cluster-port",
                &bus,
                "--bind",
                "127.0.0.1",
            ])
            .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "1000"])
            .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
            .arg("--dir")
            .arg(&self.dir)
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/services.sh)");
        self.nodes[i].child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.nodes[i].port))
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on {port}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits (up to 20 s) until every running node reports `cluster_state:ok`.
    async fn wait_until_ok(&self) {
        self.wait_for_state("ok").await;
    }

    /// Waits (up to 20 s) until the running nodes have noticed a killed master and report
    /// `cluster_state:fail` (they refuse every command then: a slot is not covered).
    pub async fn wait_until_failed(&self) {
        self.wait_for_state("fail").await;
    }

    async fn wait_for_state(&self, state: &str) {
        let want = format!("cluster_state:{state}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let reached = self.nodes.iter().filter(|n| n.child.is_some()).all(|n| {
                Command::new("redis-cli")
                    .args(["-p", &n.port.to_string(), "cluster", "info"])
                    .output()
                    .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains(&want))
            });
            if reached {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the Redis Cluster never reported {want}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
