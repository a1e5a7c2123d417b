//! The endpoint's counters. A module of its own so the SA state machines (which count) and the
//! endpoint (which owns and reports the counters) both depend on it and not on each other.

/// Counters of what the endpoint dropped or answered statelessly.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EndpointStats {
    pub received: u64,
    pub malformed: u64,
    pub unknown_spi: u64,
    /// Unprotected INVALID_SPI notifications we sent for ESP nobody here has an SA for.
    pub invalid_spi_sent: u64,
    /// Unprotected INVALID_SPI notifications received (hints that a peer lost its state).
    pub invalid_spi_hints: u64,
    pub cookies_sent: u64,
    pub half_open_dropped: u64,
    pub retransmits_answered: u64,
    /// Requests we sent (each exchange we started, IKE_SA_INIT included), not counting
    /// retransmissions.
    pub requests_sent: u64,
    /// Retransmissions of our requests: a rising count means a lossy path or a dying peer.
    pub retransmits_sent: u64,
    /// Peers that authenticated with INITIAL_CONTACT (they restarted, or claim to).
    pub initial_contacts: u64,
    /// Encrypted (SK/SKF) messages for a known IKE SA whose ICV did not verify: forged,
    /// corrupted, or sealed with other keys. Dropped without an answer and without touching
    /// the SA (RFC 7296 2.21: unauthenticated input must not change state).
    pub integrity_failed: u64,
    /// Messages for a known IKE SA with a Message ID that fits no exchange: requests that
    /// are neither the next one nor a retransmission of the last one answered, and responses
    /// to no request of ours in flight (RFC 7296 2.3). Dropped unanswered: INVALID_MESSAGE_ID
    /// is optional (3.10.1). Late duplicates of a response already taken count here too.
    pub wrong_message_id: u64,
    /// Requests with a major version above 2 answered with INVALID_MAJOR_VERSION (RFC 7296
    /// 2.5), at most once a second per address. They are counted as malformed too.
    pub invalid_major_version_sent: u64,
    /// IKE_SA_INIT requests answered with NO_PROPOSAL_CHOSEN: no connection for the sender's
    /// address, or none of its proposals acceptable. Counted even when the log line is not
    /// written (log lines of unauthenticated traffic are rate-limited).
    pub no_proposal_chosen: u64,
    /// EAP dialogues of remote-access clients that ended in EAP-Failure: wrong password,
    /// unknown user, a Nak, or an EAP message that does not parse (counted as malformed too).
    pub eap_failures: u64,
    /// EAP logins refused before any challenge: too many recent failures from the source
    /// address or for the user (`crate::authlimit`).
    pub auth_rate_limited: u64,
    /// Retransmissions of an IKE_AUTH request whose EAP message waits for the RADIUS server's
    /// answer: dropped (the answer, once there, goes out and is cached for the next one).
    pub eap_radius_retransmits: u64,
}
