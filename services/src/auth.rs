//! Bearer tokens: HMAC-SHA256-signed claims, minted by `nearby token` and checked on every
//! write (and every WebSocket).
//!
//! A token is `nearby1.<claims>.<signature>`, both parts base64url without padding; the claims
//! are JSON `{"sub": user id, "adm": admin?, "iat": issued, "exp": expires}` in Unix seconds.
//! The secret comes from `--secret` / `NEARBY_SECRET`; without one, `serve` and `token` share
//! a development secret kept in a file in the user's data directory, created on first use.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

const PREFIX: &str = "nearby1";
/// Tokens longer than this are refused before any decoding.
const MAX_TOKEN_LEN: usize = 1_024;
/// Shortest secret accepted: 16 bytes of key material.
pub const MIN_SECRET_LEN: usize = 16;

/// Who a token speaks for.
///
/// ```
/// use nearby_services::auth::Claims;
/// let claims = Claims { sub: 7, adm: false, iat: 0, exp: u64::MAX };
/// assert!(!claims.adm);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// User id.
    pub sub: u64,
    /// May write businesses.
    pub adm: bool,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Expires at, Unix seconds.
    pub exp: u64,
}

/// Why a token was refused. Deliberately vague towards clients: the message never says which
/// check failed beyond what the client can fix.
///
/// ```
/// use nearby_services::auth::{Secret, TokenError};
/// let secret = Secret::new(b"0123456789abcdef0123".to_vec())?;
/// assert_eq!(secret.verify("garbage", 0), Err(TokenError::Malformed));
/// # Ok::<(), nearby_services::auth::SecretError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenError {
    /// Not a token of this service.
    Malformed,
    /// The signature does not match.
    BadSignature,
    /// Past its expiry.
    Expired,
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TokenError::Malformed => "the bearer token is malformed",
            TokenError::BadSignature => "the bearer token's signature is invalid",
            TokenError::Expired => "the bearer token has expired",
        })
    }
}

impl std::error::Error for TokenError {}

/// A problem with the signing secret.
///
/// ```
/// use nearby_services::auth::Secret;
/// assert!(Secret::new(b"short".to_vec()).is_err());
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum SecretError {
    /// Fewer than [`MIN_SECRET_LEN`] bytes.
    TooShort,
    /// The development secret file could not be read or created.
    File(PathBuf, std::io::Error),
    /// The development secret file is not private to this user (another owner, or readable
    /// or writable by group or others): whoever else can read it can mint tokens for any
    /// user, whoever can write it can choose the key. The reason says which.
    Untrusted(PathBuf, String),
}

impl fmt::Display for SecretError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretError::TooShort => {
                write!(f, "the secret must be at least {MIN_SECRET_LEN} bytes")
            }
            SecretError::File(path, err) => {
                write!(f, "development secret file {}: {err}", path.display())
            }
            SecretError::Untrusted(path, reason) => write!(
                f,
                "development secret file {} is not trusted: {reason}",
                path.display()
            ),
        }
    }
}

impl std::error::Error for SecretError {}

/// The signing key. Its `Debug` never shows the key.
///
/// ```
/// use nearby_services::auth::Secret;
/// let secret = Secret::new(b"a development secret".to_vec())?;
/// assert_eq!(format!("{secret:?}"), "Secret(..)");
/// # Ok::<(), nearby_services::auth::SecretError>(())
/// ```
#[derive(Clone)]
pub struct Secret {
    key: Vec<u8>,
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// A secret from key material.
    ///
    /// # Errors
    /// [`SecretError::TooShort`].
    ///
    /// ```
    /// # use nearby_services::auth::Secret;
    /// assert!(Secret::new(vec![7; 32]).is_ok());
    /// ```
    pub fn new(key: Vec<u8>) -> Result<Self, SecretError> {
        if key.len() < MIN_SECRET_LEN {
            return Err(SecretError::TooShort);
        }
        Ok(Self { key })
    }

    /// The development secret at `path`, created (random, mode 0600) if missing.
    ///
    /// An existing file is used only if it is owned by this process's effective user and
    /// neither group nor others may read or write it (mode `& 0o077 == 0`); it is never
    /// repaired, since a file someone else could read may already have leaked its key.
    ///
    /// # Errors
    /// [`SecretError::File`] when the file cannot be read or written;
    /// [`SecretError::Untrusted`] when it is not private to this user.
    ///
    /// ```
    /// # use nearby_services::auth::Secret;
    /// let dir = std::env::temp_dir().join(format!("nearby-doc-{}", std::process::id()));
    /// let path = dir.join("dev-secret");
    /// let a = Secret::development(&path)?;
    /// let b = Secret::development(&path)?;
    /// assert_eq!(a.mint(1, false, 60, 0), b.mint(1, false, 60, 0));
    /// # std::fs::remove_dir_all(dir).ok();
    /// # Ok::<(), nearby_services::auth::SecretError>(())
    /// ```
    pub fn development(path: &Path) -> Result<Self, SecretError> {
        let file_error = |err| SecretError::File(path.to_path_buf(), err);
        match std::fs::File::open(path) {
            Ok(file) => return read_private(path, file),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(file_error(err)),
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(file_error)?;
        }
        let mut key = vec![0u8; 32];
        getrandom::fill(&mut key).map_err(|err| {
            file_error(std::io::Error::other(format!(
                "cannot read the OS random generator: {err}"
            )))
        })?;
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(path) {
            Ok(mut file) => file.write_all(hex.as_bytes()).map_err(file_error)?,
            // Another process created it first: use theirs.
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(err) => return Err(file_error(err)),
        }
        // Read back through the same checks: when another process won the race above, its
        // file is the one in use.
        read_private(path, std::fs::File::open(path).map_err(file_error)?)
    }

    /// Mints a token for `user`, valid `ttl_s` seconds from `now` (Unix seconds).
    ///
    /// ```
    /// # use nearby_services::auth::Secret;
    /// let secret = Secret::new(vec![1; 32])?;
    /// let token = secret.mint(42, true, 3_600, 1_000);
    /// let claims = secret.verify(&token, 1_001).unwrap();
    /// assert_eq!((claims.sub, claims.adm, claims.exp), (42, true, 4_600));
    /// # Ok::<(), nearby_services::auth::SecretError>(())
    /// ```
    pub fn mint(&self, user: u64, admin: bool, ttl_s: u64, now: u64) -> String {
        let claims = Claims {
            sub: user,
            adm: admin,
            iat: now,
            exp: now.saturating_add(ttl_s),
        };
        // Serialising four integers and a bool cannot fail.
        let json = serde_json::to_vec(&claims).unwrap_or_default();
        let body = format!("{PREFIX}.{}", URL_SAFE_NO_PAD.encode(json));
        let signature = URL_SAFE_NO_PAD.encode(self.sign(body.as_bytes()));
        format!("{body}.{signature}")
    }

    /// Checks a token's form, signature (in constant time) and expiry.
    ///
    /// # Errors
    /// A [`TokenError`].
    ///
    /// ```
    /// # use nearby_services::auth::{Secret, TokenError};
    /// let secret = Secret::new(vec![1; 32])?;
    /// let other = Secret::new(vec![2; 32])?;
    /// let token = secret.mint(1, false, 10, 100);
    /// assert_eq!(other.verify(&token, 100), Err(TokenError::BadSignature));
    /// assert_eq!(secret.verify(&token, 111), Err(TokenError::Expired));
    /// # Ok::<(), nearby_services::auth::SecretError>(())
    /// ```
    pub fn verify(&self, token: &str, now: u64) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let (body, signature) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let (prefix, claims) = body.split_once('.').ok_or(TokenError::Malformed)?;
        if prefix != PREFIX {
            return Err(TokenError::Malformed);
        }
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| TokenError::Malformed)?;
        let mut mac = self.mac();
        mac.update(body.as_bytes());
        mac.verify_slice(&signature)
            .map_err(|_| TokenError::BadSignature)?;
        let claims = URL_SAFE_NO_PAD
            .decode(claims)
            .map_err(|_| TokenError::Malformed)?;
        let claims: Claims = serde_json::from_slice(&claims).map_err(|_| TokenError::Malformed)?;
        if now >= claims.exp {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC accepts keys of any length.
        <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("hmac takes any key length"))
    }

    fn sign(&self, body: &[u8]) -> Vec<u8> {
        let mut mac = self.mac();
        mac.update(body);
        mac.finalize().into_bytes().to_vec()
    }
}

/// Reads the development secret from `file` (opened at `path`) after checking that it is
/// private to this user. The checks look at the opened file, not the path, so the file cannot
/// be swapped between the check and the read.
fn read_private(path: &Path, mut file: std::fs::File) -> Result<Secret, SecretError> {
    let file_error = |err| SecretError::File(path.to_path_buf(), err);
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let metadata = file.metadata().map_err(file_error)?;
        let user = effective_uid().map_err(file_error)?;
        if let Some(reason) = untrusted_reason(metadata.uid(), metadata.mode(), user) {
            return Err(SecretError::Untrusted(path.to_path_buf(), reason));
        }
    }
    let mut key = Vec::new();
    std::io::Read::read_to_end(&mut file, &mut key).map_err(file_error)?;
    Secret::new(key)
}

/// Why a secret file with this owner and mode must not be trusted by user `user`, if it must
/// not.
#[cfg(unix)]
fn untrusted_reason(owner: u32, mode: u32, user: u32) -> Option<String> {
    if owner != user {
        return Some(format!(
            "it is owned by uid {owner}, not by this user (uid {user}); remove it to have a new \
             one created"
        ));
    }
    if mode & 0o077 != 0 {
        return Some(format!(
            "its mode is {:04o}, so group or others can read or write it; remove it to have a \
             new one created (its key may have leaked), or chmod 600 it",
            mode & 0o7777
        ));
    }
    None
}

/// This process's effective user id. The standard library has no `geteuid` and unsafe code
/// (an FFI call) is denied, so: Linux states it in `/proc/self/status` (`Uid:` real,
/// effective, saved, filesystem); elsewhere a file this process creates is owned by it.
#[cfg(unix)]
fn effective_uid() -> std::io::Result<u32> {
    use std::os::unix::fs::MetadataExt;
    if let Ok(status) = std::fs::read_to_string("/proc/self/status")
        && let Some(uid) = status
            .lines()
            .find_map(|line| line.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            .and_then(|uid| uid.parse().ok())
    {
        return Ok(uid);
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let probe =
        std::env::temp_dir().join(format!(".nearby-uid-probe-{}-{nanos}", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)?;
    let uid = file.metadata().map(|metadata| metadata.uid());
    // Best effort: a leftover empty probe file is harmless.
    let _ = std::fs::remove_file(&probe);
    uid
}

/// Where the development secret lives: `$XDG_DATA_HOME/nearby/dev-secret`, else
/// `$HOME/.local/share/nearby/dev-secret`, else the system temp directory.
///
/// ```
/// let path = nearby_services::auth::development_secret_path();
/// assert!(path.ends_with("nearby/dev-secret"));
/// ```
pub fn development_secret_path() -> PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|home| PathBuf::from(home).join(".local/share"))
        })
        .unwrap_or_else(std::env::temp_dir);
    base.join("nearby").join("dev-secret")
}

/// Seconds since the Unix epoch.
///
/// ```
/// assert!(nearby_services::auth::unix_now() > 1_700_000_000);
/// ```
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The nearby-friends gateway checks WebSocket and `/v1/me` tokens with the same secret.
impl nearby_ws_gateway::Authenticator for Secret {
    fn authenticate(&self, token: &str) -> Result<u64, String> {
        self.verify(token, unix_now())
            .map(|claims| claims.sub)
            .map_err(|err| err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tampered_tokens_are_refused() {
        let secret = Secret::new(vec![9; 32]).unwrap();
        let token = secret.mint(5, false, 100, 0);
        // Swap in admin claims, keep the signature.
        let (_, rest) = token.split_once('.').unwrap();
        let (_, signature) = rest.split_once('.').unwrap();
        let forged_claims = URL_SAFE_NO_PAD.encode(br#"{"sub":5,"adm":true,"iat":0,"exp":100}"#);
        let forged = format!("{PREFIX}.{forged_claims}.{signature}");
        assert_eq!(secret.verify(&forged, 1), Err(TokenError::BadSignature));
        for bad in [
            "",
            ".",
            "nearby1..",
            "nearby1.e30.",
            "x.y.z",
            &"a".repeat(5_000),
        ] {
            assert!(secret.verify(bad, 1).is_err(), "{bad}");
        }
        assert!(secret.verify(&token, 1).is_ok());
    }

    /// A fresh directory under the system temp directory, removed on drop.
    #[cfg(unix)]
    struct TempDir(PathBuf);

    #[cfg(unix)]
    impl TempDir {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!(
                "nearby-auth-{name}-{}-{}",
                std::process::id(),
                unix_now()
            ));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    #[cfg(unix)]
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_development_secret_others_can_read_or_write_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = TempDir::new("mode");
        let path = dir.0.join("dev-secret");
        // Created by `development` itself: 0600, and trusted.
        let created = Secret::development(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        for loose in [0o640, 0o620, 0o604, 0o602, 0o660, 0o644] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(loose)).unwrap();
            let err = Secret::development(&path).unwrap_err();
            assert!(
                matches!(&err, SecretError::Untrusted(p, _) if p == &path),
                "{loose:o}: {err:?}"
            );
            let message = err.to_string();
            assert!(message.contains(&path.display().to_string()), "{message}");
            assert!(message.contains("group or others"), "{message}");
            assert!(message.contains(&format!("{loose:04o}")), "{message}");
            // Refused, not repaired.
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, loose);
        }
        // Owner-only modes are fine, and the key is the one created.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        let again = Secret::development(&path).unwrap();
        assert_eq!(created.mint(1, false, 60, 0), again.mint(1, false, 60, 0));
    }

    #[cfg(unix)]
    #[test]
    fn a_development_secret_owned_by_someone_else_is_refused() {
        // Changing a file's owner needs privileges the tests may not have: check the rule.
        assert_eq!(untrusted_reason(1000, 0o100600, 1000), None);
        let reason = untrusted_reason(0, 0o100600, 1000).unwrap();
        assert!(reason.contains("owned by uid 0"), "{reason}");
        assert!(reason.contains("uid 1000"), "{reason}");
        assert!(untrusted_reason(1000, 0o100640, 1000).is_some());
        // The user it compares with is this process's.
        let dir = TempDir::new("owner");
        let probe = dir.0.join("probe");
        std::fs::write(&probe, b"x").unwrap();
        let owner = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&probe).unwrap());
        assert_eq!(effective_uid().unwrap(), owner);
    }
}
