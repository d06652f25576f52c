//! The checkpoint of a broker watch: which source it belongs to, the
//! broker's state, and the batch in flight (named before it is handed on).
//!
//! On disk (unchanged since brokers came to etl-watch, so an upgrade goes
//! on from the checkpoint it finds):
//! `{"version":1,"broker":IDENTITY,"state":STATE,"pending":null}`, or with
//! `"pending":{"batch":ID,"positions":POSITIONS}`. STATE and POSITIONS are
//! each broker's own, typed (`AtRest`): the positions are the batch's end
//! line's.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::contract::{AtRest, Previous};

/// The checkpoint of a broker watch: which source it belongs to, the
/// broker's state, and the batch in flight (its id and positions).
pub(super) struct BrokerCheckpoint<S, B> {
    pub(super) identity: String,
    pub(super) state: S,
    pub(super) pending: Option<(String, B)>,
}

/// The checkpoint's JSON; `None` when there is no file.
fn read(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read checkpoint {}", path.display())),
    }
}

/// A broker state: none yet (null, or no field) is the default.
fn state_of<S: AtRest + Default>(doc: &Value) -> Result<S, String> {
    match doc.get("state") {
        None | Some(Value::Null) => Ok(S::default()),
        Some(state) => S::from_json(state),
    }
}

impl<S: AtRest + Default, B: AtRest> BrokerCheckpoint<S, B> {
    /// The checkpoint's source and state, read before the broker is
    /// opened; `None` when there is none (or it is not a broker's, which
    /// `load` reports).
    pub(super) fn peek(path: &Path) -> Result<Option<Previous<S>>> {
        let Some(text) = read(path)? else {
            return Ok(None);
        };
        let Ok(doc) = serde_json::from_str::<Value>(&text) else {
            return Ok(None);
        };
        Ok(doc
            .get("broker")
            .and_then(Value::as_str)
            .map(|identity| Previous {
                identity: identity.to_string(),
                state: state_of(&doc).ok(),
            }))
    }

    /// The checkpoint of the source `identity`; `None` when there is none.
    pub(super) fn load(path: &Path, identity: &str) -> Result<Option<Self>> {
        let Some(text) = read(path)? else {
            return Ok(None);
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
        let state = state_of(&doc)
            .map_err(|e| anyhow::anyhow!("checkpoint {}: its state: {e}", path.display()))?;
        let pending = match doc
            .get("pending")
            .and_then(|p| Some((p.get("batch")?.as_str()?.to_string(), p.get("positions")?)))
        {
            None => None,
            Some((batch, positions)) => Some((
                batch,
                B::from_json(positions).map_err(|e| {
                    anyhow::anyhow!(
                        "checkpoint {}: the batch in flight's positions: {e}",
                        path.display()
                    )
                })?,
            )),
        };
        Ok(Some(BrokerCheckpoint {
            identity: identity.into(),
            state,
            pending,
        }))
    }
}

impl<S: AtRest, B: AtRest> BrokerCheckpoint<S, B> {
    pub(super) fn save(&self, path: &Path) -> Result<()> {
        let pending = self
            .pending
            .as_ref()
            .map(|(batch, positions)| json!({"batch": batch, "positions": positions.to_json()}));
        let doc = json!({
            "version": 1,
            "broker": self.identity,
            "state": self.state.to_json(),
            "pending": pending,
        });
        let text = serde_json::to_string_pretty(&doc)?;
        crate::state::write_atomically(path, text.as_bytes())
    }
}
