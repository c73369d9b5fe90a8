//! `nft monitor`: the kernel's notifications of ruleset changes, so a
//! foreign change to our tables is repaired at once, not at the next poll.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::Notify;

/// Run `nft monitor` for ever (restarted when it ends) and wake `changed`
/// on each event that may concern our tables. Our own changes wake it
/// too; the drift check tells them apart by content.
pub fn watch(changed: Arc<Notify>) {
    tokio::spawn(async move {
        loop {
            if let Err(e) = follow(&changed).await {
                tracing::warn!(error = %e, "nft monitor failed; retrying in 1 s");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
}

async fn follow(changed: &Notify) -> std::io::Result<()> {
    let mut cmd = Command::new("nft");
    super::runner::die_with_parent(&mut cmd);
    let mut child = cmd
        .args(["monitor", "ruleset"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    // After a (re)start we may have missed events.
    changed.notify_one();
    while let Some(line) = lines.next_line().await? {
        if concerns_us(&line) {
            changed.notify_one();
        }
    }
    let status = child.wait().await?;
    Err(std::io::Error::other(format!(
        "nft monitor ended: {status}"
    )))
}

/// Events naming our tables, or a flush of everything.
fn concerns_us(line: &str) -> bool {
    line.contains(crate::plan::nat::TABLE) || line.contains("flush ruleset")
}

#[cfg(test)]
mod tests {
    #[test]
    fn events_on_our_tables_concern_us() {
        assert!(super::concerns_us("delete table ip vragent"));
        assert!(super::concerns_us(
            "delete element ip vragent pf_dnat { 1 }"
        ));
        assert!(super::concerns_us("add rule ip vragent_lb prerouting ..."));
        assert!(!super::concerns_us("add rule inet filter input accept"));
    }
}
