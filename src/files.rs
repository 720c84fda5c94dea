//! What the service keeps on disk is for its own user only: the SQLite database (password
//! hashes, sealed secrets), the master key, and outbox messages (live reset links).
//! Folders 0700, files 0600.
//!
//! One mechanism covers everything written later, by us or by libraries: the process
//! umask (0o077), set by `secure` before anything is created. SQLite's `-wal` and
//! `-shm` files, lettre-free outbox files and folders made with `create_dir_all` all
//! inherit it. `secure` also closes what already exists (an earlier version, a copy, a
//! folder made by hand with the default umask) and logs each path it changed. Folders
//! we create are still made 0700 explicitly, so an embedder that never calls `secure`
//! gets no world-readable folder either.

use std::path::{Path, PathBuf};

use crate::config::{Config, DbBackend, backend_of, sqlite_path};

/// The permission bits nobody but the owner may hold.
const GROUP_AND_OTHER: u32 = 0o077;

/// Sets the umask, then closes the data dir (recursively), and the SQLite database and
/// the master key where they live outside it. Returns the paths it changed (each one
/// also logged as a warning). Idempotent: a second call changes nothing.
pub fn secure(config: &Config) -> Vec<PathBuf> {
    restrict_umask();
    let mut changed = Vec::new();
    if config.data_dir.exists() {
        close_tree(&config.data_dir, &mut changed);
    }
    // Only the files themselves outside the data dir: their folders may be shared
    // (`/var/lib`, a home directory) and are not ours to change.
    let mut outside = vec![config.secret_key_file.clone()];
    if backend_of(&config.database_url) == Ok(DbBackend::Sqlite) {
        let db = PathBuf::from(sqlite_path(&config.database_url));
        for suffix in ["-wal", "-shm", "-journal", "-generation"] {
            let mut p = db.clone().into_os_string();
            p.push(suffix);
            outside.push(PathBuf::from(p));
        }
        outside.push(db);
    }
    for f in outside {
        if !f.starts_with(&config.data_dir) && f.is_file() {
            close(&f, &mut changed);
        }
    }
    changed
}

/// Every file and folder created by this process from now on is its user's alone.
fn restrict_umask() {
    // SAFETY: umask only sets the process's file-creation mask; it cannot fail.
    #[cfg(unix)]
    unsafe {
        libc::umask(GROUP_AND_OTHER as libc::mode_t);
    }
}

/// Creates `dir` and its missing parents as 0700.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

/// `root` and everything under it. Symbolic links are neither followed nor changed:
/// one planted in the folder must not make us touch what it points to.
fn close_tree(root: &Path, changed: &mut Vec<PathBuf>) {
    let mut todo = vec![root.to_path_buf()];
    while let Some(p) = todo.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            close(&p, changed);
            match std::fs::read_dir(&p) {
                Ok(entries) => todo.extend(entries.filter_map(|e| e.ok()).map(|e| e.path())),
                Err(e) => {
                    tracing::warn!(path = %p.display(), error = %e, "cannot list a folder in the data dir")
                }
            }
        } else if meta.is_file() {
            close(&p, changed);
        }
    }
}

/// Drops the group and other bits of one file or folder (never adds any).
fn close(path: &Path, changed: &mut Vec<PathBuf>) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            return;
        };
        let mode = meta.permissions().mode() & 0o7777;
        if mode & GROUP_AND_OTHER == 0 {
            return;
        }
        let fixed = mode & !GROUP_AND_OTHER;
        match std::fs::set_permissions(path, std::fs::Permissions::from_mode(fixed)) {
            Ok(()) => {
                tracing::warn!(
                    path = %path.display(),
                    was = format!("{mode:o}"),
                    now = format!("{fixed:o}"),
                    "closed a file other users could read: {}", path.display()
                );
                changed.push(path.to_path_buf());
            }
            Err(e) => tracing::warn!(
                path = %path.display(),
                error = %e,
                "other users can read this file and it could not be closed: {}", path.display()
            ),
        }
    }
}

/// A 64-bit counter kept in a small file that every process mapping it shares, for the
/// server and the command line on one SQLite database: the command line moves it on
/// after a change the server may have memoised, and the server sees that at its next
/// read. A read is an atomic load from shared memory, no system call.
///
/// The file is the service user's alone (the umask of [`secure`]); someone able to
/// truncate it under a running server could crash it, as they could replace its
/// database.
#[cfg(unix)]
pub struct SharedCounter {
    counter: std::ptr::NonNull<std::sync::atomic::AtomicU64>,
}

// SAFETY: the pointer is to a shared mapping that lives as long as the value and is
// only used through `AtomicU64`, which is safe to share between threads (and processes).
#[cfg(unix)]
unsafe impl Send for SharedCounter {}
#[cfg(unix)]
unsafe impl Sync for SharedCounter {}

#[cfg(unix)]
impl SharedCounter {
    const LEN: usize = std::mem::size_of::<u64>();

    /// Maps the counter in `path`, creating the file (as zero) if needed.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        use std::os::unix::io::AsRawFd;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)?;
        // Growing to the same length twice (two processes starting together) keeps
        // what either wrote.
        if file.metadata()?.len() < Self::LEN as u64 {
            file.set_len(Self::LEN as u64)?;
        }
        // SAFETY: a fresh shared mapping of the file's first 8 bytes, which exist; the
        // descriptor may be closed afterwards (the mapping keeps the file).
        let at = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                Self::LEN,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if at == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        // A mapping starts on a page boundary, so the counter is aligned.
        let counter =
            std::ptr::NonNull::new(at.cast()).ok_or_else(std::io::Error::last_os_error)?;
        Ok(Self { counter })
    }

    pub fn get(&self) -> &std::sync::atomic::AtomicU64 {
        // SAFETY: mapped, aligned and 8 bytes long until `drop`.
        unsafe { self.counter.as_ref() }
    }
}

#[cfg(unix)]
impl Drop for SharedCounter {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `open`, unmapped once.
        unsafe {
            libc::munmap(self.counter.as_ptr().cast(), Self::LEN);
        }
    }
}

/// Where the processes on one SQLite database share their counter: beside it, as
/// SQLite keeps its own `-wal` and `-shm` files.
pub fn shared_counter_path(config: &Config) -> Option<PathBuf> {
    if backend_of(&config.database_url) != Ok(DbBackend::Sqlite) {
        return None;
    }
    let mut p = PathBuf::from(sqlite_path(&config.database_url)).into_os_string();
    p.push("-generation");
    Some(PathBuf::from(p))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn closes_folders_and_files_but_not_what_a_link_points_to() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let sub = data.join("outbox");
        std::fs::create_dir_all(&sub).unwrap();
        let (db, mail, elsewhere) = (data.join("db"), sub.join("m.eml"), dir.path().join("x"));
        for f in [&db, &mail, &elsewhere] {
            std::fs::write(f, b"").unwrap();
            std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        std::fs::set_permissions(&mail, std::fs::Permissions::from_mode(0o400)).unwrap();
        std::os::unix::fs::symlink(&elsewhere, data.join("link")).unwrap();
        for d in [&data, &sub] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let mut changed = Vec::new();
        close_tree(&data, &mut changed);
        changed.sort();
        assert_eq!(changed, vec![data.clone(), db.clone(), sub.clone()]);
        assert_eq!(
            [
                mode(&data),
                mode(&sub),
                mode(&db),
                mode(&mail),
                mode(&elsewhere)
            ],
            [0o700, 0o700, 0o600, 0o400, 0o644]
        );
        let mut again = Vec::new();
        close_tree(&data, &mut again);
        assert!(again.is_empty());
    }

    #[test]
    fn a_shared_counter_moved_in_one_mapping_is_seen_in_another() {
        use std::sync::atomic::Ordering;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db-generation");
        let (a, b) = (
            SharedCounter::open(&path).unwrap(),
            SharedCounter::open(&path).unwrap(),
        );
        assert_eq!(b.get().load(Ordering::Acquire), 0);
        a.get().fetch_add(1, Ordering::AcqRel);
        assert_eq!(b.get().load(Ordering::Acquire), 1);
        drop(a);
        assert_eq!(
            SharedCounter::open(&path)
                .unwrap()
                .get()
                .load(Ordering::Acquire),
            1
        );
        assert_eq!(mode(&path), 0o600);
    }
}
