//! How the CLI's clients (`tollgate admin`, `tollgate exec --pull`) verify a Tollgate server
//! over HTTPS: the system's roots and the bundled Mozilla roots, plus the CA certificates of
//! `TOLLGATE_CA_CERT` (a PEM file) for a server whose certificate an own CA signed.

use std::path::Path;

use tollgate_server::tls::rustls;

use crate::exit::CliError;

/// The variable naming an extra CA bundle (PEM) to trust.
pub(crate) const CA_VAR: &str = "TOLLGATE_CA_CERT";

/// An HTTP client builder that trusts the system roots and, when `TOLLGATE_CA_CERT` is set
/// (non-empty), the certificates in that file too.
///
/// # Errors
/// A configuration error (exit 78) naming the variable when the file cannot be read or holds
/// no PEM certificate.
pub(crate) fn client_builder() -> Result<reqwest::ClientBuilder, CliError> {
    let ca = std::env::var_os(CA_VAR).filter(|v| !v.is_empty());
    with_ca(reqwest::Client::builder(), ca.as_deref().map(Path::new))
}

/// `builder` also trusting the PEM certificates in `ca`, if given.
fn with_ca(mut builder: reqwest::ClientBuilder, ca: Option<&Path>) -> Result<reqwest::ClientBuilder, CliError> {
    let Some(path) = ca else { return Ok(builder) };
    let pem = std::fs::read(path).map_err(|e| CliError::config(format!("{CA_VAR} {}: {e}", path.display())))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| CliError::config(format!("{CA_VAR} {}: not a PEM certificate bundle: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(CliError::config(format!("{CA_VAR} {}: no PEM certificate in the file", path.display())));
    }
    for cert in certs {
        builder = builder.add_root_certificate(cert);
    }
    Ok(builder)
}

/// When `e` failed because the server's certificate did not verify: a message saying why and
/// what to set. Retrying cannot help such a failure.
pub(crate) fn untrusted(e: &reqwest::Error) -> Option<String> {
    match rustls_cause(e) {
        Some(rustls::Error::InvalidCertificate(why)) => Some(format!(
            "the server's TLS certificate is not trusted ({why:?}): if your own CA signed it, set {CA_VAR} to that \
             CA's certificate (a PEM file)"
        )),
        _ => None,
    }
}

/// The rustls error in `e`'s chain, if any.
fn rustls_cause<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    if let Some(found) = e.downcast_ref::<rustls::Error>() {
        return Some(found);
    }
    // An io::Error's `source` skips the error it wraps: look into that one too.
    if let Some(inner) = e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
        let inner: &(dyn std::error::Error + 'static) = inner;
        if let Some(found) = rustls_cause(inner) {
            return Some(found);
        }
    }
    e.source().and_then(rustls_cause)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_ca_file_is_a_configuration_error() {
        let dir = std::env::temp_dir().join(format!("tollgate-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok();
        let missing = dir.join("missing.pem");
        let Err(e) = with_ca(reqwest::Client::builder(), Some(&missing)) else { panic!("a missing file must fail") };
        assert!(e.to_string().contains(CA_VAR), "{e}");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").ok();
        let Err(e) = with_ca(reqwest::Client::builder(), Some(&empty)) else { panic!("no certificate must fail") };
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
        assert!(with_ca(reqwest::Client::builder(), None).is_ok());
        std::fs::remove_dir_all(&dir).ok();
    }
}
