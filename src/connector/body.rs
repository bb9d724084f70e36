//! A request body that carries stored files as base64 inside JSON, planned
//! without reading them and produced in bounded chunks: the webhook sink
//! and the REST connector's file uploads both send such bodies.

use crate::blob::{BlobError, BlobStore};
use crate::connector::webhook::sign::{Secret, Signer};
use crate::event::Event;
use base64::Engine as _;
use bytes::Bytes;
use futures::Stream;
use std::ops::Range;
use std::sync::Arc;
use tokio::io::AsyncReadExt as _;

/// Bytes of a file read and encoded at a time. A multiple of 3, so no chunk
/// but a file's last has base64 padding and the encoded chunks concatenate
/// to the base64 of the whole file.
pub(crate) const FILE_CHUNK: usize = 48 * 1024;
const _: () = assert!(FILE_CHUNK.is_multiple_of(3));
/// The most of the event's own JSON handed out at a time.
pub(crate) const JSON_CHUNK: usize = 64 * 1024;

/// The request body, planned without reading any file: the event's canonical
/// JSON with a placeholder where each stored file's `content_base64` goes.
/// The body is that JSON with each placeholder replaced by the base64 of its
/// file, produced in bounded chunks, so memory does not grow with file size.
#[derive(Clone)]
pub(crate) struct BodyPlan {
    json: Bytes,
    /// In the order they appear in `json`.
    pub(crate) files: Arc<[PlannedFile]>,
}

pub(crate) struct PlannedFile {
    pub(crate) name: String,
    pub(crate) sha256: String,
    /// Where its placeholder stands in `json`.
    pub(crate) at: Range<usize>,
}

/// Why the body could not be planned.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PlanError {
    #[error("cannot encode event: {0}")]
    Encode(serde_json::Error),
    /// A placeholder found twice, or not at all, in the JSON.
    #[error("cannot encode event: the placeholder for file {name} is not unique")]
    NotUnique { name: String },
}

/// Why the body could not be produced. Each names the file.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    #[error("file {name} is not in the file store: {source}")]
    Missing { name: String, source: BlobError },
    #[error("cannot read file {name} from the file store: {source}")]
    Read {
        name: String,
        source: std::io::Error,
    },
    #[error("file {name} changed while being sent: {signed} bytes when signed, {sent} when sent")]
    Changed {
        name: String,
        signed: u64,
        sent: u64,
    },
}

impl BodyPlan {
    pub(crate) fn new(event: Event) -> Result<BodyPlan, PlanError> {
        // Random, so no event content can spell it; checked anyway.
        BodyPlan::with_nonce(event, &uuid::Uuid::new_v4().simple().to_string())
    }

    pub(crate) fn with_nonce(mut event: Event, nonce: &str) -> Result<BodyPlan, PlanError> {
        let mut wanted = Vec::new();
        if let Some(files) = event.attachments_mut() {
            for f in files.iter_mut() {
                if let Some(sha) = &f.sha256 {
                    // Only characters JSON leaves unescaped, like base64's own;
                    // the trailing dash keeps file 1's from prefixing file 10's.
                    let placeholder = format!("deskbridge-file-{nonce}-{}-", wanted.len());
                    wanted.push((f.name.clone(), sha.clone(), placeholder.clone()));
                    f.content_base64 = Some(placeholder);
                }
            }
        }
        let json = serde_json::to_string(&event).map_err(PlanError::Encode)?;
        BodyPlan::from_json(json, wanted)
    }

    /// A JSON body whose strings hold placeholders: each `(name, sha256,
    /// placeholder)` is replaced by the base64 of that stored file. The
    /// placeholder must be characters JSON leaves unescaped, and unique.
    pub(crate) fn from_json(
        json: String,
        wanted: Vec<(String, String, String)>,
    ) -> Result<BodyPlan, PlanError> {
        let mut files = Vec::with_capacity(wanted.len());
        for (name, sha256, placeholder) in wanted {
            let mut hits = json.match_indices(&placeholder).map(|(at, _)| at);
            let (Some(start), None) = (hits.next(), hits.next()) else {
                return Err(PlanError::NotUnique { name });
            };
            files.push(PlannedFile {
                name,
                sha256,
                at: start..start + placeholder.len(),
            });
        }
        files.sort_by_key(|f| f.at.start);
        Ok(BodyPlan {
            json: Bytes::from(json.into_bytes()),
            files: files.into(),
        })
    }

    /// Each file's size as stored, without reading it (where no
    /// signature needs a first pass over the body).
    pub(crate) async fn sizes(&self, blobs: &BlobStore) -> Result<Vec<u64>, BodyError> {
        let mut out = Vec::with_capacity(self.files.len());
        for f in self.files.iter() {
            let file = blobs
                .open_blob(&f.sha256)
                .await
                .map_err(|source| BodyError::Missing {
                    name: f.name.clone(),
                    source,
                })?;
            let meta = file.metadata().await.map_err(|source| BodyError::Read {
                name: f.name.clone(),
                source,
            })?;
            out.push(meta.len());
        }
        Ok(out)
    }

    /// The whole body, when it carries no file: sent as one buffer, which
    /// hyper writes with its head, rather than as a stream.
    pub(crate) fn whole(&self) -> Option<Bytes> {
        self.files.is_empty().then(|| self.json.clone())
    }

    /// The body's length in bytes, given each file's size.
    pub(crate) fn len(&self, sizes: &[u64]) -> u64 {
        let placeholders: usize = self.files.iter().map(|f| f.at.len()).sum();
        let base64: u64 = sizes.iter().map(|n| n.div_ceil(3) * 4).sum();
        (self.json.len() - placeholders) as u64 + base64
    }

    /// The signature header value over the whole body, read once, and the
    /// size of each file as read (for the length and to check the send).
    pub(crate) async fn sign(
        &self,
        blobs: &BlobStore,
        secret: &Secret,
        id: &str,
        ts: i64,
    ) -> Result<(String, Vec<u64>), BodyError> {
        let mut signer = Signer::new(secret, id, ts);
        let mut reader = BodyReader::new(self.clone(), blobs.clone(), None);
        while let Some(chunk) = reader.next_chunk().await? {
            signer.update(&chunk);
        }
        Ok((signer.finish(), reader.sizes))
    }

    /// The body again, as a stream; fails if a file's size differs from
    /// `sizes` (what was signed and announced as the length).
    pub(crate) fn stream(
        &self,
        blobs: &BlobStore,
        sizes: Vec<u64>,
    ) -> impl Stream<Item = Result<Bytes, BodyError>> + Send + 'static {
        let reader = BodyReader::new(self.clone(), blobs.clone(), Some(sizes));
        futures::stream::try_unfold(reader, |mut reader| async move {
            Ok(reader.next_chunk().await?.map(|chunk| (chunk, reader)))
        })
    }
}

/// One pass over a planned body.
pub(crate) struct BodyReader {
    plan: BodyPlan,
    blobs: BlobStore,
    /// The next byte of `plan.json` to hand out.
    pos: usize,
    /// The next file to open.
    next_file: usize,
    /// The file being read, and how many bytes of it so far.
    open: Option<(tokio::fs::File, u64)>,
    /// The size of each file finished so far.
    sizes: Vec<u64>,
    /// The sizes each file must have (on the sending pass).
    expected: Option<Vec<u64>>,
    /// Taken when the first file is opened: most bodies carry none, and a
    /// zeroed 48 KiB per pass showed up as page faults under load.
    buf: Vec<u8>,
}

impl BodyReader {
    pub(crate) fn new(plan: BodyPlan, blobs: BlobStore, expected: Option<Vec<u64>>) -> BodyReader {
        BodyReader {
            plan,
            blobs,
            pos: 0,
            next_file: 0,
            open: None,
            sizes: Vec::new(),
            expected,
            buf: Vec::new(),
        }
    }

    /// The next piece of the body, at most `JSON_CHUNK` bytes; `None` at the end.
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, BodyError> {
        loop {
            if let Some((file, read)) = &mut self.open {
                let index = self.next_file - 1;
                let planned = &self.plan.files[index];
                let n = fill(file, &mut self.buf)
                    .await
                    .map_err(|source| BodyError::Read {
                        name: planned.name.clone(),
                        source,
                    })?;
                *read += n as u64;
                let read = *read;
                let expected = self.expected.as_ref().map(|e| e[index]);
                if let Some(signed) = expected.filter(|&s| read > s || (n == 0 && read != s)) {
                    return Err(BodyError::Changed {
                        name: planned.name.clone(),
                        signed,
                        sent: read,
                    });
                }
                if n > 0 {
                    let encoded = base64::engine::general_purpose::STANDARD.encode(&self.buf[..n]);
                    return Ok(Some(Bytes::from(encoded)));
                }
                self.sizes.push(read);
                self.pos = planned.at.end;
                self.open = None;
                continue;
            }
            let until = self
                .plan
                .files
                .get(self.next_file)
                .map_or(self.plan.json.len(), |f| f.at.start);
            if self.pos < until {
                let end = until.min(self.pos + JSON_CHUNK);
                let chunk = self.plan.json.slice(self.pos..end);
                self.pos = end;
                return Ok(Some(chunk));
            }
            let Some(planned) = self.plan.files.get(self.next_file) else {
                return Ok(None);
            };
            let file = self
                .blobs
                .open_blob(&planned.sha256)
                .await
                .map_err(|source| BodyError::Missing {
                    name: planned.name.clone(),
                    source,
                })?;
            if self.buf.is_empty() {
                self.buf = vec![0; FILE_CHUNK];
            }
            self.open = Some((file, 0));
            self.next_file += 1;
        }
    }
}

/// Reads until `buf` is full or the file ends; short only at the end.
async fn fill(file: &mut tokio::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]).await? {
            0 => break,
            m => n += m,
        }
    }
    Ok(n)
}
