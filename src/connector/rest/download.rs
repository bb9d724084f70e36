//! Files read from the product's history into the file store: where each
//! comment's files are, and their download, streamed (base64 inside JSON
//! is decoded as it arrives).

use super::endpoint::RestEndpoint;
use super::error::{Base64Error, TooLarge};
use super::files::permanent;
use super::json::text_at;
use super::profile::FileRead;
use super::template;
use crate::blob::BlobStore;
use crate::connector::sink::SinkError;
use bytes::Bytes;
use futures::Stream;
use serde_json::Value;

/// Where `entries` keeps the parts `entry_content` read, for the files
/// among them (`files.read` without `entry_list`).
pub const PARTS: &str = "/_deskbridge_parts";

/// A file named in a history entry.
#[derive(Clone, Debug, PartialEq)]
pub struct FileRef {
    pub id: String,
    pub name: String,
    pub content_type: String,
    pub size: Option<u64>,
    /// Its own address (`files.read.url`).
    pub url: Option<String>,
    /// The entry's values `files.read.path` names (`path_vars`).
    pub vars: Vec<(String, String)>,
}

/// The files of one history entry.
pub fn entry_files(read: &FileRead, ticket: &Value, entry: &Value) -> Vec<FileRef> {
    let refs = entry
        .pointer(read.entry_list.as_deref().unwrap_or(PARTS))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let listed = read
        .ticket_list
        .as_deref()
        .and_then(|p| ticket.pointer(p))
        .and_then(Value::as_array);
    let mut out = Vec::new();
    for r in &refs {
        if let (Some(when), Some(is)) = (&read.when, &read.is) {
            if text_at(r, when).as_deref() != Some(is.as_str()) {
                continue;
            }
        }
        let Some(id) = text_at(r, &read.entry_id) else {
            continue;
        };
        let file = match (listed, &read.id) {
            (Some(list), Some(id_ptr)) => {
                match list
                    .iter()
                    .find(|f| text_at(f, id_ptr).as_deref() == Some(id.as_str()))
                {
                    Some(f) => f,
                    None => continue,
                }
            }
            _ => r,
        };
        out.extend(file_ref(read, file, id).map(|mut f| {
            f.vars = read
                .path_vars
                .iter()
                .filter_map(|(k, p)| text_at(entry, p).map(|v| (k.clone(), v)))
                .collect();
            f
        }));
    }
    out
}

/// A file as described at `file` (a reference or the ticket's list).
fn file_ref(read: &FileRead, file: &Value, id: String) -> Option<FileRef> {
    let name = text_at(file, &read.name).filter(|n| !n.is_empty())?;
    Some(FileRef {
        id,
        name,
        content_type: text_at(file, &read.content_type)
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| "application/octet-stream".into()),
        size: read
            .size
            .as_deref()
            .and_then(|p| text_at(file, p))
            .and_then(|s| s.parse().ok()),
        url: read.url.as_deref().and_then(|p| text_at(file, p)),
        vars: vec![],
    })
}

/// The files a ticket was created with: those of its description entry
/// (`journal.description_kinds`, RT's Create transaction), else those of
/// the ticket's list that no history entry added (Redmine's issue
/// attachments).
pub fn creation_files(
    read: &FileRead,
    journal: &super::profile::JournalPointers,
    ticket: &Value,
    entries: &[Value],
) -> Vec<FileRef> {
    if !journal.description_kinds.is_empty() {
        let kind = |e: &Value| journal.kind.as_deref().and_then(|k| text_at(e, k));
        return entries
            .iter()
            .find(|e| kind(e).is_some_and(|k| journal.description_kinds.contains(&k)))
            .map(|e| entry_files(read, ticket, e))
            .unwrap_or_default();
    }
    let (Some(list), Some(id_ptr)) = (read.ticket_list.as_deref(), read.id.as_deref()) else {
        return vec![];
    };
    let added: Vec<String> = entries
        .iter()
        .flat_map(|e| entry_files(read, ticket, e))
        .map(|f| f.id)
        .collect();
    ticket
        .pointer(list)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|f| {
            let id = text_at(f, id_ptr)?;
            if added.contains(&id) {
                return None;
            }
            file_ref(read, f, id)
        })
        .collect()
}

/// Downloads `f` into the file store, streamed. `Ok(Err(why))`: the file
/// cannot cross (too large), to be named in the comment; `Err`: the
/// product failed (retried with the round when transient).
pub async fn download(
    ep: &RestEndpoint,
    read: &FileRead,
    f: &FileRef,
    blobs: &BlobStore,
) -> Result<Result<crate::blob::BlobRef, TooLarge>, SinkError> {
    use futures::TryStreamExt as _;
    let too_large = || TooLarge {
        max: blobs.max_bytes(),
    };
    if f.size.is_some_and(|s| s > blobs.max_bytes()) {
        return Ok(Err(too_large()));
    }
    let what = format!("download file {}", f.name);
    let put = match (&f.url, &read.path, &read.content) {
        (Some(url), _, _) => {
            let resp = ep.client.download(&what, url, read.elsewhere).await?;
            let body = resp.bytes_stream().map_err(std::io::Error::other);
            blobs
                .put_reader(tokio_util::io::StreamReader::new(body))
                .await
        }
        (None, Some(path), content) => {
            let mut vars = vec![("file", f.id.clone())];
            vars.extend(f.vars.iter().map(|(k, v)| (k.as_str(), v.clone())));
            let path = template::render_path(path, &ep.vars(&vars))
                .map_err(|e| permanent(format!("{}: files.read.path: {e}", ep.name)))?;
            let url = format!("{}{path}", ep.client.base());
            let resp = ep.client.download(&what, &url, false).await?;
            let body = Box::pin(resp.bytes_stream().map_err(std::io::Error::other));
            match content {
                // JSON with the content in base64, decoded as it streams in.
                Some(content) => {
                    let key = content.rsplit('/').next().unwrap_or_default().to_string();
                    blobs
                        .put_reader(tokio_util::io::StreamReader::new(Box::pin(json_base64(
                            body, key,
                        ))))
                        .await
                }
                None => blobs.put_reader(tokio_util::io::StreamReader::new(body)).await,
            }
        }
        _ => {
            return Err(permanent(format!(
                "{}: {what}: the file has no address (files.read.url) and the profile no files.read.path",
                ep.name
            )))
        }
    };
    match put {
        Ok(b) => Ok(Ok(b)),
        Err(crate::blob::BlobError::TooLarge { .. }) => Ok(Err(too_large())),
        Err(e) => Err(SinkError::Transient {
            message: format!("{}: {what}: {e}", ep.name),
            retry_after: None,
        }),
    }
}

/// The bytes of the base64 string at `"key"` in a JSON answer, decoded as
/// the answer streams in (the answer is never held whole).
fn json_base64(
    inner: std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>,
    key: String,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send {
    use futures::StreamExt as _;
    futures::stream::try_unfold(
        (inner, JsonBase64::new(&key), false),
        |(mut inner, mut dec, ended)| async move {
            if ended {
                return Ok(None);
            }
            loop {
                match inner.next().await {
                    Some(chunk) => {
                        let out = dec.feed(&chunk?).map_err(std::io::Error::other)?;
                        if !out.is_empty() {
                            return Ok(Some((Bytes::from(out), (inner, dec, false))));
                        }
                    }
                    None => {
                        dec.finish().map_err(std::io::Error::other)?;
                        return Ok(None);
                    }
                }
            }
        },
    )
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Scan {
    /// Matching `"key"`: bytes matched so far.
    Key(usize),
    Colon,
    Quote,
    In,
    Escape,
    Done,
}

/// A scanner for one base64 string in JSON: `"key"`, `:`, then the string,
/// whose `\n` escapes (RT's line breaks every 76 characters) are skipped.
/// Inside a JSON string a `"` is always escaped, so `"key"` followed by a
/// colon can only be a key.
struct JsonBase64 {
    pattern: Vec<u8>,
    state: Scan,
    quad: Vec<u8>,
}

impl JsonBase64 {
    fn new(key: &str) -> JsonBase64 {
        JsonBase64 {
            pattern: format!("\"{key}\"").into_bytes(),
            state: Scan::Key(0),
            quad: Vec::with_capacity(4),
        }
    }

    fn feed(&mut self, chunk: &[u8]) -> Result<Vec<u8>, Base64Error> {
        use base64::Engine as _;
        let mut out = Vec::with_capacity(chunk.len() / 4 * 3);
        for &b in chunk {
            self.state = match self.state {
                Scan::Key(n) if b == self.pattern[n] => {
                    if n + 1 == self.pattern.len() {
                        Scan::Colon
                    } else {
                        Scan::Key(n + 1)
                    }
                }
                Scan::Key(_) => Scan::Key(usize::from(b == self.pattern[0])),
                Scan::Colon if b.is_ascii_whitespace() => Scan::Colon,
                Scan::Colon if b == b':' => Scan::Quote,
                Scan::Colon => Scan::Key(usize::from(b == self.pattern[0])),
                Scan::Quote if b.is_ascii_whitespace() => Scan::Quote,
                Scan::Quote if b == b'"' => Scan::In,
                Scan::Quote => Scan::Key(usize::from(b == self.pattern[0])),
                Scan::In if b == b'"' => Scan::Done,
                Scan::In if b == b'\\' => Scan::Escape,
                Scan::In if b.is_ascii_whitespace() => Scan::In,
                Scan::In => {
                    self.quad.push(b);
                    if self.quad.len() == 4 {
                        let bytes = base64::engine::general_purpose::STANDARD
                            .decode(&self.quad)
                            .map_err(Base64Error::NotBase64)?;
                        out.extend_from_slice(&bytes);
                        self.quad.clear();
                    }
                    Scan::In
                }
                Scan::Escape if matches!(b, b'n' | b'r' | b't') => Scan::In,
                Scan::Escape if b == b'/' => {
                    self.quad.push(b);
                    Scan::In
                }
                Scan::Escape => return Err(Base64Error::Escape(b as char)),
                Scan::Done => return Ok(out),
            };
        }
        Ok(out)
    }

    fn finish(&self) -> Result<(), Base64Error> {
        if self.state != Scan::Done {
            return Err(Base64Error::Incomplete);
        }
        if !self.quad.is_empty() {
            return Err(Base64Error::CutShort);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_in_json_decodes_across_chunks() {
        use base64::Engine as _;
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 256) as u8).collect();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&data);
        // RT's shape: pretty JSON, a line break escaped every 76 characters,
        // another field whose text mentions the key.
        let wrapped: Vec<String> = b64
            .as_bytes()
            .chunks(76)
            .map(|c| String::from_utf8(c.to_vec()).unwrap())
            .collect();
        let json = format!(
            "{{\n   \"Headers\" : \"X-Content: \\\"Content\\\"\",\n   \"Content\" : \"{}\",\n   \"id\" : 1\n}}",
            wrapped.join("\\n")
        );
        for size in [1, 3, 7, 64, 5000] {
            let mut dec = JsonBase64::new("Content");
            let mut out = Vec::new();
            for c in json.as_bytes().chunks(size) {
                out.extend(dec.feed(c).unwrap());
            }
            dec.finish().unwrap();
            assert_eq!(out, data, "chunks of {size}");
        }
        let mut dec = JsonBase64::new("Content");
        dec.feed(b"{\"Content\": \"abc").unwrap();
        assert!(dec.finish().is_err());
    }

    fn read_of(name: &str) -> FileRead {
        super::super::profile::Profile::load(Some(name), None)
            .unwrap()
            .files
            .unwrap()
            .read
            .unwrap()
    }

    #[test]
    fn redmine_journal_names_its_files_by_attachment_details() {
        let issue = serde_json::json!({"id": 7, "attachments": [
            {"id": 15, "filename": "Лист калибровки.pdf", "filesize": 200000,
             "content_type": "application/pdf",
             "content_url": "http://127.0.0.1:3000/attachments/download/15/x.pdf"},
            {"id": 16, "filename": "older.txt", "filesize": 3, "content_type": "",
             "content_url": "http://127.0.0.1:3000/attachments/download/16/older.txt"}]});
        let journal = serde_json::json!({"id": 40, "notes": "sheet", "details": [
            {"property": "attachment", "name": "15", "old_value": null, "new_value": "Лист калибровки.pdf"},
            {"property": "attr", "name": "status_id", "old_value": "1", "new_value": "2"},
            {"property": "attachment", "name": "99", "old_value": null, "new_value": "deleted.pdf"}]});
        let p = super::super::profile::Profile::load(Some("redmine"), None).unwrap();
        let at_creation = creation_files(
            &read_of("redmine"),
            &p.journal,
            &issue,
            std::slice::from_ref(&journal),
        );
        assert_eq!(at_creation.len(), 1, "{at_creation:?}");
        assert_eq!(at_creation[0].name, "older.txt");
        assert_eq!(at_creation[0].content_type, "application/octet-stream");
        let files = entry_files(&read_of("redmine"), &issue, &journal);
        assert_eq!(
            files,
            [FileRef {
                id: "15".into(),
                name: "Лист калибровки.pdf".into(),
                content_type: "application/pdf".into(),
                size: Some(200_000),
                url: Some("http://127.0.0.1:3000/attachments/download/15/x.pdf".into()),
                vars: vec![],
            }],
            "a file no longer on the issue is skipped"
        );
    }

    #[test]
    fn rt_transaction_files_are_the_parts_with_a_file_name() {
        let entry = serde_json::json!({"id": "262", "Type": "Correspond", "_deskbridge_parts": [
            {"id": "159", "ContentType": "multipart/mixed", "Filename": "", "ContentLength": "0"},
            {"id": "160", "ContentType": "text/plain", "Filename": "", "ContentLength": "2"},
            {"id": "161", "ContentType": "application/octet-stream", "Filename": "весы.bin", "ContentLength": "1000"}]});
        let files = entry_files(&read_of("rt"), &Value::Null, &entry);
        assert_eq!(
            files,
            [FileRef {
                id: "161".into(),
                name: "весы.bin".into(),
                content_type: "application/octet-stream".into(),
                size: Some(1000),
                url: None,
                vars: vec![],
            }]
        );
    }

    /// A Redmine endpoint at `base`, its credential in a file in `dir`.
    fn redmine_at(dir: &std::path::Path, base: &str) -> std::sync::Arc<RestEndpoint> {
        let key = dir.join("key");
        std::fs::write(&key, "k").unwrap();
        let conf: super::super::config::RestConfig = toml::from_str(&format!(
            "profile = \"redmine\"\nbase_url = \"{base}\"\nproject = \"p\"\ncredentials = {{ file = \"{}\" }}\n",
            key.display()
        ))
        .unwrap();
        RestEndpoint::from_config("vendor", &conf).unwrap()
    }

    /// Serves `body` once per connection, as a file download.
    async fn serve(body: Vec<u8>) -> String {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let mut req = vec![0u8; 4096];
                let _ = s.read(&mut req).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(&body).await;
            }
        });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn downloads_stream_into_the_store_within_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path().join("files"), 1000).unwrap();
        let data: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        let base = serve(data.clone()).await;
        let ep = redmine_at(dir.path(), &base);
        let read = read_of("redmine");
        let file = |size: Option<u64>, url: &str| FileRef {
            id: "1".into(),
            name: "scan.pdf".into(),
            content_type: "application/pdf".into(),
            size,
            url: Some(url.into()),
            vars: vec![],
        };
        let at = format!("{base}/attachments/download/1/scan.pdf");
        let got = download(&ep, &read, &file(None, &at), &blobs)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(blobs.read_all(&got.sha256).await.unwrap(), data);
        // Announced larger than the limit: not even fetched, and said why.
        let why = download(&ep, &read, &file(Some(1001), &at), &blobs)
            .await
            .unwrap()
            .unwrap_err()
            .to_string();
        assert!(why.contains("daemon.max_file_bytes"), "{why}");
        // Larger than announced: stopped at the limit.
        let small = BlobStore::open(dir.path().join("small"), 999).unwrap();
        let why = download(&ep, &read, &file(Some(10), &at), &small)
            .await
            .unwrap()
            .unwrap_err()
            .to_string();
        assert!(why.contains("larger than 999 bytes"), "{why}");
        // The credentials go to the product only.
        let err = download(
            &ep,
            &read,
            &file(None, "http://elsewhere.example/x.pdf"),
            &blobs,
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&err, SinkError::Permanent { message } if message.contains("not on base_url")),
            "{err:?}"
        );
    }
}
