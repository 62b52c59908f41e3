//! PEM in and out: decoding through `rustls-pki-types`, encoding here (64
//! columns, `\n` line ends, as OpenSSL writes it).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::CertificateDer;
use zeroize::Zeroizing;

use crate::error::CaError;

/// Bytes of DER per PEM line (64 base64 characters).
const DER_BYTES_PER_LINE: usize = 48;

/// Encodes DER as one PEM block with the given label.
pub(crate) fn encode(label: &str, der: &[u8]) -> String {
    let mut out = String::with_capacity(der.len() * 4 / 3 + 2 * label.len() + 40);
    encode_into(&mut out, label, der);
    out
}

/// Appends one PEM block to `out`, writing straight into it so that a secret
/// never sits in an intermediate buffer.
pub(crate) fn encode_into(out: &mut String, label: &str, der: &[u8]) {
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for line in der.chunks(DER_BYTES_PER_LINE) {
        STANDARD.encode_string(line, out);
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
}

/// Encodes a PKCS#8 private key as `PRIVATE KEY` PEM, in memory that is
/// wiped on drop.
#[must_use]
pub fn key_pem(pkcs8_der: &[u8]) -> Zeroizing<String> {
    // Reserve enough up front so the secret is never reallocated and left behind.
    let mut out = Zeroizing::new(String::with_capacity(pkcs8_der.len() * 2 + 64));
    encode_into(&mut out, "PRIVATE KEY", pkcs8_der);
    out
}

/// True when the input looks like PEM text rather than DER: it does not
/// start like a DER SEQUENCE and holds a begin line somewhere (text such as
/// `openssl req -text` output may precede it).
pub(crate) fn looks_like_pem(input: &[u8]) -> bool {
    const BEGIN: &[u8] = b"-----BEGIN ";
    input.first() != Some(&0x30) && input.windows(BEGIN.len()).any(|w| w == BEGIN)
}

pub(crate) fn pem_error(what: &'static str, err: &pem::Error) -> CaError {
    let reason = match err {
        pem::Error::MissingSectionEnd { .. } => "a section has no end line (truncated?)",
        pem::Error::IllegalSectionStart { .. } => "a begin line is malformed",
        pem::Error::Base64Decode(_) => "the base64 body does not decode",
        pem::Error::NoItemsFound => "no matching section found",
        pem::Error::SectionTooLarge => "a section is too large",
        _ => "unreadable pem",
    };
    CaError::MalformedPem { what, reason }
}

/// Reads every `CERTIFICATE` block from PEM text, e.g. `bundle.pem` or
/// `svid.pem`, in order. Other blocks are skipped.
///
/// # Errors
/// [`CaError::MalformedPem`] when the text does not decode or holds no
/// certificate.
pub fn certs_from_pem(pem_text: &[u8]) -> Result<Vec<CertificateDer<'static>>, CaError> {
    let certs = CertificateDer::pem_slice_iter(pem_text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error("certificate", &e))?;
    if certs.is_empty() {
        return Err(CaError::MalformedPem {
            what: "certificate",
            reason: "no matching section found",
        });
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_wraps_at_64_columns() {
        let der = vec![0xab; 100];
        let text = encode("CERTIFICATE", &der);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "-----BEGIN CERTIFICATE-----");
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines[2].len(), 64);
        assert_eq!(*lines.last().unwrap(), "-----END CERTIFICATE-----");
        let back = certs_from_pem(text.as_bytes()).unwrap();
        assert_eq!(back[0].as_ref(), der.as_slice());
    }

    #[test]
    fn certs_from_pem_errors() {
        assert_eq!(
            certs_from_pem(b"").unwrap_err(),
            CaError::MalformedPem {
                what: "certificate",
                reason: "no matching section found"
            }
        );
        let text = encode("CERTIFICATE", &[1, 2, 3]);
        let truncated = &text[..text.len() - 10];
        assert_eq!(
            certs_from_pem(truncated.as_bytes()).unwrap_err(),
            CaError::MalformedPem {
                what: "certificate",
                reason: "a section has no end line (truncated?)"
            }
        );
    }

    #[test]
    fn key_pem_label() {
        let text = key_pem(&[1, 2, 3]);
        assert!(text.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    }

    #[test]
    fn looks_like_pem_skips_leading_whitespace() {
        assert!(looks_like_pem(b"\n  -----BEGIN CERTIFICATE REQUEST-----"));
        assert!(looks_like_pem(
            b"Certificate Request:\n-----BEGIN CERTIFICATE REQUEST-----"
        ));
        assert!(!looks_like_pem(&[0x30, 0x82]));
        assert!(!looks_like_pem(b"garbage"));
    }
}
