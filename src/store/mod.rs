//! The state directory (`docs/reference/files.md`): accounts, archived versions,
//! `live/` links.
//!
//! ```text
//! <state_dir>/                      0700
//!   accounts/<ca>/account.json      0600
//!   archive/<name>/<n>/{cert,chain,fullchain,privkey}.pem   (privkey 0600)
//!   live/<name> -> ../archive/<name>/<n>
//!   state.json
//! ```
//!
//! The one invariant: at every instant, `live/<name>` points at a complete version
//! whose key matches its certificate. A new version is written into a hidden
//! temporary directory, every file and the directory are fsynced, the directory is
//! renamed to its number, and only then is a new symlink renamed over `live/<name>`.
//! A crash leaves at most a stray `.tmp-*` entry: [`Store::lock`] removes those
//! in `live/`, the next publish of the certificate those in `archive/<name>/`.
//!
//! Readers (`renewd status`, tests) may look at any time. Writers — the daemon,
//! a one-shot `renewd renew` — first take [`Store::lock`], an exclusive `flock`
//! on `<state_dir>/.lock`, so two writers never interleave and crash recovery
//! never deletes the temporary files of a live writer.
//! This module knows files, not ACME: it never decides *when* to write.

pub mod cert;
pub mod facts;
mod key;
mod serial;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use cert::CertInfo;
pub use facts::{Facts, Stamp};
pub use serial::Serial;

/// A store operation that failed, with the path it failed on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file system call failed.
    #[error("{}: {source}{}", path.display(), hint(source))]
    Io {
        /// The path operated on.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A stored certificate could not be read.
    #[error("{}: {source}", path.display())]
    Cert {
        /// The certificate file.
        path: PathBuf,
        /// Why it could not be read.
        source: cert::CertError,
    },
    /// Another process is writing to the store.
    #[error("{}: another renewd process is renewing certificates here (it holds .lock)", path.display())]
    Locked {
        /// The state directory.
        path: PathBuf,
    },
    /// A directory of the store could let someone else redirect or read what
    /// is written there.
    #[error("{}: {why}; refusing to use it", path.display())]
    Unsafe {
        /// The directory.
        path: PathBuf,
        /// What is wrong and what to do.
        why: String,
    },
    /// A stored file has content that cannot be right.
    #[error("{}: {message}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
}

/// `dir` must be a directory owned by this user; a symbolic link is refused
/// too when `no_link` (the state directory itself may be a link an
/// administrator made).
fn check_owned(dir: &Path, no_link: bool) -> Result<(), Error> {
    let unsafe_dir = |why: String| Error::Unsafe {
        path: dir.to_owned(),
        why,
    };
    let link = fs::symlink_metadata(dir).map_err(io_err(dir))?;
    if no_link && link.file_type().is_symlink() {
        return Err(unsafe_dir(
            "is a symbolic link (whoever planted it could redirect the store): remove it"
                .to_owned(),
        ));
    }
    let meta = fs::metadata(dir).map_err(io_err(dir))?;
    let me = nix::unistd::geteuid().as_raw();
    if !meta.is_dir() {
        return Err(unsafe_dir("is not a directory".to_owned()));
    }
    if meta.uid() != me {
        return Err(unsafe_dir(format!(
            "is owned by uid {}, not by uid {me} that renewd runs as (chown -R {me} {})",
            meta.uid(),
            dir.display()
        )));
    }
    Ok(())
}

/// What to do about a failure the operator, not renewd, must fix.
fn hint(error: &io::Error) -> &'static str {
    match error.kind() {
        io::ErrorKind::StorageFull => {
            " (free space there: the live certificates are untouched, and failed renewals \
             are retried on their own)"
        }
        io::ErrorKind::ReadOnlyFilesystem => {
            " (renewd writes certificates, keys and state.json there: make it writable)"
        }
        _ => "",
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// Exclusive write access to a store; released on drop.
#[derive(Debug)]
pub struct StoreLock {
    _lock: nix::fcntl::Flock<File>,
}

/// The PEM files of one newly issued version.
#[derive(Clone)]
pub struct Issued {
    /// Leaf certificate.
    pub cert_pem: String,
    /// Intermediates, without the leaf.
    pub chain_pem: String,
    /// Leaf followed by intermediates.
    pub fullchain_pem: String,
    /// PKCS#8 private key.
    pub key_pem: String,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("cert_pem", &self.cert_pem)
            .field("chain_pem", &self.chain_pem)
            .field("fullchain_pem", &self.fullchain_pem)
            .field("key_pem", &crate::secret::Redacted(&self.key_pem))
            .finish()
    }
}

impl Issued {
    /// Splits a downloaded `fullchain` into leaf and chain.
    ///
    /// # Errors
    ///
    /// [`cert::CertError::NoPem`] when the chain holds no certificate.
    pub fn from_fullchain(fullchain_pem: String, key_pem: String) -> Result<Self, cert::CertError> {
        const END: &str = "-----END CERTIFICATE-----";
        let end = fullchain_pem.find(END).ok_or(cert::CertError::NoPem)? + END.len();
        let cert_pem = format!("{}\n", fullchain_pem[..end].trim());
        let chain_pem = fullchain_pem[end..].trim_start().to_owned();
        Ok(Self {
            cert_pem,
            chain_pem,
            fullchain_pem,
            key_pem,
        })
    }
}

/// The version `live/<name>` points at, read back and checked.
#[derive(Debug, Clone)]
pub struct Lineage {
    /// Certificate name.
    pub name: String,
    /// Archive version number.
    pub version: u32,
    /// `archive/<name>/<n>`.
    pub dir: PathBuf,
    /// The parsed leaf. Its `der` and `spki_der` are empty when it was built
    /// from remembered [`Facts`]: [`Lineage::der`] reads the DER then.
    pub cert: CertInfo,
    /// Whether `privkey.pem` belongs to `cert.pem`.
    pub key_matches: bool,
}

impl Lineage {
    /// The DER of the leaf, read from `cert.pem` unless it was parsed just now.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] / [`Error::Cert`] when `cert.pem` cannot be read.
    pub fn der(&self) -> Result<Vec<u8>, Error> {
        if !self.cert.der.is_empty() {
            return Ok(self.cert.der.clone());
        }
        let path = self.dir.join("cert.pem");
        let pem = fs::read(&path).map_err(io_err(&path))?;
        CertInfo::from_pem(&pem)
            .map(|c| c.der)
            .map_err(|source| Error::Cert { path, source })
    }
}

/// A lineage read with [`Store::lineage_known`], and its facts when they were
/// read anew (`None`: those given still hold, or there is nothing to know).
pub type Known = (Result<Option<Lineage>, Error>, Option<Facts>);

/// Handle on a state directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    /// `live/`, open: lineages are looked up relative to it, which with
    /// 100,000 of them saves walking the state directory's path each time.
    live: Arc<File>,
}

impl Store {
    /// Opens (creating if needed) the state directory at `root` and forces its
    /// mode to 0700. Writers must then take [`Store::lock`].
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the directory that could not be created.
    pub fn open(root: &Path) -> Result<Self, Error> {
        let dirs = [
            root.to_owned(),
            root.join("accounts"),
            root.join("archive"),
            root.join("live"),
        ];
        for dir in &dirs {
            fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        // A directory someone else owns or planted as a link (a state directory
        // created before the first start, say) could redirect renewd's writes or
        // expose the keys: refuse it rather than write through it.
        for (i, dir) in dirs.iter().enumerate() {
            check_owned(dir, i > 0)?;
        }
        fs::set_permissions(root, fs::Permissions::from_mode(0o700)).map_err(io_err(root))?;
        let live = root.join("live");
        let live = File::open(&live).map_err(io_err(&live))?;
        Ok(Self {
            root: root.to_owned(),
            live: Arc::new(live),
        })
    }

    /// Takes the writer lock and removes what an interrupted write left behind.
    ///
    /// # Errors
    ///
    /// [`Error::Locked`] when another process holds it, [`Error::Io`] otherwise.
    pub fn lock(&self) -> Result<StoreLock, Error> {
        use nix::fcntl::{Flock, FlockArg};
        let path = self.root.join(".lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_err(&path))?;
        let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
            if errno == nix::errno::Errno::EWOULDBLOCK {
                Error::Locked {
                    path: self.root.clone(),
                }
            } else {
                io_err(&path)(errno.into())
            }
        })?;
        self.recover()?;
        Ok(StoreLock { _lock: lock })
    }

    /// The state directory.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `live/<name>`, the directory servers point at.
    #[must_use]
    pub fn live_dir(&self, name: &str) -> PathBuf {
        self.root.join("live").join(name)
    }

    fn archive_dir(&self, name: &str) -> PathBuf {
        self.root.join("archive").join(name)
    }

    /// Removes the temporary links an interrupted [`Store::publish`] may
    /// have left in `live/`. Those in `archive/<name>/` are hidden and never
    /// read; the next publish of `<name>` removes them (listing every
    /// `archive/<name>/` here took seconds with 100,000 certificates).
    fn recover(&self) -> Result<(), Error> {
        let live = self.root.join("live");
        for entry in read_dir(&live)? {
            let name = entry.file_name();
            if name.to_string_lossy().starts_with(".tmp-") {
                remove_path(&entry.path())?;
            }
        }
        Ok(())
    }

    /// Names of all lineages that have a `live/` link.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when `live/` cannot be listed.
    pub fn names(&self) -> Result<Vec<String>, Error> {
        let mut names: Vec<String> = read_dir(&self.root.join("live"))?
            .into_iter()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Reads the version `live/<name>` points at; `None` when there is none yet.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] / [`Error::Cert`] / [`Error::Corrupt`] when the link exists but
    /// what it points at cannot be read.
    pub fn lineage(&self, name: &str) -> Result<Option<Lineage>, Error> {
        self.read_lineage(name)
            .map(|read| read.map(|(lineage, _)| lineage))
    }

    /// [`Store::lineage`], from `known` when they still describe the live
    /// version (one `stat(2)` of `live/<name>/cert.pem`, see [`facts`]), else
    /// read, with the new facts.
    pub fn lineage_known(&self, name: &str, known: Option<&Facts>) -> Known {
        if let Some(known) = known {
            let cert = Path::new(name).join("cert.pem");
            if Stamp::at_in(&self.live, &cert).is_ok_and(|s| s == known.stamp) {
                let lineage = Lineage {
                    name: name.to_owned(),
                    version: known.version,
                    dir: self.archive_dir(name).join(known.version.to_string()),
                    cert: known.cert(),
                    key_matches: known.key_matches,
                };
                return (Ok(Some(lineage)), None);
            }
        }
        match self.read_lineage(name) {
            Ok(Some((lineage, stamp))) => {
                let facts = Facts::new(lineage.version, stamp, &lineage.cert, lineage.key_matches);
                let fresh = (known != Some(&facts)).then_some(facts);
                (Ok(Some(lineage)), fresh)
            }
            Ok(None) => (Ok(None), None),
            Err(e) => (Err(e), None),
        }
    }

    /// Reads the version `live/<name>` points at, with the stamp of its `cert.pem`.
    fn read_lineage(&self, name: &str) -> Result<Option<(Lineage, Stamp)>, Error> {
        let link = self.live_dir(name);
        let target = match fs::read_link(&link) {
            Ok(target) => target,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&link)(e)),
        };
        let version: u32 = target
            .file_name()
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| Error::Corrupt {
                path: link.clone(),
                message: format!("points at {}, not at an archive version", target.display()),
            })?;
        let dir = self.archive_dir(name).join(version.to_string());
        let cert_path = dir.join("cert.pem");
        let (cert_pem, stamp) = facts::read_stamped(&cert_path).map_err(io_err(&cert_path))?;
        let cert = CertInfo::from_pem(&cert_pem).map_err(|source| Error::Cert {
            path: cert_path,
            source,
        })?;
        let key_path = dir.join("privkey.pem");
        let key_pem = fs::read_to_string(&key_path).map_err(io_err(&key_path))?;
        let lineage = Lineage {
            name: name.to_owned(),
            version,
            key_matches: cert.matches_key(&key_pem),
            dir,
            cert,
        };
        Ok(Some((lineage, stamp)))
    }

    /// The private key of the live version, for `reuse_key`.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when it cannot be read.
    pub fn live_key(&self, name: &str) -> Result<String, Error> {
        let path = self.live_dir(name).join("privkey.pem");
        fs::read_to_string(&path).map_err(io_err(&path))
    }

    /// Stores `issued` as the next archive version of `name` and points `live/<name>`
    /// at it. Crash-safe: see the module docs.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the path that failed; `live/<name>` is then unchanged.
    pub fn publish(&self, name: &str, issued: &Issued) -> Result<u32, Error> {
        let archive = self.archive_dir(name);
        fs::create_dir_all(&archive).map_err(io_err(&archive))?;
        let version = self.next_version(&archive)?;
        let tmp = archive.join(format!(".tmp-{version}"));
        remove_path(&tmp)?;
        fs::create_dir(&tmp).map_err(io_err(&tmp))?;
        write_synced(&tmp.join("privkey.pem"), issued.key_pem.as_bytes(), 0o600)?;
        write_synced(&tmp.join("cert.pem"), issued.cert_pem.as_bytes(), 0o644)?;
        write_synced(&tmp.join("chain.pem"), issued.chain_pem.as_bytes(), 0o644)?;
        write_synced(
            &tmp.join("fullchain.pem"),
            issued.fullchain_pem.as_bytes(),
            0o644,
        )?;
        sync_dir(&tmp)?;
        let dir = archive.join(version.to_string());
        fs::rename(&tmp, &dir).map_err(io_err(&dir))?;
        sync_dir(&archive)?;
        self.point_live(name, version)?;
        Ok(version)
    }

    /// One more than the highest version in `archive`, after removing what
    /// an interrupted publish left there (see [`Store::recover`]).
    fn next_version(&self, archive: &Path) -> Result<u32, Error> {
        let entries = read_dir(archive)?;
        for entry in &entries {
            if entry.file_name().to_string_lossy().starts_with(".tmp-") {
                remove_path(&entry.path())?;
            }
        }
        let highest = entries
            .iter()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .max()
            .unwrap_or(0);
        Ok(highest + 1)
    }

    /// Runs `write` on the runtime's blocking pool: the store's writes fsync, which
    /// must not stall the worker threads other tasks need. The blocking task runs to
    /// completion even if the caller is dropped, so a write is never split.
    ///
    /// # Errors
    ///
    /// Whatever `write` returns; [`Error::Io`] naming the state directory when the
    /// blocking task itself failed.
    pub async fn off_runtime<T, F>(&self, write: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, Error> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || write(&store))
            .await
            .unwrap_or_else(|e| {
                Err(Error::Io {
                    path: self.root.clone(),
                    source: io::Error::other(e),
                })
            })
    }

    /// Atomically replaces `live/<name>` with a link to version `version`.
    fn point_live(&self, name: &str, version: u32) -> Result<(), Error> {
        let live = self.root.join("live");
        let tmp = live.join(format!(".tmp-{name}"));
        remove_path(&tmp)?;
        let target = Path::new("..")
            .join("archive")
            .join(name)
            .join(version.to_string());
        std::os::unix::fs::symlink(&target, &tmp).map_err(io_err(&tmp))?;
        let link = live.join(name);
        fs::rename(&tmp, &link).map_err(io_err(&link))?;
        sync_dir(&live)
    }

    /// Reads a file under the state directory; `None` when it does not exist.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] for any other failure.
    pub fn read_file(&self, relative: &Path) -> Result<Option<Vec<u8>>, Error> {
        let path = self.root.join(relative);
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// Atomically replaces a file under the state directory (mode 0600), creating
    /// parent directories as needed.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the path that failed; the old file is then unchanged.
    pub fn write_file(&self, relative: &Path, bytes: &[u8]) -> Result<(), Error> {
        let path = self.root.join(relative);
        let parent = path.parent().unwrap_or(&self.root);
        fs::create_dir_all(parent).map_err(io_err(parent))?;
        let mut tmp_name = path.file_name().unwrap_or_default().to_owned();
        tmp_name.push(".tmp");
        let tmp = parent.join(tmp_name);
        write_synced(&tmp, bytes, 0o600)?;
        fs::rename(&tmp, &path).map_err(io_err(&path))?;
        sync_dir(parent)
    }

    /// Appends `bytes` to a file under the state directory (created with mode
    /// 0600), and waits until they are on disk.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the path that failed.
    pub fn append_file(&self, relative: &Path, bytes: &[u8]) -> Result<(), Error> {
        let path = self.root.join(relative);
        let created = !path.exists();
        let mut file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&path)
            .map_err(io_err(&path))?;
        let before = file.metadata().map_err(io_err(&path))?.len();
        let written = file.write_all(bytes).and_then(|()| file.sync_data());
        if let Err(e) = written {
            // A part written (a full disk) would run into the next append:
            // take it back, so the file stays whole lines.
            let _ = file.set_len(before);
            return Err(io_err(&path)(e));
        }
        if created {
            sync_dir(path.parent().unwrap_or(&self.root))?;
        }
        Ok(())
    }
}

fn read_dir(dir: &Path) -> Result<Vec<fs::DirEntry>, Error> {
    match fs::read_dir(dir) {
        Ok(entries) => entries.collect::<Result<Vec<_>, _>>().map_err(io_err(dir)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io_err(dir)(e)),
    }
}

/// Removes a file, symlink or directory tree; absent is fine.
fn remove_path(path: &Path) -> Result<(), Error> {
    let result = match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    };
    result.map_err(io_err(path))
}

/// Creates `path` with `mode` (never wider, whatever the umask), writes and fsyncs it.
fn write_synced(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(io_err(path))?;
    // An existing file keeps its old mode on open; set it explicitly.
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(io_err(path))?;
    file.write_all(bytes).map_err(io_err(path))?;
    file.sync_all().map_err(io_err(path))
}

fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn a_store_directory_planted_as_a_link_or_owned_by_another_user_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("state");
        let elsewhere = tmp.path().join("elsewhere");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, root.join("archive")).unwrap();
        let err = Store::open(&root).unwrap_err().to_string();
        assert!(err.contains("archive: is a symbolic link"), "{err}");
        std::fs::remove_file(root.join("archive")).unwrap();

        // Another owner (checked as root, which can hand the directory away).
        if nix::unistd::geteuid().is_root() {
            nix::unistd::chown(&root, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
            let err = Store::open(&root).unwrap_err().to_string();
            assert!(err.contains("is owned by uid 65534, not by uid 0"), "{err}");
            nix::unistd::chown(&root, Some(nix::unistd::Uid::from_raw(0)), None).unwrap();
        }
        // The state directory itself may be a link an administrator made.
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&root, &link).unwrap();
        Store::open(&link).unwrap();
    }

    /// A self-signed version for `domains`, its leaf repeated as the chain.
    pub(crate) fn issued(domains: &[&str]) -> Issued {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(
            domains.iter().map(|d| (*d).to_owned()).collect::<Vec<_>>(),
        )
        .unwrap();
        let cert = params.self_signed(&key).unwrap().pem();
        Issued::from_fullchain(format!("{cert}{cert}"), key.serialize_pem()).unwrap()
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn publish_swaps_live_and_keeps_old_versions() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(&tmp.path().join("state")).unwrap();
        assert!(store.lineage("a").unwrap().is_none());
        assert_eq!(mode(store.root()), 0o700);

        let first = issued(&["a.example"]);
        assert_eq!(store.publish("a", &first).unwrap(), 1);
        let second = issued(&["a.example", "b.example"]);
        assert_eq!(store.publish("a", &second).unwrap(), 2);

        let lineage = store.lineage("a").unwrap().unwrap();
        assert_eq!(lineage.version, 2);
        assert!(lineage.key_matches);
        assert_eq!(lineage.cert.domains, ["a.example", "b.example"]);
        assert_eq!(
            fs::read_link(store.live_dir("a")).unwrap(),
            Path::new("../archive/a/2")
        );
        assert_eq!(mode(&lineage.dir.join("privkey.pem")), 0o600);
        assert!(store.archive_dir("a").join("1/privkey.pem").exists());
        assert_eq!(store.names().unwrap(), ["a"]);
    }

    #[test]
    fn interrupted_publish_is_cleaned_up_and_live_untouched() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("state");
        let store = Store::open(&root).unwrap();
        store.publish("a", &issued(&["a.example"])).unwrap();
        // What a crash between writing files and the renames leaves behind:
        let half = store.archive_dir("a").join(".tmp-2");
        fs::create_dir(&half).unwrap();
        fs::write(half.join("privkey.pem"), "partial").unwrap();
        let older = store.archive_dir("a").join(".tmp-7");
        fs::create_dir(&older).unwrap();
        std::os::unix::fs::symlink("../archive/a/2", root.join("live/.tmp-a")).unwrap();

        let store = Store::open(&root).unwrap();
        let _lock = store.lock().unwrap();
        assert!(fs::symlink_metadata(root.join("live/.tmp-a")).is_err());
        let lineage = store.lineage("a").unwrap().unwrap();
        assert_eq!(lineage.version, 1);
        assert!(lineage.key_matches);
        // The hidden leftovers in archive/a/ go with a's next publish.
        assert_eq!(store.publish("a", &issued(&["a.example"])).unwrap(), 2);
        assert!(!older.exists());
        let names: Vec<_> = fs::read_dir(store.archive_dir("a"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn remembered_facts_stand_for_the_files_until_the_link_or_file_changes() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        assert!(matches!(store.lineage_known("a", None), (Ok(None), None)));
        store.publish("a", &issued(&["a.example"])).unwrap();
        let (read, facts) = store.lineage_known("a", None);
        let facts = facts.expect("read anew");
        let read = read.unwrap().unwrap();
        assert!(!read.cert.der.is_empty());

        // Still the same file: taken from the facts, nothing new to remember.
        let (known, again) = store.lineage_known("a", Some(&facts));
        let known = known.unwrap().unwrap();
        assert!(again.is_none());
        assert_eq!((known.version, known.key_matches), (1, true));
        assert_eq!(known.cert.serial, read.cert.serial);
        assert!(known.cert.der.is_empty(), "not read");
        assert_eq!(known.der().unwrap(), read.cert.der);

        // A new version is another file: read again.
        store.publish("a", &issued(&["b.example"])).unwrap();
        let (now, fresh) = store.lineage_known("a", Some(&facts));
        assert_eq!(now.unwrap().unwrap().cert.domains, ["b.example"]);
        assert_eq!(fresh.expect("read anew").version, 2);

        // So is a copy of the state directory, or a file rewritten in place.
        let cert = store.live_dir("a").join("cert.pem");
        let (_, facts) = store.lineage_known("a", None);
        let facts = facts.unwrap();
        let pem = fs::read(&cert).unwrap();
        fs::remove_file(&cert).unwrap();
        fs::write(&cert, pem).unwrap();
        assert!(store.lineage_known("a", Some(&facts)).1.is_some());
    }

    #[test]
    fn only_one_writer_at_a_time() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let lock = store.lock().unwrap();
        let err = store.lock().unwrap_err();
        assert!(err.to_string().contains("another renewd process"), "{err}");
        drop(lock);
        store.lock().unwrap();
    }

    #[test]
    fn write_file_is_private_and_replaces_atomically() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let rel = Path::new("accounts/le/account.json");
        store.write_file(rel, b"one").unwrap();
        store.write_file(rel, b"two").unwrap();
        assert_eq!(store.read_file(rel).unwrap().unwrap(), b"two");
        assert_eq!(mode(&tmp.path().join(rel)), 0o600);
        assert!(store.read_file(Path::new("nope")).unwrap().is_none());
    }

    #[test]
    fn the_debug_of_an_issued_version_hides_its_key() {
        let issued = issued(&["a.example"]);
        let shown = format!("{issued:?}");
        assert!(shown.contains("key_pem: <redacted>"), "{shown}");
        assert!(!shown.contains("PRIVATE KEY"), "{shown}");
    }

    #[test]
    fn fullchain_is_split_into_leaf_and_chain() {
        let i = issued(&["a.example"]);
        assert_eq!(i.cert_pem.matches("BEGIN CERTIFICATE").count(), 1);
        assert_eq!(i.chain_pem.matches("BEGIN CERTIFICATE").count(), 1);
        assert!(i.chain_pem.starts_with("-----BEGIN"));
    }
}
