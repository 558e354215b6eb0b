//! A throwaway certificate authority and a server certificate it signed,
//! made with the `openssl` command, for a cluster with TLS on
//! ([`ClusterOptions::ssl`](crate::ClusterOptions::ssl)).

use std::fs;
use std::process::Command;

use crate::Error;

/// A CA and a server certificate it signed, all PEM; valid for two days.
#[derive(Debug, Clone)]
pub struct Certificates {
    /// The CA's certificate: what a client trusts.
    pub ca_pem: String,
    /// The server's certificate.
    pub server_pem: String,
    /// The server's private key (unencrypted).
    pub server_key_pem: String,
}

impl Certificates {
    /// Makes a CA and a server certificate for `subject_alt_name`, in
    /// OpenSSL's syntax (`IP:127.0.0.1`, `DNS:localhost`, or several
    /// joined by commas). Needs the `openssl` command.
    ///
    /// ```no_run
    /// let certificates = throwaway_postgres::Certificates::generate("IP:127.0.0.1").unwrap();
    /// let cluster = throwaway_postgres::ClusterOptions::new()
    ///     .ssl(certificates.server_pem.clone(), certificates.server_key_pem.clone())
    ///     .start()
    ///     .unwrap();
    /// ```
    pub fn generate(subject_alt_name: &str) -> Result<Certificates, Error> {
        let dir = tempfile::tempdir()
            .map_err(|e| Error::new(format!("cannot make a temporary directory: {e}")))?;
        let path = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
        let server_ext = format!(
            "subjectAltName={subject_alt_name}\nbasicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
        );
        fs::write(path("server.ext"), server_ext)
            .map_err(|e| Error::new(format!("cannot write server.ext: {e}")))?;
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let ca_key = path("ca.key");
        let ca_pem = path("ca.pem");
        let server_key = path("server.key");
        let server_csr = path("server.csr");
        let server_pem = path("server.pem");
        let server_ext = path("server.ext");
        let steps: [Vec<&str>; 3] = [
            [
                &["req", "-x509"][..],
                &ec[..],
                &[
                    "-keyout",
                    &ca_key,
                    "-out",
                    &ca_pem,
                    "-days",
                    "2",
                    "-subj",
                    "/CN=throwaway-postgres test CA",
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                    "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign",
                ][..],
            ]
            .concat(),
            [
                &["req"][..],
                &ec[..],
                &[
                    "-keyout",
                    &server_key,
                    "-out",
                    &server_csr,
                    "-subj",
                    "/CN=throwaway-postgres server",
                ][..],
            ]
            .concat(),
            vec![
                "x509",
                "-req",
                "-in",
                &server_csr,
                "-CA",
                &ca_pem,
                "-CAkey",
                &ca_key,
                "-CAcreateserial",
                "-out",
                &server_pem,
                "-days",
                "2",
                "-extfile",
                &server_ext,
            ],
        ];
        for args in steps {
            let output = Command::new("openssl")
                .args(&args)
                .current_dir(dir.path())
                .output()
                .map_err(|e| {
                    Error::new(format!(
                        "cannot run openssl (install it: apt-get install openssl): {e}"
                    ))
                })?;
            if !output.status.success() {
                return Err(Error::new(format!(
                    "openssl {} failed ({}):\n{}",
                    args[0],
                    output.status,
                    String::from_utf8_lossy(&output.stderr)
                )));
            }
        }
        let read = |name: &str| {
            fs::read_to_string(path(name))
                .map_err(|e| Error::new(format!("cannot read {name}: {e}")))
        };
        Ok(Certificates {
            ca_pem: read("ca.pem")?,
            server_pem: read("server.pem")?,
            server_key_pem: read("server.key")?,
        })
    }
}
