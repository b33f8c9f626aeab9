//! Archive retention: every `archive.purge_interval_secs`, in the background (its own task,
//! off the routing path), the messages older than `archive.max_age_days` go, and each
//! archive (an account's, a room's) keeps its newest `archive.max_messages`.

use std::time::Duration;

use crate::config::ArchiveConfig;
use crate::storage::Storage;

/// One purge; how many messages went.
pub async fn purge(storage: &Storage, cfg: &ArchiveConfig) -> u64 {
    let before = match cfg.max_age_days {
        0 => i64::MIN,
        days => {
            let days = i64::try_from(days).unwrap_or(i64::MAX / 86_400_000);
            crate::storage::now_ms().saturating_sub(days.saturating_mul(86_400_000))
        }
    };
    match storage.archive.purge(before, cfg.max_messages).await {
        Ok(n) => {
            if n > 0 {
                tracing::info!(messages = n, "archive retention purge");
            }
            n
        }
        Err(e) => {
            tracing::error!("archive retention purge: {e}");
            0
        }
    }
}

/// Purges now and then every interval, until shutdown.
pub async fn purge_loop(
    storage: Storage,
    cfg: ArchiveConfig,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        purge(&storage, &cfg).await;
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(Duration::from_secs(cfg.purge_interval_secs.max(1))) => {}
        }
    }
}
