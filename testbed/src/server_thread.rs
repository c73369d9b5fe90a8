//! The server thread behind the test servers: a stop flag, a TCP accept
//! loop, and binding inside a namespace.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::netns::Netns;

/// How often server threads look at their stop flag.
pub(crate) const POLL: Duration = Duration::from_millis(20);

/// A server thread plus the flag that stops it; joined on Drop.
#[derive(Debug)]
pub(crate) struct Stopper {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Stopper {
    /// Calls `step` in a loop on a new thread until Drop; each step must
    /// return within about [`POLL`] so Drop is quick.
    pub(crate) fn spawn(mut step: impl FnMut() + Send + 'static) -> Stopper {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                step();
            }
        });
        Stopper {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Stopper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Binds a TCP listener inside `ns` (root namespace when `None`).
pub(crate) fn bind_tcp(ns: Option<&Netns>, addr: &str) -> Result<TcpListener> {
    match ns {
        Some(ns) => ns
            .run(|| TcpListener::bind(addr))
            .with_context(|| format!("bind tcp {addr} in {}", ns.name())),
        None => TcpListener::bind(addr).with_context(|| format!("bind tcp {addr}")),
    }
}

/// Serves each connection accepted on `listener` with `handle`, one at a
/// time on a server thread, until Drop.
pub(crate) fn serve_tcp(
    listener: TcpListener,
    handle: impl Fn(TcpStream, SocketAddr) + Send + 'static,
) -> Result<(SocketAddr, Stopper)> {
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    let stopper = Stopper::spawn(move || match listener.accept() {
        Ok((stream, peer)) => {
            let _ = stream.set_nonblocking(false);
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            handle(stream, peer);
        }
        Err(_) => std::thread::sleep(POLL),
    });
    Ok((local, stopper))
}
