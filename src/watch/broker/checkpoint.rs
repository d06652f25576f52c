//! The checkpoint of a broker watch: which source it belongs to, the
//! broker's state, and the batch in flight (named before it is handed on).

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::contract::Previous;

/// The checkpoint of a broker watch: which source it belongs to, the
/// broker's state, and the batch in flight.
pub(super) struct BrokerCheckpoint {
    pub(super) identity: String,
    pub(super) state: Value,
    pub(super) pending: Option<(String, Value)>,
}

impl BrokerCheckpoint {
    /// The checkpoint's source and state, read before the broker is
    /// opened; `None` when there is none (or it is not a broker's, which
    /// `load` reports).
    pub(super) fn peek(path: &Path) -> Result<Option<Previous>> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot read checkpoint {}", path.display()));
            }
        };
        let Ok(doc) = serde_json::from_str::<Value>(&text) else {
            return Ok(None);
        };
        Ok(doc
            .get("broker")
            .and_then(Value::as_str)
            .map(|identity| Previous {
                identity: identity.to_string(),
                state: doc.get("state").cloned().unwrap_or(Value::Null),
            }))
    }

    pub(super) fn load(path: &Path, identity: &str) -> Result<Option<BrokerCheckpoint>> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot read checkpoint {}", path.display()));
            }
        };
        let doc: Value = serde_json::from_str(&text)
            .with_context(|| format!("checkpoint {} is not valid JSON", path.display()))?;
        let Some(found) = doc.get("broker").and_then(Value::as_str) else {
            bail!(
                "checkpoint {} is not a broker checkpoint (it belongs to a file watch); \
                 give each watch its own checkpoint",
                path.display()
            );
        };
        if found != identity {
            bail!(
                "checkpoint {} belongs to another source ({found}, not {identity}); \
                 give each watch its own checkpoint",
                path.display()
            );
        }
        let pending = doc.get("pending").and_then(|p| {
            Some((
                p.get("batch")?.as_str()?.to_string(),
                p.get("positions")?.clone(),
            ))
        });
        Ok(Some(BrokerCheckpoint {
            identity: identity.into(),
            state: doc.get("state").cloned().unwrap_or(Value::Null),
            pending,
        }))
    }

    pub(super) fn save(&self, path: &Path) -> Result<()> {
        let pending = self
            .pending
            .as_ref()
            .map(|(batch, positions)| json!({"batch": batch, "positions": positions}));
        let doc = json!({
            "version": 1,
            "broker": self.identity,
            "state": self.state,
            "pending": pending,
        });
        let text = serde_json::to_string_pretty(&doc)?;
        crate::state::write_atomically(path, text.as_bytes())
    }
}
