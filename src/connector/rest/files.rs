//! Files over REST: sent with what deskbridge writes (uploaded first and
//! named by a token, or inline as base64), and read from the product's
//! history into the file store. Both ways stream: no file is held whole
//! in memory.

use super::client::{Answer, Payload};
use super::endpoint::RestEndpoint;
use super::error::{Base64Error, TooLarge};
use super::json::text_at;
use super::profile::{FileRead, Files, Method};
use super::template::{self, Vars};
use crate::blob::BlobStore;
use crate::connector::body::BodyPlan;
use crate::connector::sink::SinkError;
use crate::event::Attachment;
use bytes::Bytes;
use futures::Stream;
use serde_json::Value;
use std::path::PathBuf;
use tokio::io::AsyncReadExt as _;

/// Bytes of a file read at a time for an upload.
const CHUNK: usize = 64 * 1024;

fn permanent(message: String) -> SinkError {
    SinkError::Permanent { message }
}

/// The files of an event that can be sent (stored by content), and the
/// names of those that cannot (no content: said in the comment).
pub fn sendable(files: &[Attachment]) -> (Vec<&Attachment>, Vec<&str>) {
    let (with, without): (Vec<&Attachment>, Vec<&Attachment>) =
        files.iter().partition(|f| f.sha256.is_some());
    (with, without.iter().map(|f| f.name.as_str()).collect())
}

/// Names, in `text`, the files that do not go with it, so that none is
/// lost silently.
pub fn name_not_sent<S: AsRef<str>>(text: &mut String, not_sent: &[S]) {
    if not_sent.is_empty() {
        return;
    }
    let names: Vec<&str> = not_sent.iter().map(AsRef::as_ref).collect();
    text.push_str(&format!(
        "\n\n(files not transferred by deskbridge: {})",
        names.join(", ")
    ));
}

/// The files whose name's extension is in `allowed` (any case; `""`
/// stands for a name without one), and the names of the others.
pub fn by_extension<'e>(
    files: Vec<&'e Attachment>,
    allowed: Option<&[String]>,
) -> (Vec<&'e Attachment>, Vec<&'e str>) {
    let Some(allowed) = allowed else {
        return (files, vec![]);
    };
    let (ok, refused): (Vec<_>, Vec<_>) = files.into_iter().partition(|f| {
        let ext = std::path::Path::new(&f.name)
            .extension()
            .map(|e| format!(".{}", e.to_string_lossy().to_lowercase()))
            .unwrap_or_default();
        allowed.iter().any(|a| a.to_lowercase() == ext)
    });
    (ok, refused.into_iter().map(|f| f.name.as_str()).collect())
}

/// A stored file as a stream of chunks, opened when first read (a
/// request retried makes a new one).
fn file_stream(
    path: PathBuf,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    futures::stream::try_unfold((path, None::<tokio::fs::File>), |(path, file)| async move {
        let mut file = match file {
            Some(f) => f,
            None => tokio::fs::File::open(&path).await?,
        };
        let mut buf = vec![0u8; CHUNK];
        let n = file.read(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.truncate(n);
        Ok(Some((Bytes::from(buf), (path, Some(file)))))
    })
}

/// A stored file's path and size, or why it cannot be sent.
async fn stored(
    ep: &RestEndpoint,
    blobs: &BlobStore,
    f: &Attachment,
) -> Result<(PathBuf, u64), SinkError> {
    let sha = f.sha256.as_deref().unwrap_or_default();
    let file = blobs
        .open_blob(sha)
        .await
        .map_err(|e| permanent(format!("{}: file {}: {e}", ep.name, f.name)))?;
    let size = file
        .metadata()
        .await
        .map_err(|e| permanent(format!("{}: file {}: {e}", ep.name, f.name)))?
        .len();
    Ok((blobs.path_of(sha).expect("opened by this digest"), size))
}

/// Sends `body` (rendered) with the event's files put at
/// `files.attach_at`: each uploaded first when the profile says so, or
/// streamed inside the body as base64.
#[allow(clippy::too_many_arguments)]
pub async fn send_with_files(
    ep: &RestEndpoint,
    files: &Files,
    what: &str,
    method: Method,
    path: &str,
    mut body: Value,
    vars: &Vars,
    attachments: &[&Attachment],
    blobs: &BlobStore,
    creating: bool,
) -> Result<Answer, SinkError> {
    // Random, so no comment text or file can spell it.
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    if let Some(m) = &files.multipart {
        return send_multipart(
            ep,
            m,
            what,
            method,
            path,
            &body,
            vars,
            attachments,
            blobs,
            &nonce,
            creating,
        )
        .await;
    }
    let (Some(attach_at), Some(item)) = (&files.attach_at, &files.item) else {
        return Err(permanent(format!(
            "{}: the profile's [files] has neither attach_at and item nor multipart",
            ep.name
        )));
    };
    let mut items = Vec::with_capacity(attachments.len());
    let mut inline = Vec::new();
    for (i, f) in attachments.iter().enumerate() {
        let (file_path, size) = stored(ep, blobs, f).await?;
        let mut item_vars = ep.vars(&[
            ("filename", f.name.clone()),
            ("content_type", f.content_type.clone()),
            ("size", size.to_string()),
        ]);
        match &files.upload {
            Some(u) => {
                let token = upload(ep, u, &item_vars, file_path, size, &f.name).await?;
                item_vars.insert("token".into(), token);
            }
            None => {
                // Only characters JSON leaves unescaped, like base64's own;
                // the trailing dash keeps file 1's from prefixing file 10's.
                let placeholder = format!("deskbridge-file-{nonce}-{i}-");
                inline.push((
                    f.name.clone(),
                    f.sha256.clone().unwrap_or_default(),
                    placeholder.clone(),
                ));
                item_vars.insert("content_base64".into(), placeholder);
            }
        }
        items.push(
            template::render_json(item, &item_vars)
                .map_err(|e| permanent(format!("{}: files.item: {e}", ep.name)))?,
        );
    }
    let attach_at = match &files.ticket_attach_at {
        Some(at) if creating => at,
        _ => attach_at,
    };
    super::json::set_at(&mut body, attach_at, Value::Array(items));
    if inline.is_empty() {
        return ep
            .client
            .call_with(what, method, path, Payload::Json(&body), vars)
            .await;
    }
    let json = serde_json::to_string(&body)
        .map_err(|e| permanent(format!("{}: {what}: cannot encode the body: {e}", ep.name)))?;
    let plan = BodyPlan::from_json(json, inline).map_err(|e| permanent(e.to_string()))?;
    let sizes = plan
        .sizes(blobs)
        .await
        .map_err(|e| permanent(format!("{}: {e}", ep.name)))?;
    let length = plan.len(&sizes);
    let make = {
        let (plan, blobs) = (plan.clone(), blobs.clone());
        move || reqwest::Body::wrap_stream(plan.stream(&blobs, sizes.clone()))
    };
    ep.client
        .call_with(
            what,
            method,
            path,
            Payload::Stream {
                make: &make,
                content_type: "application/json",
                length,
            },
            vars,
        )
        .await
}

/// Uploads one file (its bytes as the body): the token the product
/// answers.
async fn upload(
    ep: &RestEndpoint,
    u: &super::profile::UploadRequest,
    vars: &Vars,
    file_path: PathBuf,
    size: u64,
    name: &str,
) -> Result<String, SinkError> {
    let make = move || reqwest::Body::wrap_stream(file_stream(file_path.clone()));
    let what = format!("upload file {name}");
    // A template (`{{content_type}}`: the file's own); a value that cannot
    // be a header is not sent as one.
    let content_type = match u.content_type.as_deref() {
        Some(t) => template::render_text(t, vars)
            .map_err(|e| permanent(format!("{}: files.upload.content_type: {e}", ep.name)))?,
        None => String::new(),
    };
    let content_type = if content_type.is_empty() || content_type.chars().any(char::is_control) {
        "application/octet-stream"
    } else {
        content_type.as_str()
    };
    let answer = ep
        .client
        .call_with(
            &what,
            u.method,
            &u.path,
            Payload::Stream {
                make: &make,
                content_type,
                length: size,
            },
            vars,
        )
        .await?;
    super::json::text_at(&answer.json, &u.token).ok_or_else(|| {
        permanent(format!(
            "{}: the answer to {what} has no token at {}",
            ep.name, u.token
        ))
    })
}

/// A piece of a multipart body: bytes at hand, or a stored file.
enum Piece {
    Bytes(Bytes),
    File(PathBuf),
}

/// A quoted multipart parameter: `"` and `\` escaped, line breaks dropped
/// (they would end the header). Other characters go as UTF-8, as browsers
/// and curl send them.
fn quoted(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\r' | '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The parts before the files: the JSON body in one part, or each of its
/// fields in a part of its own. Each part opens with its boundary line
/// (the first without the line break before it).
fn form_parts(
    endpoint: &str,
    what: &str,
    m: &super::profile::Multipart,
    body: &Value,
    boundary: &str,
) -> Result<Vec<Bytes>, SinkError> {
    let mut parts = Vec::new();
    let mut part = |name: &str, content_type: Option<&str>, value: Vec<u8>| {
        let sep = if parts.is_empty() { "" } else { "\r\n" };
        let ct = content_type
            .map(|c| format!("Content-Type: {c}\r\n"))
            .unwrap_or_default();
        parts.push(Bytes::from(format!(
            "{sep}--{boundary}\r\nContent-Disposition: form-data; name={}\r\n{ct}\r\n",
            quoted(name)
        )));
        parts.push(Bytes::from(value));
    };
    match &m.json {
        Some(json_part) => {
            let json = serde_json::to_vec(body).map_err(|e| {
                permanent(format!("{endpoint}: {what}: cannot encode the body: {e}"))
            })?;
            part(json_part, Some("application/json"), json);
        }
        None => {
            let fields = body.as_object().ok_or_else(|| {
                permanent(format!(
                    "{endpoint}: {what}: a form needs a JSON object as the body"
                ))
            })?;
            for (k, v) in fields {
                let text = match v {
                    Value::Null => continue,
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                part(k, None, text.into_bytes());
            }
        }
    }
    Ok(parts)
}

/// Sends `body` as the JSON part of a multipart/form-data request (or as
/// form fields), each file streamed in a part of its own.
#[allow(clippy::too_many_arguments)]
async fn send_multipart(
    ep: &RestEndpoint,
    m: &super::profile::Multipart,
    what: &str,
    method: Method,
    path: &str,
    body: &Value,
    vars: &Vars,
    attachments: &[&Attachment],
    blobs: &BlobStore,
    nonce: &str,
    creating: bool,
) -> Result<Answer, SinkError> {
    let file_part = match &m.ticket_file {
        Some(name) if creating => name,
        _ => &m.file,
    };
    let boundary = format!("deskbridge-{nonce}");
    let mut pieces = form_parts(&ep.name, what, m, body, &boundary)?
        .into_iter()
        .map(Piece::Bytes)
        .collect::<Vec<_>>();
    let mut length = 0u64;
    for f in attachments {
        let (file_path, size) = stored(ep, blobs, f).await?;
        // A content type with a line break would end the header early.
        let content_type = if f.content_type.contains(['\r', '\n']) {
            "application/octet-stream"
        } else {
            f.content_type.as_str()
        };
        pieces.push(Piece::Bytes(Bytes::from(format!(
            "\r\n--{boundary}\r\nContent-Disposition: form-data; name={}; filename={}\r\nContent-Type: {content_type}\r\n\r\n",
            quoted(file_part),
            quoted(&f.name)
        ))));
        pieces.push(Piece::File(file_path));
        length += size;
    }
    pieces.push(Piece::Bytes(Bytes::from(format!("\r\n--{boundary}--\r\n"))));
    length += pieces
        .iter()
        .map(|p| match p {
            Piece::Bytes(b) => b.len() as u64,
            Piece::File(_) => 0,
        })
        .sum::<u64>();
    let pieces: std::sync::Arc<[Piece]> = pieces.into();
    let make = move || {
        use futures::StreamExt as _;
        let pieces = pieces.clone();
        let stream = futures::stream::iter(0..pieces.len())
            .map(move |i| match &pieces[i] {
                Piece::Bytes(b) => {
                    futures::stream::once(futures::future::ready(Ok(b.clone()))).boxed()
                }
                Piece::File(p) => file_stream(p.clone()).boxed(),
            })
            .flatten();
        reqwest::Body::wrap_stream(stream)
    };
    let content_type = format!("multipart/form-data; boundary={boundary}");
    ep.client
        .call_with(
            what,
            method,
            path,
            Payload::Stream {
                make: &make,
                content_type: &content_type,
                length,
            },
            vars,
        )
        .await
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
        use tokio::io::AsyncWriteExt as _;
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

    #[test]
    fn only_the_extensions_the_product_takes_are_sent() {
        let file = |name: &str| Attachment {
            name: name.into(),
            content_type: "application/octet-stream".into(),
            sha256: Some("x".into()),
            size: None,
            content_base64: None,
        };
        let files = [
            file("report.PDF"),
            file("run.py"),
            file("README"),
            file("a.tar.gz"),
        ];
        let refs: Vec<&Attachment> = files.iter().collect();
        let allowed = [".pdf".to_string(), ".txt".to_string()];
        let (ok, refused) = by_extension(refs.clone(), Some(&allowed));
        let ok: Vec<&str> = ok.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(ok, ["report.PDF"]);
        assert_eq!(refused, ["run.py", "README", "a.tar.gz"]);
        // "" lets names without an extension through.
        let with_none = [".pdf".to_string(), String::new()];
        let (ok, _) = by_extension(refs.clone(), Some(&with_none));
        let ok: Vec<&str> = ok.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(ok, ["report.PDF", "README"]);
        assert_eq!(by_extension(refs, None).0.len(), 4);
    }

    #[test]
    fn form_fields_each_in_a_part_of_their_own() {
        let m = crate::connector::rest::profile::Multipart {
            json: None,
            file: "attachments".into(),
            ticket_file: None,
        };
        let body = serde_json::json!({"ticket": 7, "comment": "Board \"replaced\"", "public": true, "title": null});
        let parts = form_parts("d", "add comment", &m, &body, "B").unwrap();
        let text: String = parts
            .iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect();
        assert_eq!(
            text,
            "--B\r\nContent-Disposition: form-data; name=\"comment\"\r\n\r\nBoard \"replaced\"\
             \r\n--B\r\nContent-Disposition: form-data; name=\"public\"\r\n\r\ntrue\
             \r\n--B\r\nContent-Disposition: form-data; name=\"ticket\"\r\n\r\n7"
        );
        let e = form_parts("d", "add comment", &m, &serde_json::json!([1]), "B").unwrap_err();
        assert!(matches!(e, SinkError::Permanent { message } if message.contains("JSON object")));
    }

    #[test]
    fn multipart_parameters_cannot_break_the_header() {
        assert_eq!(quoted("весы.bin"), "\"весы.bin\"");
        assert_eq!(quoted("a\"b\\c\r\nd"), "\"a\\\"b\\\\c  d\"");
    }
}

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
