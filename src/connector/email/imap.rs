//! The IMAP connection: plain, TLS or STARTTLS as `imap.security` says,
//! and the login. Used by the mailbox reader (`poll.rs`), the Sent folder
//! (`sent.rs`) and `deskbridge probe`.

use super::config::Security;
use super::endpoint::MailEndpoint;
use super::error::MailError;
use async_imap::Session;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A plain or TLS connection to the IMAP server.
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Conn::Plain(_) => "imap (plain)",
            Conn::Tls(_) => "imap (tls)",
        })
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

async fn tls(
    tcp: TcpStream,
    host: &str,
    ca_file: Option<&std::path::Path>,
) -> Result<Conn, MailError> {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::{pem::PemObject as _, CertificateDer};
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        let read = |source| MailError::CaFileRead {
            path: path.to_path_buf(),
            source,
        };
        let certs = CertificateDer::pem_file_iter(path).map_err(read)?;
        for cert in certs {
            roots
                .add(cert.map_err(read)?)
                .map_err(|source| MailError::CaFileCert {
                    path: path.to_path_buf(),
                    source,
                })?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(MailError::Tls)?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|source| {
        MailError::ServerName {
            host: host.to_string(),
            source,
        }
    })?;
    let s = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|source| MailError::Handshake {
            host: host.to_string(),
            source,
        })?;
    Ok(Conn::Tls(Box::new(s)))
}

/// Connects, protects and logs in. Errors never carry the password.
pub async fn connect(ep: &MailEndpoint) -> Result<Session<Conn>, MailError> {
    let i = ep.cfg.imap.as_ref().ok_or_else(|| MailError::NoImap {
        endpoint: ep.name.clone(),
    })?;
    let limit = Duration::from_secs(i.timeout_secs);
    let at = format!("IMAP {}:{}", i.host, i.port());
    let password = i.password.resolve().map_err(|source| MailError::Password {
        endpoint: ep.name.clone(),
        source,
    })?;
    let no_greeting = || MailError::NoGreeting { at: at.clone() };
    let greeting = |source| MailError::Greeting {
        at: at.clone(),
        source,
    };
    let work = async {
        let tcp = TcpStream::connect((i.host.as_str(), i.port()))
            .await
            .map_err(|source| MailError::Connect {
                at: at.clone(),
                source,
            })?;
        let conn = match i.security {
            Security::None => Conn::Plain(tcp),
            Security::Tls => tls(tcp, &i.host, i.ca_file.as_deref()).await?,
            Security::Starttls => {
                let mut c = async_imap::Client::new(tcp);
                c.read_response()
                    .await
                    .ok_or_else(no_greeting)?
                    .map_err(greeting)?;
                c.run_command_and_check_ok("STARTTLS", None)
                    .await
                    .map_err(|source| MailError::Starttls {
                        at: at.clone(),
                        source,
                    })?;
                tls(c.into_inner(), &i.host, i.ca_file.as_deref()).await?
            }
        };
        let mut client = async_imap::Client::new(conn);
        if i.security != Security::Starttls {
            client
                .read_response()
                .await
                .ok_or_else(no_greeting)?
                .map_err(greeting)?;
        }
        client
            .login(&i.user, &password)
            .await
            .map_err(|(source, _)| MailError::Login {
                at: at.clone(),
                user: i.user.clone(),
                source,
            })
    };
    tokio::time::timeout(limit, work)
        .await
        .map_err(|_| MailError::ConnectTimeout {
            at: at.clone(),
            secs: i.timeout_secs,
        })?
}
