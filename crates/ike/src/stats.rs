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
    /// The same failures by why.
    pub eap_failure_reasons: EapFailureCounts,
    /// EAP logins refused before any challenge: too many recent failures from the source
    /// address or for the user (`crate::authlimit`).
    pub auth_rate_limited: u64,
    /// Retransmissions of an IKE_AUTH request whose EAP message waits for the RADIUS server's
    /// answer: dropped (the answer, once there, goes out and is cached for the next one).
    pub eap_radius_retransmits: u64,
}

/// Why one remote-access EAP login failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EapFailure {
    /// EAP-MSCHAPv2: the NT-Response did not verify.
    WrongPassword,
    /// EAP-MSCHAPv2: no such user in the users file.
    UnknownUser,
    /// The client refused the method (Nak).
    RefusedMethod,
    /// EAP-TLS: the client's certificate chain was refused.
    Certificate,
    /// EAP-TLS: the certificate does not speak for the EAP identity, or that identity does not
    /// match the connection's `remote_id`.
    Identity,
    /// A message that does not parse (`malformed`: also counted as a malformed message), out of
    /// turn, too large, or a TLS handshake that failed otherwise.
    Protocol { malformed: bool },
    /// EAP via RADIUS: Access-Reject.
    Rejected,
    /// EAP via RADIUS: the server did not answer.
    Unreachable,
}

impl EapFailure {
    /// The metrics label.
    pub fn name(self) -> &'static str {
        match self {
            EapFailure::WrongPassword => "wrong_password",
            EapFailure::UnknownUser => "unknown_user",
            EapFailure::RefusedMethod => "refused_method",
            EapFailure::Certificate => "certificate",
            EapFailure::Identity => "identity",
            EapFailure::Protocol { .. } => "protocol",
            EapFailure::Rejected => "radius_reject",
            EapFailure::Unreachable => "radius_unreachable",
        }
    }
}

/// Failed EAP logins by [`EapFailure`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EapFailureCounts {
    pub wrong_password: u64,
    pub unknown_user: u64,
    pub refused_method: u64,
    pub certificate: u64,
    pub identity: u64,
    pub protocol: u64,
    pub radius_reject: u64,
    pub radius_unreachable: u64,
}

impl EapFailureCounts {
    pub fn add(&mut self, f: EapFailure) {
        let n = match f {
            EapFailure::WrongPassword => &mut self.wrong_password,
            EapFailure::UnknownUser => &mut self.unknown_user,
            EapFailure::RefusedMethod => &mut self.refused_method,
            EapFailure::Certificate => &mut self.certificate,
            EapFailure::Identity => &mut self.identity,
            EapFailure::Protocol { .. } => &mut self.protocol,
            EapFailure::Rejected => &mut self.radius_reject,
            EapFailure::Unreachable => &mut self.radius_unreachable,
        };
        *n += 1;
    }

    /// Every reason with its count (each always present, for stable metrics series).
    pub fn iter(&self) -> [(&'static str, u64); 8] {
        [
            ("wrong_password", self.wrong_password),
            ("unknown_user", self.unknown_user),
            ("refused_method", self.refused_method),
            ("certificate", self.certificate),
            ("identity", self.identity),
            ("protocol", self.protocol),
            ("radius_reject", self.radius_reject),
            ("radius_unreachable", self.radius_unreachable),
        ]
    }
}
