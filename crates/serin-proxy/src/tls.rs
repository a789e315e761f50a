//! TLS on both sides of the proxy, with rustls.
//!
//! **The listener** terminates TLS with one or more certificate and key
//! files. The certificate a handshake gets is chosen by the name the client
//! asks for (SNI): the first whose names (its subject alternative names, as
//! webpki reads them) include it, else the first given. The files are read
//! again when they change on disk (checked every [`RELOAD_EVERY`]), so a
//! renewed certificate is served without a restart; a file that doesn't
//! parse leaves the certificates in use as they were, and says why.
//!
//! **Upstreams** may be `https://`: the proxy verifies them against the
//! Mozilla roots (webpki-roots) and any CA bundle the operator adds, and can
//! present a client certificate.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The listener's TLS configuration ([`Certificates::server_config`]).
pub use rustls::ServerConfig;

/// How often the listener's certificate files are checked for changes.
pub const RELOAD_EVERY: Duration = Duration::from_secs(2);

/// A certificate chain file and its key file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    /// PEM, the leaf first.
    pub cert: PathBuf,
    /// PEM: PKCS#8, PKCS#1 or SEC1.
    pub key: PathBuf,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate in it", path.display()));
    }
    Ok(chain)
}

fn load(files: &CertFiles) -> Result<Arc<CertifiedKey>, String> {
    let chain = read_chain(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| format!("{}: {e}", files.key.display()))?;
    let key = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("{}: {e}", files.key.display()))?;
    let certified = CertifiedKey::new(chain, key);
    certified
        .keys_match()
        .map_err(|e| format!("{} and {}: {e}", files.cert.display(), files.key.display()))?;
    Ok(Arc::new(certified))
}

/// Whether `cert`'s names cover `name`.
fn covers(cert: &CertifiedKey, name: &str) -> bool {
    let (Some(leaf), Ok(name)) = (cert.end_entity_cert().ok(), ServerName::try_from(name)) else {
        return false;
    };
    webpki::EndEntityCert::try_from(leaf)
        .is_ok_and(|c| c.verify_is_valid_for_subject_name(&name).is_ok())
}

/// The listener's certificates, chosen by SNI, reloaded when their files change.
#[derive(Debug)]
pub struct Certificates {
    files: Vec<CertFiles>,
    loaded: RwLock<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    keys: Vec<Arc<CertifiedKey>>,
    /// The files' modification times when read.
    stamps: Vec<Option<SystemTime>>,
}

fn stamps(files: &[CertFiles]) -> Vec<Option<SystemTime>> {
    files
        .iter()
        .flat_map(|f| [&f.cert, &f.key])
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

impl Certificates {
    /// Reads every pair; fails on the first that doesn't load.
    pub fn load(files: Vec<CertFiles>) -> Result<Arc<Certificates>, String> {
        if files.is_empty() {
            return Err("TLS needs at least one certificate and key".into());
        }
        let stamps = stamps(&files);
        let keys = files.iter().map(load).collect::<Result<_, _>>()?;
        Ok(Arc::new(Certificates {
            files,
            loaded: RwLock::new(Loaded { keys, stamps }),
        }))
    }

    /// Reads the files again if any changed since; `Ok(true)` when the
    /// certificates in use were replaced.
    pub fn reload_if_changed(&self) -> Result<bool, String> {
        let now = stamps(&self.files);
        if self.loaded.read().unwrap_or_else(|e| e.into_inner()).stamps == now {
            return Ok(false);
        }
        let keys = self.files.iter().map(load).collect::<Result<Vec<_>, _>>();
        let mut loaded = self.loaded.write().unwrap_or_else(|e| e.into_inner());
        // Either way these stamps were seen: a bad file is reported once,
        // and read again when it changes again.
        loaded.stamps = now;
        loaded.keys = keys?;
        Ok(true)
    }

    /// Checks the files every [`RELOAD_EVERY`] until the process ends.
    pub fn watch(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(RELOAD_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(me) = me.upgrade() else { return };
                match me.reload_if_changed() {
                    Ok(true) => tracing::info!("TLS certificates reloaded"),
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "TLS certificates not reloaded; serving the previous ones")
                    }
                }
            }
        });
    }

    /// The TLS configuration of the listener: these certificates, HTTP/2 and
    /// HTTP/1.1 offered by ALPN.
    pub fn server_config(self: &Arc<Self>) -> Arc<ServerConfig> {
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default TLS versions")
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let loaded = self.loaded.read().unwrap_or_else(|e| e.into_inner());
        let chosen = hello
            .server_name()
            .and_then(|name| loaded.keys.iter().find(|k| covers(k, name)));
        chosen.or_else(|| loaded.keys.first()).cloned()
    }
}

/// How the proxy talks TLS to `https://` upstreams.
#[derive(Debug, Clone, Default)]
pub struct UpstreamTls {
    /// PEM certificates trusted besides the Mozilla roots.
    pub ca: Option<PathBuf>,
    /// A client certificate to present.
    pub client: Option<CertFiles>,
}

impl UpstreamTls {
    /// The rustls client configuration (the connector offers HTTP/1.1 by
    /// ALPN: the upstream client pools HTTP/1.1 connections).
    pub fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, String> {
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if let Some(ca) = &self.ca {
            for cert in read_chain(ca)? {
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: {e}", ca.display()))?;
            }
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots);
        let config = match &self.client {
            None => builder.with_no_client_auth(),
            Some(files) => {
                let chain = read_chain(&files.cert)?;
                let key = PrivateKeyDer::from_pem_file(&files.key)
                    .map_err(|e| format!("{}: {e}", files.key.display()))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| format!("{}: {e}", files.cert.display()))?
            }
        };
        Ok(Arc::new(config))
    }
}
