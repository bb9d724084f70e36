//! Files over REST: sent with what deskbridge writes (uploaded first and
//! named by a token, or inline as base64), and read from the product's
//! history into the file store. Both ways stream: no file is held whole
//! in memory.

use super::client::{Answer, Payload};
use super::endpoint::RestEndpoint;
use super::profile::{Files, Method};
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

pub(super) fn permanent(message: String) -> SinkError {
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
