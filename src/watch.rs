//! Watching files for changes, debounced: the one owner of "these files
//! changed, reload them", used for the config file (with the files it
//! names) and for each certificate pair.
//!
//! The *directories* holding the files are watched, not the files: editors
//! save by renaming a new file over the old one, and Kubernetes updates a
//! mounted ConfigMap or Secret by swapping a `..data` symlink, so the
//! watched file's own inode never changes. Events are debounced
//! (`notify-debouncer-full`: a writer's several steps become one event)
//! and kept only when they concern a watched file's name or a `..`-named
//! entry (Kubernetes' atomic writer), so a busy directory beside a
//! certificate does not cause reloads. Whoever receives the signal compares
//! contents before acting: an event is a hint, not a change.

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify_debouncer_full::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{new_debouncer, DebounceEventResult, Debouncer, RecommendedCache};

/// How long a burst of events is gathered into one signal.
pub(crate) const DEBOUNCE: Duration = Duration::from_millis(200);

/// A running watch; dropping it stops the watching.
pub(crate) struct Watch {
    _debouncer: Debouncer<RecommendedWatcher, RecommendedCache>,
}

/// The directory holding `path` (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Whether an event on `path` may concern one of the watched `names`.
fn concerns(path: &Path, names: &HashSet<OsString>) -> bool {
    match path.file_name() {
        Some(n) => names.contains(n) || n.to_string_lossy().starts_with(".."),
        // An event on the directory itself (removed, renamed).
        None => true,
    }
}

/// Watches `files` through their directories and sends on `tx` once per
/// debounced burst of events that concern them. A directory that cannot
/// be watched is reported in the result's list of failures; the others are
/// watched anyway. `Err` only when no watcher can be made at all.
pub(crate) fn watch(
    files: &[PathBuf],
    tx: tokio::sync::mpsc::Sender<()>,
) -> Result<(Watch, Vec<(PathBuf, notify_debouncer_full::notify::Error)>), notify_debouncer_full::notify::Error> {
    let names: HashSet<OsString> = files.iter().filter_map(|f| f.file_name().map(OsString::from)).collect();
    let mut debouncer = new_debouncer(DEBOUNCE, None, move |result: DebounceEventResult| {
        let Ok(events) = result else { return };
        if events.iter().any(|e| e.paths.iter().any(|p| concerns(p, &names))) {
            // A full channel already holds a signal: nothing is lost.
            let _ = tx.try_send(());
        }
    })?;
    let mut dirs: Vec<PathBuf> = files.iter().map(|f| parent_dir(f)).collect();
    dirs.sort();
    dirs.dedup();
    let mut failed = Vec::new();
    for d in dirs {
        if let Err(e) = debouncer.watch(&d, RecursiveMode::NonRecursive) {
            failed.push((d, e));
        }
    }
    Ok((Watch { _debouncer: debouncer }, failed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_watched_names_and_kubernetes_entries_count() {
        let names: HashSet<OsString> = ["moat.toml", "tls.crt"].iter().map(OsString::from).collect();
        assert!(concerns(Path::new("/etc/moat/moat.toml"), &names));
        assert!(concerns(Path::new("/etc/moat/..data"), &names));
        assert!(concerns(Path::new("/etc/moat/..2026_12_04_21_00_00.123"), &names));
        assert!(!concerns(Path::new("/etc/moat/other.log"), &names));
        assert!(!concerns(Path::new("/etc/moat/moat.toml.swp"), &names));
        assert_eq!(parent_dir(Path::new("moat.toml")), PathBuf::from("."));
        assert_eq!(parent_dir(Path::new("/a/b.pem")), PathBuf::from("/a"));
    }
}
