//! Writing a file that neither a reader nor a crash sees half done: the
//! atomic replace (temporary file, fsync, rename, directory fsync) that
//! state files, checkpoints, manifests and pending records are written
//! with, and the lock files that keep two runs from replacing the same
//! file, or loading the same target, at once. Plumbing: it knows no store.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Holds a lock file for as long as it lives.
pub struct FileLock {
    _file: File,
}

/// Takes the lock file `PATH.lock` that guards `path`, waiting for another
/// run holding it.
pub fn lock_file(path: &Path) -> Result<FileLock> {
    let (file, lock_path) = open_lock_file(path)?;
    file.lock()
        .with_context(|| format!("cannot lock {}", lock_path.display()))?;
    Ok(FileLock { _file: file })
}

/// Opens (creating it) the lock file `PATH.lock` that guards `path`.
pub fn open_lock_file(path: &Path) -> Result<(File, PathBuf)> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = PathBuf::from(lock_path);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("cannot open lock file {}", lock_path.display()))?;
    Ok((file, lock_path))
}

/// Takes the lock of a file target (`.NAME.etl-lock` beside it), waiting
/// for another run writing the same file: two appends would each copy the
/// old file, and the second rename would drop the first one's rows.
pub fn lock_target(path: &Path) -> Result<FileLock> {
    let name = path
        .file_name()
        .map_or_else(|| "target".into(), |n| n.to_string_lossy().into_owned());
    let lock_path = path.with_file_name(format!(".{name}.etl-lock"));
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("cannot open lock file {}", lock_path.display()))?;
    file.lock()
        .with_context(|| format!("cannot lock {}", lock_path.display()))?;
    Ok(FileLock { _file: file })
}

/// Replaces `path` with `bytes` so that a reader (or a crash) sees the old
/// file or the new one, never a mix.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp_name);
    let result = (|| -> Result<()> {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("cannot write {}", path.display()))
}

/// The temporary file a target is written to before it is renamed.
pub fn temp_path(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map_or_else(|| "target".into(), |n| n.to_string_lossy().into_owned());
    target.with_file_name(format!(".{name}.etl-tmp-{}", std::process::id()))
}

/// Makes a finished temporary file the target: fsync, rename, fsync the
/// directory, so that a crash leaves the old file or the new one.
pub fn finish_file(tmp: &Path, target: &Path) -> Result<()> {
    File::open(tmp)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot sync {}", tmp.display()))?;
    std::fs::rename(tmp, target).with_context(|| {
        format!(
            "cannot move the new file into place at {}",
            target.display()
        )
    })?;
    let dir = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // Not every filesystem lets a directory be synced; the rename stands.
    File::open(dir).and_then(|d| d.sync_all()).ok();
    Ok(())
}
