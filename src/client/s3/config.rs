//! Where an S3 client connects and who it says it is, settled the way the
//! AWS command line and SDKs settle it, so that a user's existing setup
//! works as it is: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
//! `AWS_SESSION_TOKEN`; `AWS_REGION`, then `AWS_DEFAULT_REGION`;
//! `AWS_ENDPOINT_URL_S3`, then `AWS_ENDPOINT_URL`, for an S3-compatible
//! server (MinIO, R2, Ceph, moto); and the profile `AWS_PROFILE` names
//! (else `default`) in `~/.aws/credentials` and `~/.aws/config` (or the
//! files `AWS_SHARED_CREDENTIALS_FILE` and `AWS_CONFIG_FILE` name) for
//! whatever the variables leave unsaid. With an endpoint, buckets are
//! addressed by path (`http://host:port/bucket/key`), as those servers
//! expect; on AWS, by virtual host (`https://bucket.s3.REGION.amazonaws.com/key`)
//! unless `AWS_S3_ADDRESSING_STYLE=path` asks for the path.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};

/// The keys a request is signed with.
#[derive(Clone)]
pub struct Credentials {
    /// The access key id (not a secret, but kept out of messages anyway).
    pub access_key: String,
    /// The secret access key: never shown.
    pub secret_key: String,
    /// A temporary credential's session token: never shown.
    pub token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(…)")
    }
}

/// How requests reach the server.
#[derive(Debug, Clone)]
pub struct Settings {
    /// None: unsigned (anonymous) requests.
    pub credentials: Option<Credentials>,
    /// Where the credentials came from, for the hint of a refused request.
    pub credentials_from: String,
    /// The signing region.
    pub region: String,
    /// `scheme://host[:port]` of an S3-compatible server; None: AWS.
    pub endpoint: Option<String>,
    /// Buckets addressed by path rather than by virtual host.
    pub path_style: bool,
}

/// One profile's settings from the shared files.
type Profile = HashMap<String, String>;

/// Reads `[section]` of an INI-style AWS file (`name = value` lines,
/// `#` and `;` comments). A missing file is an empty profile.
fn read_section(path: &std::path::Path, section: &str) -> Result<Profile> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Profile::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut found = Profile::new();
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == section;
            continue;
        }
        if inside && let Some((name, value)) = line.split_once('=') {
            found.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    Ok(found)
}

impl Settings {
    /// The settings `env` (the process's environment, in the programs)
    /// and the profile files give.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Settings> {
        let var = |name: &str| env(name).filter(|v| !v.is_empty());
        let home = var("HOME").map(PathBuf::from);
        let aws_file = |variable: &str, name: &str| {
            var(variable)
                .map(PathBuf::from)
                .or_else(|| home.as_ref().map(|h| h.join(".aws").join(name)))
        };
        let profile_name = var("AWS_PROFILE").unwrap_or_else(|| "default".into());
        let mut profile = Profile::new();
        if let Some(path) = aws_file("AWS_CONFIG_FILE", "config") {
            let section = if profile_name == "default" {
                "default".to_string()
            } else {
                format!("profile {profile_name}")
            };
            profile = read_section(&path, &section)?;
        }
        let mut keys = Profile::new();
        if let Some(path) = aws_file("AWS_SHARED_CREDENTIALS_FILE", "credentials") {
            keys = read_section(&path, &profile_name)?;
        }
        let from_profile = |name: &str| {
            keys.get(name)
                .or_else(|| profile.get(name))
                .filter(|v| !v.is_empty())
                .cloned()
        };
        let (credentials, credentials_from) = match (
            var("AWS_ACCESS_KEY_ID"),
            var("AWS_SECRET_ACCESS_KEY"),
        ) {
            (Some(access_key), Some(secret_key)) => (
                Some(Credentials {
                    access_key,
                    secret_key,
                    token: var("AWS_SESSION_TOKEN"),
                }),
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".to_string(),
            ),
            (Some(_), None) => bail!("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not"),
            (None, Some(_)) => bail!("AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not"),
            (None, None) => match (
                from_profile("aws_access_key_id"),
                from_profile("aws_secret_access_key"),
            ) {
                (Some(access_key), Some(secret_key)) => (
                    Some(Credentials {
                        access_key,
                        secret_key,
                        token: from_profile("aws_session_token"),
                    }),
                    format!("the AWS profile {profile_name:?}"),
                ),
                _ if var("AWS_PROFILE").is_some() => bail!(
                    "AWS_PROFILE names {profile_name:?}, but no access key for it is in the AWS credentials or config file"
                ),
                _ => (
                    None,
                    "no credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE): requests are anonymous".to_string(),
                ),
            },
        };
        let region = var("AWS_REGION")
            .or_else(|| var("AWS_DEFAULT_REGION"))
            .or_else(|| from_profile("region"))
            .unwrap_or_else(|| "us-east-1".into());
        let endpoint = var("AWS_ENDPOINT_URL_S3")
            .or_else(|| var("AWS_ENDPOINT_URL"))
            .or_else(|| from_profile("endpoint_url"))
            .map(|e| check_endpoint(&e))
            .transpose()?;
        let style = var("AWS_S3_ADDRESSING_STYLE");
        let path_style = match style.as_deref() {
            Some("path") => true,
            Some("virtual") => false,
            None | Some("auto") => endpoint.is_some(),
            Some(other) => {
                bail!("AWS_S3_ADDRESSING_STYLE is {other:?}: it takes path, virtual or auto")
            }
        };
        Ok(Settings {
            credentials,
            credentials_from,
            region,
            endpoint,
            path_style,
        })
    }
}

/// An endpoint is `http://` or `https://`, a host and maybe a port; a path
/// or credentials in it are refused rather than ignored.
fn check_endpoint(text: &str) -> Result<String> {
    let trimmed = text.trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("http://")
        .or_else(|| trimmed.strip_prefix("https://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains(['/', '@', '?', '#']) => {
            Ok(trimmed.to_string())
        }
        _ => bail!(
            "the S3 endpoint (AWS_ENDPOINT_URL) must be http:// or https:// with a host and an optional port, nothing more"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_env(&|name| vars.get(name).cloned())
    }

    #[test]
    fn variables_come_first_then_the_profile_files() {
        let dir = tempfile::tempdir().unwrap();
        let aws = dir.path().join(".aws");
        std::fs::create_dir(&aws).unwrap();
        std::fs::write(
            aws.join("credentials"),
            "[default]\naws_access_key_id = AKDEF\naws_secret_access_key = s1\n\n[work]\naws_access_key_id=AKWORK\naws_secret_access_key=s2\naws_session_token=t2\n",
        )
        .unwrap();
        std::fs::write(
            aws.join("config"),
            "[default]\nregion = eu-west-1\n[profile work]\nregion = eu-central-1\nendpoint_url = http://minio:9000\n",
        )
        .unwrap();
        let home = dir.path().to_str().unwrap();
        let s = settings(&[("HOME", home)]).unwrap();
        let c = s.credentials.unwrap();
        assert_eq!(
            (c.access_key.as_str(), s.region.as_str()),
            ("AKDEF", "eu-west-1")
        );
        assert!(s.endpoint.is_none() && !s.path_style);
        let s = settings(&[("HOME", home), ("AWS_PROFILE", "work")]).unwrap();
        let c = s.credentials.unwrap();
        assert_eq!(c.token.as_deref(), Some("t2"));
        assert_eq!(s.region, "eu-central-1");
        assert_eq!(s.endpoint.as_deref(), Some("http://minio:9000"));
        assert!(s.path_style);
        let s = settings(&[
            ("HOME", home),
            ("AWS_ACCESS_KEY_ID", "AKENV"),
            ("AWS_SECRET_ACCESS_KEY", "s3"),
            ("AWS_DEFAULT_REGION", "ap-south-1"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5055/"),
            ("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:6066"),
        ])
        .unwrap();
        assert_eq!(s.credentials.unwrap().access_key, "AKENV");
        assert_eq!(s.region, "ap-south-1");
        assert_eq!(s.endpoint.as_deref(), Some("http://127.0.0.1:6066"));
        let err = settings(&[("HOME", home), ("AWS_PROFILE", "nobody")]).unwrap_err();
        assert!(err.to_string().contains("\"nobody\""), "{err}");
        let s = settings(&[]).unwrap();
        assert!(s.credentials.is_none());
        assert_eq!(s.region, "us-east-1");
        assert!(settings(&[("AWS_ENDPOINT_URL", "http://u:p@h")]).is_err());
    }
}
