//! Content-addressed attachment store.
//!
//! Blobs are addressed by the lowercase hex SHA-256 of their contents and
//! laid out as `root/ab/cd/<full hex>` so no single directory grows huge.
//! Writes stream through a temp file in `root/tmp` (same filesystem, so the
//! final `rename` is atomic) and are fsynced before and after the rename, so
//! a blob path either does not exist or holds the complete, durable content.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

/// Read/write chunk size: bounds memory use per upload regardless of file size.
const CHUNK: usize = 64 * 1024;
const TMP_DIR: &str = "tmp";

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error(
        "file is larger than the configured limit of {limit} bytes (daemon.max_file_bytes); \
         send a smaller file or raise the limit"
    )]
    TooLarge { limit: u64 },
    #[error(
        "no attachment with sha256 {0} in the blob store; it was never stored here \
         or has been removed, so upload it again"
    )]
    NotFound(String),
    #[error(
        "invalid attachment digest {0:?}: expected exactly 64 lowercase hex characters (a sha256)"
    )]
    BadDigest(String),
    #[error(
        "blob store I/O error: {0}; check that the data directory exists, is writable \
         and the disk is not full"
    )]
    Io(#[from] std::io::Error),
}

#[derive(Clone, Debug)]
pub struct BlobStore {
    root: PathBuf,
    max_bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BlobRef {
    pub sha256: String,
    pub size: u64,
}

/// Deletes the temp file unless disarmed. Living in `Drop` means cleanup also
/// happens when the `put_reader` future is cancelled mid-upload, not only on
/// error returns.
struct TempGuard {
    path: Option<PathBuf>,
}

impl TempGuard {
    fn disarm(&mut self) {
        self.path = None;
    }
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            // Best effort: a leftover temp file is garbage, not corruption.
            let _ = std::fs::remove_file(path);
        }
    }
}

impl BlobStore {
    /// Opens (creating if needed) a store rooted at `root`. `max_bytes` is
    /// the largest blob accepted, inclusive.
    pub fn open(root: impl Into<PathBuf>, max_bytes: u64) -> Result<Self, BlobError> {
        let root = root.into();
        std::fs::create_dir_all(root.join(TMP_DIR))?;
        Ok(Self { root, max_bytes })
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Streams `reader` into the store, hashing as it goes, and returns the
    /// blob's address. Fails with `TooLarge` as soon as more than `max_bytes`
    /// have been read, leaving nothing behind.
    pub async fn put_reader<R: AsyncRead + Unpin>(
        &self,
        mut reader: R,
    ) -> Result<BlobRef, BlobError> {
        let tmp_path = self
            .root
            .join(TMP_DIR)
            .join(format!("{}.part", uuid::Uuid::new_v4()));
        // Declared before `file` so that on any early return the file handle is
        // closed first and the guard then removes the path (needed on Windows).
        let mut guard = TempGuard {
            path: Some(tmp_path.clone()),
        };
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp_path)
            .await?;

        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; CHUNK];
        let mut size: u64 = 0;
        loop {
            // Never ask for more than one byte past the limit: that is enough to
            // detect an oversized upload without draining more of the sender.
            let allowed = (self.max_bytes - size).saturating_add(1);
            let want = usize::try_from(allowed).map_or(CHUNK, |a| a.min(CHUNK));
            let n = reader.read(&mut buf[..want]).await?;
            if n == 0 {
                break;
            }
            size += n as u64;
            if size > self.max_bytes {
                return Err(BlobError::TooLarge {
                    limit: self.max_bytes,
                });
            }
            hasher.update(&buf[..n]);
            file.write_all(&buf[..n]).await?;
        }
        file.flush().await?;
        // Content must be on disk before the rename makes it visible under
        // its final name, or a crash could leave a truncated "valid" blob.
        file.sync_all().await?;
        drop(file);

        let sha256 = hex::encode(hasher.finalize());
        let final_path = self.path_of(&sha256)?;
        if tokio::fs::try_exists(&final_path).await? {
            // Same digest means same content; the guard drops the temp copy.
            return Ok(BlobRef { sha256, size });
        }
        let parent = final_path
            .parent()
            .expect("blob path always has a parent")
            .to_path_buf();
        self.ensure_fan_out_dirs(&parent).await?;
        // Concurrent puts of identical content may both rename; rename
        // replaces atomically and the bytes are identical, so that is harmless.
        tokio::fs::rename(&tmp_path, &final_path).await?;
        guard.disarm();
        // Persist the directory entry created by the rename.
        sync_dir(&parent).await?;
        Ok(BlobRef { sha256, size })
    }

    pub async fn put_bytes(&self, data: &[u8]) -> Result<BlobRef, BlobError> {
        self.put_reader(data).await
    }

    /// Opens the blob for streaming reads.
    pub async fn open_blob(&self, sha256: &str) -> Result<tokio::fs::File, BlobError> {
        let path = self.path_of(sha256)?;
        tokio::fs::File::open(&path)
            .await
            .map_err(|e| match e.kind() {
                ErrorKind::NotFound => BlobError::NotFound(sha256.to_string()),
                _ => BlobError::Io(e),
            })
    }

    /// Reads a whole blob into memory; prefer `open_blob` for large files.
    pub async fn read_all(&self, sha256: &str) -> Result<Vec<u8>, BlobError> {
        let mut file = self.open_blob(sha256).await?;
        let mut out = Vec::new();
        file.read_to_end(&mut out).await?;
        Ok(out)
    }

    pub fn contains(&self, sha256: &str) -> bool {
        self.path_of(sha256).is_ok_and(|p| p.is_file())
    }

    /// Maps a digest to its on-disk path. The digest usually comes from
    /// outside (API callers, stored tickets), so it is validated strictly to
    /// rule out path traversal such as `../../etc/passwd`.
    pub fn path_of(&self, sha256: &str) -> Result<PathBuf, BlobError> {
        let valid = sha256.len() == 64
            && sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !valid {
            return Err(BlobError::BadDigest(sha256.to_string()));
        }
        Ok(self
            .root
            .join(&sha256[0..2])
            .join(&sha256[2..4])
            .join(sha256))
    }

    /// Creates `root/ab` and `root/ab/cd` as needed, fsyncing the parent of
    /// each directory we create so the new entries survive a crash too.
    async fn ensure_fan_out_dirs(&self, leaf: &Path) -> Result<(), BlobError> {
        let mid = leaf.parent().expect("fan-out dir has a parent");
        for dir in [mid, leaf] {
            match tokio::fs::create_dir(dir).await {
                Ok(()) => sync_dir(dir.parent().expect("fan-out dir has a parent")).await?,
                // Another put (or an earlier one) created it already.
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

/// fsyncs a directory so entries created or renamed into it are durable.
#[cfg(unix)]
async fn sync_dir(dir: &Path) -> std::io::Result<()> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || std::fs::File::open(dir)?.sync_all())
        .await
        .map_err(std::io::Error::other)?
}

/// Windows cannot open directories as files for fsync; NTFS journals
/// metadata, so there is nothing further to do there.
#[cfg(not(unix))]
async fn sync_dir(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use tokio::io::ReadBuf;

    const EMPTY_SHA: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const HELLO_SHA: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

    fn store(max: u64) -> (tempfile::TempDir, BlobStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = BlobStore::open(dir.path().join("blobs"), max).unwrap();
        (dir, s)
    }

    fn tmp_entries(s: &BlobStore) -> usize {
        std::fs::read_dir(s.root.join(TMP_DIR)).unwrap().count()
    }

    /// Counts regular files under the store, excluding the tmp dir.
    fn blob_files(s: &BlobStore) -> usize {
        fn walk(p: &Path, n: &mut usize) {
            for e in std::fs::read_dir(p).unwrap() {
                let e = e.unwrap();
                if e.file_type().unwrap().is_dir() {
                    walk(&e.path(), n);
                } else {
                    *n += 1;
                }
            }
        }
        let mut n = 0;
        for e in std::fs::read_dir(&s.root).unwrap() {
            let e = e.unwrap();
            if e.file_name() != TMP_DIR {
                walk(&e.path(), &mut n);
            }
        }
        n
    }

    /// Yields `ok` bytes of data, then fails: simulates a dropped upload.
    struct FailingReader {
        ok: usize,
    }

    impl AsyncRead for FailingReader {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            if self.ok == 0 {
                return Poll::Ready(Err(std::io::Error::new(
                    ErrorKind::ConnectionReset,
                    "peer gone",
                )));
            }
            let n = self.ok.min(buf.remaining());
            buf.put_slice(&vec![b'x'; n]);
            self.ok -= n;
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn roundtrip_small() {
        let (_d, s) = store(1024);
        let r = s.put_bytes(b"hello").await.unwrap();
        assert_eq!(
            r,
            BlobRef {
                sha256: HELLO_SHA.into(),
                size: 5
            }
        );
        assert!(s.contains(HELLO_SHA));
        assert_eq!(s.read_all(HELLO_SHA).await.unwrap(), b"hello");
        let p = s.path_of(HELLO_SHA).unwrap();
        assert_eq!(p, s.root.join("2c").join("f2").join(HELLO_SHA));
        assert!(p.is_file());
        assert_eq!(tmp_entries(&s), 0);
    }

    #[tokio::test]
    async fn roundtrip_multi_chunk_stream() {
        // Several 64 KiB chunks plus a ragged tail.
        let data: Vec<u8> = (0..(3 * CHUNK + 123)).map(|i| (i % 251) as u8).collect();
        let (_d, s) = store(data.len() as u64);
        let r = s.put_reader(&data[..]).await.unwrap();
        assert_eq!(r.size, data.len() as u64);
        assert_eq!(r.sha256, hex::encode(Sha256::digest(&data)));
        let mut f = s.open_blob(&r.sha256).await.unwrap();
        let mut back = Vec::new();
        f.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, data);
    }

    #[tokio::test]
    async fn empty_blob() {
        let (_d, s) = store(0);
        let r = s.put_bytes(b"").await.unwrap();
        assert_eq!(
            r,
            BlobRef {
                sha256: EMPTY_SHA.into(),
                size: 0
            }
        );
        assert_eq!(s.read_all(EMPTY_SHA).await.unwrap(), Vec::<u8>::new());
    }

    #[tokio::test]
    async fn dedupes_identical_content() {
        let (_d, s) = store(1024);
        let a = s.put_bytes(b"same bytes").await.unwrap();
        let b = s.put_reader(&b"same bytes"[..]).await.unwrap();
        assert_eq!(a, b);
        assert_eq!(s.path_of(&a.sha256).unwrap(), s.path_of(&b.sha256).unwrap());
        assert_eq!(blob_files(&s), 1);
        assert_eq!(tmp_entries(&s), 0);
        s.put_bytes(b"other bytes").await.unwrap();
        assert_eq!(blob_files(&s), 2);
    }

    #[tokio::test]
    async fn concurrent_identical_puts() {
        let (_d, s) = store(1 << 20);
        let data = vec![42u8; 200_000];
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (s, data) = (s.clone(), data.clone());
                tokio::spawn(async move { s.put_bytes(&data).await.unwrap() })
            })
            .collect();
        let mut refs = Vec::new();
        for t in tasks {
            refs.push(t.await.unwrap());
        }
        assert!(refs.windows(2).all(|w| w[0] == w[1]));
        assert_eq!(blob_files(&s), 1);
        assert_eq!(tmp_entries(&s), 0);
        assert_eq!(s.read_all(&refs[0].sha256).await.unwrap(), data);
    }

    #[tokio::test]
    async fn limit_exactly_at_is_accepted() {
        let (_d, s) = store(10);
        let r = s.put_bytes(&[7u8; 10]).await.unwrap();
        assert_eq!(r.size, 10);
        assert!(s.contains(&r.sha256));
    }

    #[tokio::test]
    async fn limit_one_over_is_rejected_and_cleaned_up() {
        let (_d, s) = store(10);
        let err = s.put_bytes(&[7u8; 11]).await.unwrap_err();
        assert!(matches!(err, BlobError::TooLarge { limit: 10 }), "{err:?}");
        assert_eq!(tmp_entries(&s), 0);
        assert_eq!(blob_files(&s), 0);
        assert!(!s.contains(&hex::encode(Sha256::digest([7u8; 11]))));
    }

    #[tokio::test]
    async fn limit_at_chunk_boundary() {
        let (_d, s) = store(CHUNK as u64);
        s.put_bytes(&vec![1u8; CHUNK]).await.unwrap();
        let err = s.put_bytes(&vec![1u8; CHUNK + 1]).await.unwrap_err();
        assert!(matches!(err, BlobError::TooLarge { .. }));
        assert_eq!(tmp_entries(&s), 0);
    }

    #[tokio::test]
    async fn endless_stream_stops_at_limit() {
        // `repeat` never ends: the put only returns if the limit is enforced
        // while reading rather than after EOF.
        let (_d, s) = store(300_000);
        let err = s.put_reader(tokio::io::repeat(0xAB)).await.unwrap_err();
        assert!(matches!(err, BlobError::TooLarge { limit: 300_000 }));
        assert_eq!(tmp_entries(&s), 0);
        assert_eq!(blob_files(&s), 0);
    }

    #[tokio::test]
    async fn reader_error_leaves_nothing_behind() {
        let (_d, s) = store(1 << 20);
        let err = s
            .put_reader(FailingReader { ok: 100_000 })
            .await
            .unwrap_err();
        assert!(matches!(err, BlobError::Io(ref e) if e.kind() == ErrorKind::ConnectionReset));
        assert_eq!(tmp_entries(&s), 0);
        assert_eq!(blob_files(&s), 0);
    }

    #[tokio::test]
    async fn bad_digests_rejected() {
        let (_d, s) = store(1024);
        let upper = HELLO_SHA.to_uppercase();
        let bad = [
            "../../etc/passwd",
            "",
            &HELLO_SHA[..63],
            &format!("{HELLO_SHA}0"),
            &upper,
            &format!("../{}", &HELLO_SHA[3..]),
            &format!("{}/{}", &HELLO_SHA[..31], &HELLO_SHA[32..]),
            &format!("{}g", &HELLO_SHA[..63]),
            // 64 bytes but multi-byte chars: must not panic on slicing.
            &"é".repeat(32),
        ];
        s.put_bytes(b"hello").await.unwrap();
        for d in bad {
            assert!(
                matches!(s.path_of(d), Err(BlobError::BadDigest(ref x)) if x == d),
                "{d:?}"
            );
            assert!(!s.contains(d), "{d:?}");
            assert!(
                matches!(s.open_blob(d).await, Err(BlobError::BadDigest(_))),
                "{d:?}"
            );
            assert!(
                matches!(s.read_all(d).await, Err(BlobError::BadDigest(_))),
                "{d:?}"
            );
        }
    }

    #[tokio::test]
    async fn missing_blob_is_not_found() {
        let (_d, s) = store(1024);
        assert!(!s.contains(HELLO_SHA));
        match s.read_all(HELLO_SHA).await {
            Err(BlobError::NotFound(d)) => assert_eq!(d, HELLO_SHA),
            other => panic!("expected NotFound, got {other:?}"),
        }
        assert!(matches!(
            s.open_blob(HELLO_SHA).await,
            Err(BlobError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn reopen_sees_existing_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let r = BlobStore::open(dir.path(), 100)
            .unwrap()
            .put_bytes(b"hello")
            .await
            .unwrap();
        let s2 = BlobStore::open(dir.path(), 100).unwrap();
        assert_eq!(s2.max_bytes(), 100);
        assert_eq!(s2.read_all(&r.sha256).await.unwrap(), b"hello");
    }

    #[test]
    fn messages_say_what_to_fix() {
        let m = BlobError::TooLarge { limit: 5 }.to_string();
        assert!(
            m.contains("configured limit of 5 bytes (daemon.max_file_bytes)"),
            "{m}"
        );
        assert!(BlobError::BadDigest("x".into())
            .to_string()
            .contains("64 lowercase hex"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn prop_roundtrip(data in proptest::collection::vec(any::<u8>(), 0..200_000)) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let (_d, s) = store(data.len() as u64);
            let r = rt.block_on(s.put_bytes(&data)).unwrap();
            prop_assert_eq!(r.size, data.len() as u64);
            prop_assert_eq!(&r.sha256, &hex::encode(Sha256::digest(&data)));
            prop_assert_eq!(rt.block_on(s.read_all(&r.sha256)).unwrap(), data);
            prop_assert_eq!(tmp_entries(&s), 0);
        }
    }
}
