//! Reloading the policy file (on SIGHUP): a file with any error is refused, its reason
//! logged, and the running policies kept.

use std::path::Path;
use std::sync::Arc;

use nanolimit::policy::load_policies;
use tokio::sync::watch;

use super::commands::State;
use super::stats::Stats;

/// Re-reads `path` and swaps the policies in, carrying key state over by the reload rule
/// (see [`super::policies`]). The number of policies now in force, or why nothing changed.
pub fn reload(state: &State, path: &Path) -> Result<usize, String> {
    let outcome = load_policies(path)
        .map_err(|e| e.to_string())
        .and_then(|specs| {
            let n = specs.len();
            state
                .policies
                .replace(specs)
                .map(|()| n)
                .map_err(|e| format!("{}: {e}", path.display()))
        });
    match &outcome {
        Ok(n) => {
            Stats::bump(&state.stats.reloads);
            tracing::info!(file = %path.display(), policies = n, "policies reloaded");
        }
        Err(e) => {
            Stats::bump(&state.stats.reload_failures);
            tracing::error!(error = %e, "policy reload refused; the old policies stay in force");
        }
    }
    outcome
}

/// Reloads `path` on every SIGHUP until shutdown. Without a policy file (`None`: the
/// built-in policy) a SIGHUP is logged and changes nothing; either way it never stops the
/// server, as the signal's default action would.
#[cfg(unix)]
pub async fn on_sighup(
    state: Arc<State>,
    path: Option<std::path::PathBuf>,
    mut shutdown: watch::Receiver<bool>,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGHUP; reloads are off");
            return;
        }
    };
    loop {
        tokio::select! {
            s = hangups.recv() => {
                if s.is_none() {
                    return;
                }
                match &path {
                    Some(path) => {
                        let _ = reload(&state, path);
                    }
                    None => tracing::warn!("SIGHUP: no policy file to reload (the built-in policy is in force)"),
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}
