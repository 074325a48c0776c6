//! Where the session token is kept between runs of the app: the OS credential store.
//!
//! The token is what lets a restarted app resume the same session instead of signing in again
//! (a new sign-in during an exam blocks the student), so it is kept in the platform's keyring
//! through the `keyring-core` family: on Linux the Secret Service when a desktop keyring answers,
//! otherwise the kernel's key retention service (keyutils); the Keychain on macOS; the Credential
//! Manager on Windows. Tests use `keyring-core`'s mock store.
//!
//! Each install has its own entry: the account is the install's random id and the server's URL,
//! so two installs (or two test runs) on one machine never share a token.

use crate::error::{Error, Result};
use keyring_core::api::CredentialStore;
use std::sync::Arc;

/// The keyring service name of every invigil entry.
pub const SERVICE: &str = "invigil-desktop";

/// A store for session tokens.
pub trait Vault: Send + Sync + 'static {
    /// The token kept for `account`, if any.
    fn load(&self, account: &str) -> Result<Option<String>>;
    /// Keeps `token` for `account`, replacing any other.
    fn save(&self, account: &str, token: &str) -> Result<()>;
    /// Forgets the token of `account`; forgetting nothing is not an error.
    fn delete(&self, account: &str) -> Result<()>;
    /// Which store this is, for logs.
    fn describe(&self) -> String;
    /// Why this vault cannot keep a token across restarts, when it cannot.
    fn problem(&self) -> Option<String> {
        None
    }
}

/// A vault over a `keyring-core` credential store.
pub struct KeyringVault {
    store: Arc<CredentialStore>,
}

impl std::fmt::Debug for KeyringVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyringVault")
            .field("store", &self.store.vendor())
            .finish()
    }
}

impl KeyringVault {
    /// A vault over `store` (the mock store in tests).
    pub fn with_store(store: Arc<CredentialStore>) -> Self {
        Self { store }
    }

    /// The platform's credential store, checked to answer.
    ///
    /// On Linux the Secret Service is preferred when it answers; otherwise the kernel keyring,
    /// which needs a session keyring (a desktop login has one; headless, run under
    /// `keyctl session -`).
    pub fn system() -> Result<Self> {
        let mut failures = Vec::new();
        for candidate in platform_stores() {
            match candidate {
                Ok(store) => {
                    let vault = Self::with_store(store);
                    match vault.load("probe") {
                        Ok(_) => return Ok(vault),
                        Err(e) => failures.push(format!("{}: {e}", vault.describe())),
                    }
                }
                Err(e) => failures.push(e),
            }
        }
        Err(Error::Vault(if failures.is_empty() {
            "this platform has no supported credential store".to_owned()
        } else {
            failures.join("; ")
        }))
    }

    fn entry(&self, account: &str) -> Result<keyring_core::Entry> {
        self.store
            .build(SERVICE, account, None)
            .map_err(|e| Error::Vault(e.to_string()))
    }
}

#[cfg(target_os = "linux")]
fn platform_stores() -> Vec<Result<Arc<CredentialStore>, String>> {
    let secret_service: Result<Arc<CredentialStore>, String> =
        zbus_secret_service_keyring_store::Store::new()
            .map(|s| s as Arc<CredentialStore>)
            .map_err(|e| format!("Secret Service: {e}"));
    let keyutils: Result<Arc<CredentialStore>, String> = linux_keyutils_keyring_store::Store::new()
        .map(|s| s as Arc<CredentialStore>)
        .map_err(|e| format!("kernel keyring: {e}"));
    vec![secret_service, keyutils]
}

#[cfg(target_os = "macos")]
fn platform_stores() -> Vec<Result<Arc<CredentialStore>, String>> {
    vec![
        apple_native_keyring_store::keychain::Store::new()
            .map(|s| s as Arc<CredentialStore>)
            .map_err(|e| format!("Keychain: {e}")),
    ]
}

#[cfg(windows)]
fn platform_stores() -> Vec<Result<Arc<CredentialStore>, String>> {
    vec![
        windows_native_keyring_store::Store::new()
            .map(|s| s as Arc<CredentialStore>)
            .map_err(|e| format!("Credential Manager: {e}")),
    ]
}

#[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
fn platform_stores() -> Vec<Result<Arc<CredentialStore>, String>> {
    Vec::new()
}

impl Vault for KeyringVault {
    fn load(&self, account: &str) -> Result<Option<String>> {
        match self.entry(account)?.get_password() {
            Ok(token) => Ok(Some(token)),
            Err(keyring_core::Error::NoEntry) => Ok(None),
            Err(e) => Err(Error::Vault(e.to_string())),
        }
    }

    fn save(&self, account: &str, token: &str) -> Result<()> {
        self.entry(account)?
            .set_password(token)
            .map_err(|e| Error::Vault(e.to_string()))
    }

    fn delete(&self, account: &str) -> Result<()> {
        match self.entry(account)?.delete_credential() {
            Ok(()) | Err(keyring_core::Error::NoEntry) => Ok(()),
            Err(e) => Err(Error::Vault(e.to_string())),
        }
    }

    fn describe(&self) -> String {
        vendor_name(&self.store.vendor())
    }
}

/// A store's vendor string without the web address some stores append to their name (it would
/// only clutter the app's log: "Linux keyutils, https://…" is "Linux keyutils").
fn vendor_name(vendor: &str) -> String {
    let name = match vendor.find("http://").or_else(|| vendor.find("https://")) {
        Some(at) => vendor[..at].trim_end_matches([',', ' ', '(']),
        None => vendor,
    };
    if name.is_empty() { vendor } else { name }.to_owned()
}

/// The vault of a machine without a usable credential store: nothing is remembered, so a
/// restarted app asks the student to sign in again. The reason is shown to the student.
#[derive(Debug, Clone)]
pub struct NoVault {
    reason: String,
}

impl NoVault {
    /// A vault that keeps nothing, because of `reason`.
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }
}

impl Vault for NoVault {
    fn load(&self, _account: &str) -> Result<Option<String>> {
        Ok(None)
    }

    fn save(&self, _account: &str, _token: &str) -> Result<()> {
        Err(Error::Vault(self.reason.clone()))
    }

    fn delete(&self, _account: &str) -> Result<()> {
        Ok(())
    }

    fn describe(&self) -> String {
        format!("no credential store ({})", self.reason)
    }

    fn problem(&self) -> Option<String> {
        Some(self.reason.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mock() -> KeyringVault {
        KeyringVault::with_store(keyring_core::mock::Store::new().unwrap())
    }

    #[test]
    fn a_vendor_is_named_without_the_address_a_store_appends() {
        assert_eq!(
            vendor_name("Linux keyutils, https://example.org/x"),
            "Linux keyutils"
        );
        assert_eq!(
            vendor_name("Secret Service (http://example.org)"),
            "Secret Service"
        );
        assert_eq!(vendor_name("Mock store"), "Mock store");
        assert_eq!(vendor_name("https://example.org"), "https://example.org");
    }

    #[test]
    fn a_saved_token_is_loaded_until_it_is_deleted() {
        let vault = mock();
        assert_eq!(vault.load("install@http://a").unwrap(), None);
        vault.save("install@http://a", "t1").unwrap();
        vault.save("install@http://a", "t2").unwrap();
        assert_eq!(
            vault.load("install@http://a").unwrap().as_deref(),
            Some("t2")
        );
        vault.delete("install@http://a").unwrap();
        assert_eq!(vault.load("install@http://a").unwrap(), None);
        vault.delete("install@http://a").unwrap();
    }

    #[test]
    fn accounts_do_not_share_tokens() {
        let vault = mock();
        vault.save("one@http://a", "t1").unwrap();
        vault.save("two@http://a", "t2").unwrap();
        assert_eq!(vault.load("one@http://a").unwrap().as_deref(), Some("t1"));
        assert_eq!(vault.load("two@http://a").unwrap().as_deref(), Some("t2"));
    }

    #[test]
    fn a_locked_store_is_reported_not_taken_for_an_empty_entry() {
        let vault = mock();
        vault.save("x", "t").unwrap();
        let entry = vault.entry("x").unwrap();
        let cred: &keyring_core::mock::Cred = entry.as_any().downcast_ref().unwrap();
        cred.set_error(keyring_core::Error::NoStorageAccess("locked".into()));
        assert!(matches!(vault.load("x"), Err(Error::Vault(_))));
        // The failure passes; the token is still there.
        assert_eq!(vault.load("x").unwrap().as_deref(), Some("t"));
    }

    #[test]
    fn without_a_store_nothing_is_remembered() {
        let vault = NoVault::new("no keyring");
        assert!(vault.save("a", "t").is_err());
        assert_eq!(vault.load("a").unwrap(), None);
    }

    /// The real kernel keyring, as CI has it: the test runs itself again inside a fresh session
    /// keyring (`keyctl session -`), where keyutils works without a desktop login.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_kernel_keyring_keeps_a_token_between_stores_until_it_is_deleted() {
        const INSIDE: &str = "INVIGIL_TEST_INSIDE_KEYCTL_SESSION";
        if std::env::var_os(INSIDE).is_none() {
            let Some(keyctl) = which("keyctl") else {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "keyctl (Debian package keyutils) is required in CI"
                );
                eprintln!(
                    "SKIPPED: keyctl not found (install keyutils) — kernel keyring not tested"
                );
                return;
            };
            let output = std::process::Command::new(keyctl)
                .args(["session", "-"])
                .arg(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "vault::tests::the_kernel_keyring_keeps_a_token_between_stores_until_it_is_deleted",
                    "--test-threads=1",
                ])
                .env(INSIDE, "1")
                .output()
                .expect("keyctl runs");
            assert!(
                output.status.success(),
                "the test inside the keyctl session failed:\n{}\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            return;
        }
        let account = format!("test-{}@http://127.0.0.1:1", uuid::Uuid::new_v4());
        let first = KeyringVault::with_store(linux_keyutils_keyring_store::Store::new().unwrap());
        assert_eq!(first.load(&account).unwrap(), None);
        first.save(&account, "token-1").unwrap();
        // A fresh store, as a restarted app would make, finds the token.
        let second = KeyringVault::with_store(linux_keyutils_keyring_store::Store::new().unwrap());
        assert_eq!(second.load(&account).unwrap().as_deref(), Some("token-1"));
        second.delete(&account).unwrap();
        assert_eq!(first.load(&account).unwrap(), None);
    }

    #[cfg(target_os = "linux")]
    fn which(program: &str) -> Option<std::path::PathBuf> {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(program))
                .find(|p| p.is_file())
        })
    }
}
