//! HTTPS and WSS without a proxy (`--tls-cert`, `--tls-key`): rustls with the *ring* provider,
//! over the same accept loop as plain HTTP ([`crate::transport`]), the handshake on the
//! connection's own task within the header timeout.
//!
//! The certificate is read again on SIGHUP (a renewed certificate needs no restart). The server
//! config asks [`Certificates`] for the certificate at every handshake, so a reload reaches every
//! connection made after it and none made before; a reload that fails (a missing file, a key that
//! is not the certificate's) keeps the certificate already served and logs why.

use crate::transport::{Listener, Plain};
use anyhow::{Context as _, bail};
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

/// The server's certificate chain and key, as last read from their files.
pub struct Certificates {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl Certificates {
    /// Reads the chain (PEM, the server's own certificate first) and its private key (PEM:
    /// PKCS#8, PKCS#1 or SEC1); fails with what is wrong with them.
    pub fn load(cert: &Path, key: &Path) -> anyhow::Result<Self> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let current = read(cert, key, &provider)?;
        Ok(Self {
            cert: cert.to_owned(),
            key: key.to_owned(),
            provider,
            current: RwLock::new(Arc::new(current)),
        })
    }

    /// Reads the files again and serves what they hold from the next handshake on; on failure
    /// the certificate served so far stays.
    pub fn reload(&self) -> anyhow::Result<()> {
        let fresh = read(&self.cert, &self.key, &self.provider)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(fresh);
        Ok(())
    }

    /// The certificate served now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A rustls server config that serves these certificates, HTTP/1.1 only (the server speaks
    /// nothing else; WebSockets upgrade from it).
    pub fn server_config(self: &Arc<Self>) -> anyhow::Result<Arc<ServerConfig>> {
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .context("while choosing the TLS versions")?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// Reloads on every SIGHUP until `shutdown` is cancelled.
    #[cfg(unix)]
    pub async fn reload_on_hangup(self: Arc<Self>, shutdown: CancellationToken) {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "SIGHUP cannot be watched: the TLS certificate will not be reloaded");
                return;
            }
        };
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                got = hangups.recv() => if got.is_none() { return },
            }
            match self.reload() {
                Ok(()) => tracing::info!(
                    cert = %self.cert.display(),
                    "SIGHUP: reloaded the TLS certificate; new connections get it"
                ),
                Err(e) => tracing::error!(
                    cert = %self.cert.display(),
                    key = %self.key.display(),
                    error = format!("{e:#}"),
                    "SIGHUP: the TLS certificate was not reloaded; the previous one is still served"
                ),
            }
        }
    }

    /// Without SIGHUP there is nothing to watch: a restart reads the files again.
    #[cfg(not(unix))]
    pub async fn reload_on_hangup(self: Arc<Self>, _shutdown: CancellationToken) {}
}

impl fmt::Debug for Certificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificates")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

fn read(cert: &Path, key: &Path, provider: &CryptoProvider) -> anyhow::Result<CertifiedKey> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("while reading the certificate chain {}", cert.display()))?;
    if chain.is_empty() {
        bail!(
            "{} holds no certificate (a PEM file with `BEGIN CERTIFICATE` blocks)",
            cert.display()
        );
    }
    let private = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("while reading the private key {}", key.display()))?;
    CertifiedKey::from_der(chain, private, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => anyhow::anyhow!(
            "the private key {} is not the key of the certificate {}",
            key.display(),
            cert.display()
        ),
        e => anyhow::anyhow!("the private key {} cannot be used: {e}", key.display()),
    })
}

/// TCP connections, each turned into TLS by its handshake.
pub struct Tls {
    tcp: Plain,
    acceptor: TlsAcceptor,
}

impl Tls {
    /// Serves `config` on `tcp`.
    pub fn new(tcp: TcpListener, config: Arc<ServerConfig>) -> Self {
        Self {
            tcp: Plain(tcp),
            acceptor: TlsAcceptor::from(config),
        }
    }
}

impl Listener for Tls {
    type Accepted = TcpStream;
    type Io = TlsStream<TcpStream>;

    async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        self.tcp.accept().await
    }

    async fn handshake(&self, tcp: TcpStream) -> io::Result<TlsStream<TcpStream>> {
        self.acceptor.accept(tcp).await
    }
}
