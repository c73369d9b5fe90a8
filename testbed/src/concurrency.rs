//! Many calls from several tokio tasks at once inside a namespace, every
//! failure kept: for races that only show when calls overlap (the kernel's
//! one netlink dump per socket, for one).

use std::future::Future;
use std::sync::Arc;

use crate::netns::Netns;

/// Runs `calls` calls of `call` in each of `tasks` tasks on a runtime with
/// `tasks` worker threads inside `ns`, sharing what `setup` returns (it too
/// runs inside `ns`, on the runtime); `call` gets that and its task's
/// index. Returns every error, in task order.
pub fn concurrent_failures<S, Fut>(
    ns: &Netns,
    tasks: usize,
    calls: usize,
    setup: impl FnOnce() -> S + Send,
    call: fn(Arc<S>, usize) -> Fut,
) -> Vec<String>
where
    S: Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    ns.run(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(tasks)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        rt.block_on(async move {
            let shared = Arc::new(setup());
            let handles: Vec<_> = (0..tasks)
                .map(|i| {
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        let mut failures = vec![];
                        for _ in 0..calls {
                            if let Err(e) = call(shared.clone(), i).await {
                                failures.push(e);
                            }
                        }
                        failures
                    })
                })
                .collect();
            let mut all = vec![];
            for h in handles {
                all.extend(h.await.expect("a task panicked"));
            }
            all
        })
    })
}
