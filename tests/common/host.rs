//! A `MemberlistStack` on a runtime of its own, for tests that attack it: a wedged node fails a
//! check (a broadcast does not arrive in time) instead of hanging the test.

use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use memberlist_plumtree::memberlist::Options;
use memberlist_plumtree::memberlist::proto::SecretKey;
use memberlist_plumtree::{
    Delivery, MemberlistStack, PlumtreeConfig, PlumtreeDelegate, PlumtreeMemberlist, TcpStack,
};

/// Hands each delivered payload to the test thread.
#[derive(Clone)]
pub struct Inbox(mpsc::SyncSender<Vec<u8>>);

impl PlumtreeDelegate<u64> for Inbox {
    fn on_deliver(&self, delivery: Delivery<u64>) {
        let _ = self.0.try_send(delivery.payload.to_vec());
    }
}

/// A node on a two-worker runtime of its own; the runtime is abandoned (not joined) at the end,
/// so that a node whose workers spin cannot hang the test.
pub struct Host {
    runtime: Option<tokio::runtime::Runtime>,
    stack: Option<Stack>,
    inbox: mpsc::Receiver<Vec<u8>>,
    pub address: SocketAddr,
}

fn swim() -> Options {
    Options::lan()
        .with_timeout(Duration::from_secs(2))
        .with_probe_interval(Duration::from_millis(200))
        .with_gossip_interval(Duration::from_millis(50))
        .with_push_pull_interval(Duration::from_secs(2))
}

/// The stack a host runs.
enum Stack {
    Tcp(TcpStack<u64, Inbox>),
    #[cfg(feature = "quic")]
    Quic(memberlist_plumtree::QuicStack<u64, Inbox>),
    #[cfg(feature = "quic")]
    Tls(memberlist_plumtree::TlsStack<u64, Inbox>),
}

/// How a certified node runs memberlist.
#[cfg(feature = "quic")]
#[derive(Clone, Copy, Debug)]
pub enum Certified {
    Quic,
    Tls,
}

/// Runs `$body` with `$node` bound to whichever stack `$stack` holds.
macro_rules! on_stack {
    ($stack:expr, $node:ident => $body:expr) => {
        match $stack {
            Stack::Tcp($node) => $body,
            #[cfg(feature = "quic")]
            Stack::Quic($node) => $body,
            #[cfg(feature = "quic")]
            Stack::Tls($node) => $body,
        }
    };
}

/// A builder with the loopback SWIM timing these tests use.
fn builder(id: u64, seeds: Vec<SocketAddr>) -> memberlist_plumtree::StackBuilder<u64> {
    MemberlistStack::builder(id)
        .seeds(seeds)
        .config(PlumtreeConfig::lan().with_rng_seed(Some(id)))
        .memberlist_options(swim())
}

impl Host {
    pub fn start(id: u64, seeds: &[SocketAddr]) -> Result<Self, String> {
        Self::start_with(id, seeds, None)
    }

    /// As `start`, with a memberlist keyring of one key.
    pub fn start_with(
        id: u64,
        seeds: &[SocketAddr],
        key: Option<SecretKey>,
    ) -> Result<Self, String> {
        let seeds = seeds.to_vec();
        Self::launch(id, move |inbox| async move {
            let builder = builder(id, seeds);
            let builder = match key {
                Some(key) => builder.secret_key(key),
                None => builder,
            };
            builder.build(inbox).await.map(Stack::Tcp)
        })
    }

    /// A node whose memberlist is authenticated by `tls`: over QUIC (`build_quic`) or with its
    /// TCP streams over TLS (`build_tls`).
    #[cfg(feature = "quic")]
    pub fn start_certified(
        id: u64,
        seeds: &[SocketAddr],
        tls: memberlist_plumtree::QuicTls,
        over: Certified,
    ) -> Result<Self, String> {
        let seeds = seeds.to_vec();
        Self::launch(id, move |inbox| async move {
            let config = memberlist_plumtree::QuicConfig::lan();
            let builder = builder(id, seeds);
            match over {
                Certified::Quic => builder
                    .build_quic(inbox, &tls, &config)
                    .await
                    .map(Stack::Quic),
                Certified::Tls => builder
                    .build_tls(inbox, &tls, &config)
                    .await
                    .map(Stack::Tls),
            }
        })
    }

    fn launch<F, Fut>(id: u64, build: F) -> Result<Self, String>
    where
        F: FnOnce(Inbox) -> Fut,
        Fut: std::future::Future<Output = Result<Stack, memberlist_plumtree::StackError>>,
    {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let (tx, inbox) = mpsc::sync_channel(100_000);
        let built = runtime.block_on(async move {
            tokio::time::timeout(Duration::from_secs(10), build(Inbox(tx))).await
        });
        let stack = match built {
            Ok(Ok(stack)) => stack,
            Ok(Err(error)) => {
                runtime.shutdown_background();
                return Err(format!("node {id}: {error}"));
            }
            Err(_) => {
                runtime.shutdown_background();
                return Err(format!("node {id}: build timed out"));
            }
        };
        let address = on_stack!(&stack, node => *node.memberlist().advertise_address());
        Ok(Self {
            runtime: Some(runtime),
            stack: Some(stack),
            inbox,
            address,
        })
    }

    /// The TCP stack (panics for a QUIC one).
    pub fn node(&self) -> &TcpStack<u64, Inbox> {
        match self.stack.as_ref().expect("running") {
            Stack::Tcp(node) => node,
            #[cfg(feature = "quic")]
            _ => panic!("not a TCP stack"),
        }
    }

    pub fn plumtree(&self) -> Arc<PlumtreeMemberlist<u64, Inbox>> {
        on_stack!(self.stack.as_ref().expect("running"), node => node.plumtree().clone())
    }

    pub fn guard_stats(&self) -> memberlist_plumtree::GuardStats {
        on_stack!(self.stack.as_ref().expect("running"), node => node.guard_stats())
            .expect("a guarded stack")
    }

    pub fn members(&self) -> Vec<u64> {
        on_stack!(self.stack.as_ref().expect("running"), node => node.members())
    }

    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime.as_ref().expect("running")
    }

    /// Starts a broadcast on the node's own runtime (a wedged node never runs it).
    pub fn broadcast(&self, payload: Vec<u8>) {
        let node = self.plumtree();
        self.runtime().spawn(async move {
            let _ = node.broadcast(payload).await;
        });
    }

    /// Whether `payload` is delivered here within `limit`.
    pub fn receives(&self, payload: &[u8], limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.inbox.recv_timeout(left) {
                Ok(got) if got == payload => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
        false
    }

    /// Waits until the node counts `n` peers.
    pub fn wait_members(&self, n: usize, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.members().len() >= n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let (Some(runtime), Some(stack)) = (self.runtime.take(), self.stack.take()) {
            // Waited for from this thread, not with the node's own timers: the workers of a
            // wedged node never run them. Such a node is abandoned with its runtime.
            let (done, stopped) = mpsc::channel();
            runtime.spawn(async move {
                let _ = on_stack!(&stack, node => node.shutdown().await);
                let _ = done.send(());
            });
            let _ = stopped.recv_timeout(Duration::from_secs(3));
            runtime.shutdown_background();
        }
    }
}

/// Two joined nodes: the target of the attack and a witness on another runtime.
pub fn pair() -> (Host, Host) {
    pair_with(None)
}

/// As `pair`, both nodes with the keyring `key`.
pub fn pair_with(key: Option<SecretKey>) -> (Host, Host) {
    let target = Host::start_with(1, &[], key).expect("target starts");
    let witness = Host::start_with(2, &[target.address], key).expect("witness starts");
    assert!(target.wait_members(1, Duration::from_secs(10)), "joined");
    assert!(witness.wait_members(1, Duration::from_secs(10)), "joined");
    (target, witness)
}

/// As `pair`, both nodes certified by `ca` and run `over` QUIC or TLS.
#[cfg(feature = "quic")]
pub fn certified_pair(ca: &memberlist_plumtree::ClusterCa, over: Certified) -> (Host, Host) {
    let tls = |id: u64| ca.node_tls(&id).expect("certificate");
    let target = Host::start_certified(1, &[], tls(1), over).expect("target starts");
    let witness =
        Host::start_certified(2, &[target.address], tls(2), over).expect("witness starts");
    assert!(target.wait_members(1, Duration::from_secs(10)), "joined");
    assert!(witness.wait_members(1, Duration::from_secs(10)), "joined");
    (target, witness)
}

/// Broadcasts flow both ways between `target` and `witness` (each within `limit`).
pub fn flows(target: &Host, witness: &Host, tag: &str, limit: Duration) -> Result<(), String> {
    let out = format!("{tag}: from the target").into_bytes();
    target.broadcast(out.clone());
    if !witness.receives(&out, limit) {
        return Err(format!("{tag}: the target's broadcast did not arrive"));
    }
    let back = format!("{tag}: to the target").into_bytes();
    witness.broadcast(back.clone());
    if !target.receives(&back, limit) {
        return Err(format!("{tag}: the target delivered nothing"));
    }
    Ok(())
}

pub fn connect(to: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&to, Duration::from_secs(2)).expect("connect");
    stream
        .set_write_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    stream
}
