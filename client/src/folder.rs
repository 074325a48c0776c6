//! The data folder's own files, beside the outbox: the install id, the session note, the
//! evaluation cache, and a scan of the answers every user left on this computer.

use crate::error::{Error, Result};
use crate::outbox::{self, Record};
use crate::state::Held;
use invigil_protocol::User;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// `session.json`: who was signed in on which server (never the token).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SessionNote {
    pub(crate) server_url: String,
    pub(crate) user: User,
    pub(crate) session_id: String,
    pub(crate) ended: Option<String>,
}

pub(crate) fn install_id(data_dir: &Path) -> Result<String> {
    let path = data_dir.join("install-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_owned()),
        _ => {
            let id = uuid::Uuid::new_v4().to_string();
            write_durably(&path, id.as_bytes())?;
            Ok(id)
        }
    }
}

pub(crate) fn read_note(data_dir: &Path) -> Option<SessionNote> {
    let bytes = std::fs::read(data_dir.join("session.json")).ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(note) => Some(note),
        Err(e) => {
            tracing::warn!(error = %e, "session.json is damaged; starting signed out");
            None
        }
    }
}

pub(crate) fn write_note(data_dir: &Path, note: &SessionNote) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(note).expect("notes serialize");
    write_durably(&data_dir.join("session.json"), &bytes)
}

pub(crate) fn remove_note(data_dir: &Path) -> Result<()> {
    let path = data_dir.join("session.json");
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::storage("remove", &path)(e)),
    }
}

pub(crate) fn read_cache(dir: &Path) -> BTreeMap<String, Held> {
    let Ok(bytes) = std::fs::read(dir.join("evaluations.json")) else {
        return BTreeMap::new();
    };
    serde_json::from_slice::<Vec<Held>>(&bytes)
        .map(|list| {
            list.into_iter()
                .map(|h| (h.evaluation.id.clone(), h))
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn write_durably(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    {
        let mut file = std::fs::File::create(&tmp).map_err(Error::storage("write", &tmp))?;
        file.write_all(bytes)
            .map_err(Error::storage("write", &tmp))?;
        file.sync_all().map_err(Error::storage("sync", &tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(Error::storage("rename", path))?;
    if let Some(dir) = path.parent() {
        outbox::sync_dir(dir)?;
    }
    Ok(())
}

/// Every user folder in the data folder: its server, username and answer records.
pub(crate) fn left_on_disk(data_dir: &Path) -> Vec<(String, String, Vec<Record>)> {
    let mut found = Vec::new();
    let Ok(servers) = std::fs::read_dir(data_dir.join("servers")) else {
        return found;
    };
    for server in servers.flatten() {
        let Some(url) = server.file_name().to_str().and_then(outbox::decode_name) else {
            continue;
        };
        let Ok(users) = std::fs::read_dir(server.path()) else {
            continue;
        };
        for user in users.flatten() {
            let Some(username) = user.file_name().to_str().and_then(outbox::decode_name) else {
                continue;
            };
            let records = outbox::read_records(&user.path().join("answers"));
            found.push((url.clone(), username, records));
        }
    }
    found.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    found
}
