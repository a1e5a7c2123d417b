//! What `ironsecctl rekey` answers: which SAs a rekey was started for and which tunnels were
//! skipped (and why), as serde types, so `--json` gives a script the same facts the text
//! shows. The rekeys themselves run in the engine exactly as a lifetime's do (make before
//! break); the new SPIs show in `status` once they complete.

use serde::{Deserialize, Serialize};

/// Which SA of each tunnel is rekeyed.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RekeyKind {
    /// The CHILD_SAs the tunnel sends with.
    Child,
    /// The tunnel's IKE SA (its CHILD_SAs move to the new one).
    Ike,
}

/// A rekey started on one SA.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct RekeyTarget {
    pub local: String,
    pub remote: String,
    /// The IKE SA's SPIs (initiator's, responder's) before the rekey.
    pub ike_spi_i: String,
    pub ike_spi_r: String,
    /// The CHILD_SA being replaced (its inbound SPI); absent for an IKE rekey.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child_spi_in: Option<String>,
}

/// A tunnel of the connection that was not rekeyed.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct RekeySkipped {
    pub local: String,
    pub remote: String,
    pub reason: String,
}

/// The answer to a `rekey` that started at least one rekey.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct RekeyStarted {
    pub connection: String,
    pub kind: RekeyKind,
    pub started: Vec<RekeyTarget>,
    #[serde(default)]
    pub skipped: Vec<RekeySkipped>,
}

impl std::fmt::Display for RekeyStarted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.started.len();
        let what = match self.kind {
            RekeyKind::Child => "CHILD_SA",
            RekeyKind::Ike => "IKE SA",
        };
        write!(
            f,
            "connection '{}': rekeying {n} {what}{}",
            self.connection,
            if n == 1 { "" } else { "s" }
        )?;
        for t in &self.started {
            write!(
                f,
                "\n  {} -> {}: IKE SA {}_i {}_r",
                t.local, t.remote, t.ike_spi_i, t.ike_spi_r
            )?;
            if let Some(c) = &t.child_spi_in {
                write!(f, ", CHILD_SA {c}_i")?;
            }
        }
        for s in &self.skipped {
            write!(f, "\n  {} -> {}: skipped, {}", s.local, s.remote, s.reason)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_names_what_was_started_and_skipped() {
        let r = RekeyStarted {
            connection: "site-b".into(),
            kind: RekeyKind::Child,
            started: vec![RekeyTarget {
                local: "192.0.2.1".into(),
                remote: "192.0.2.2".into(),
                ike_spi_i: "0x0000000000000001".into(),
                ike_spi_r: "0x0000000000000002".into(),
                child_spi_in: Some("0xc1000001".into()),
            }],
            skipped: vec![RekeySkipped {
                local: "192.0.2.1".into(),
                remote: "192.0.2.3".into(),
                reason: "no IKE SA (down)".into(),
            }],
        };
        assert_eq!(
            r.to_string(),
            "connection 'site-b': rekeying 1 CHILD_SA\n  \
             192.0.2.1 -> 192.0.2.2: IKE SA 0x0000000000000001_i 0x0000000000000002_r, CHILD_SA 0xc1000001_i\n  \
             192.0.2.1 -> 192.0.2.3: skipped, no IKE SA (down)"
        );
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["kind"], "child");
        assert_eq!(j["started"][0]["child_spi_in"], "0xc1000001");
        assert_eq!(serde_json::from_value::<RekeyStarted>(j).unwrap(), r);
    }
}
