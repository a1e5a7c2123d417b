//! The IANA "Internet Key Exchange Version 2 (IKEv2) Parameters" registries this gateway
//! speaks, as enums: the one place these numbers are written down (ARCHITECTURE.md, principle 3).
//!
//! Every enum has an `Other` escape so a value we do not know survives parsing and re-encoding
//! unchanged, and so an unknown notify or transform can be reported by number. Build values with
//! `From<number>` (which never yields `Other` for a known number); equality and hashing go by
//! the number, so a hand-built `Other(24)` still equals `NotifyType::AuthenticationFailed`.

macro_rules! registry {
    (
        $(#[$meta:meta])*
        $name:ident: $repr:ty {
            $( $(#[$vmeta:meta])* $variant:ident = $num:literal => $text:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )*
            /// A value this registry table does not name (kept as is).
            Other($repr),
        }

        impl $name {
            /// Every named value, for tests and listings.
            pub const KNOWN: &'static [$name] = &[$($name::$variant),*];

            /// The number on the wire.
            pub const fn number(self) -> $repr {
                match self {
                    $( $name::$variant => $num, )*
                    $name::Other(n) => n,
                }
            }

            /// The IANA name (`"Other"` for unnamed values; print [`Self::number`] with it).
            pub const fn name(self) -> &'static str {
                match self.canonical() {
                    $( $name::$variant => $text, )*
                    $name::Other(_) => "Other",
                }
            }

            /// The named variant for a known number even if built as `Other(n)`.
            const fn canonical(self) -> $name {
                match self.number() {
                    $( $num => $name::$variant, )*
                    n => $name::Other(n),
                }
            }
        }

        impl From<$repr> for $name {
            fn from(n: $repr) -> $name {
                $name::Other(n).canonical()
            }
        }

        impl From<$name> for $repr {
            fn from(v: $name) -> $repr {
                v.number()
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &$name) -> bool {
                self.number() == other.number()
            }
        }

        impl Eq for $name {}

        impl std::hash::Hash for $name {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                self.number().hash(state)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                match self.canonical() {
                    $name::Other(n) => write!(f, "{}({})", stringify!($name), n),
                    known => f.write_str(known.name()),
                }
            }
        }
    };
}

registry! {
    /// IKEv2 Payload Types (RFC 7296 section 3.2, RFC 7383). 0 ("no next payload") is not a
    /// payload type; fields that may hold it are plain `u8`.
    PayloadType: u8 {
        Sa = 33 => "SA",
        Ke = 34 => "KE",
        IdI = 35 => "IDi",
        IdR = 36 => "IDr",
        Cert = 37 => "CERT",
        CertReq = 38 => "CERTREQ",
        Auth = 39 => "AUTH",
        Nonce = 40 => "Nonce",
        Notify = 41 => "N",
        Delete = 42 => "D",
        VendorId = 43 => "V",
        TsI = 44 => "TSi",
        TsR = 45 => "TSr",
        /// Encrypted and Authenticated (RFC 7296 section 3.14).
        Sk = 46 => "SK",
        Cp = 47 => "CP",
        Eap = 48 => "EAP",
        /// Encrypted and Authenticated Fragment (RFC 7383 section 2.5).
        Skf = 53 => "SKF",
    }
}

registry! {
    /// IKEv2 Exchange Types (RFC 7296 section 3.1).
    ExchangeType: u8 {
        IkeSaInit = 34 => "IKE_SA_INIT",
        IkeAuth = 35 => "IKE_AUTH",
        CreateChildSa = 36 => "CREATE_CHILD_SA",
        Informational = 37 => "INFORMATIONAL",
    }
}

registry! {
    /// IKEv2 Notify Message Types (RFC 7296 section 3.10.1 and later RFCs). Below 16384 are
    /// errors, from 16384 status types.
    NotifyType: u16 {
        UnsupportedCriticalPayload = 1 => "UNSUPPORTED_CRITICAL_PAYLOAD",
        InvalidIkeSpi = 4 => "INVALID_IKE_SPI",
        InvalidMajorVersion = 5 => "INVALID_MAJOR_VERSION",
        InvalidSyntax = 7 => "INVALID_SYNTAX",
        InvalidMessageId = 9 => "INVALID_MESSAGE_ID",
        InvalidSpi = 11 => "INVALID_SPI",
        NoProposalChosen = 14 => "NO_PROPOSAL_CHOSEN",
        InvalidKePayload = 17 => "INVALID_KE_PAYLOAD",
        AuthenticationFailed = 24 => "AUTHENTICATION_FAILED",
        SinglePairRequired = 34 => "SINGLE_PAIR_REQUIRED",
        NoAdditionalSas = 35 => "NO_ADDITIONAL_SAS",
        InternalAddressFailure = 36 => "INTERNAL_ADDRESS_FAILURE",
        FailedCpRequired = 37 => "FAILED_CP_REQUIRED",
        TsUnacceptable = 38 => "TS_UNACCEPTABLE",
        InvalidSelectors = 39 => "INVALID_SELECTORS",
        TemporaryFailure = 43 => "TEMPORARY_FAILURE",
        ChildSaNotFound = 44 => "CHILD_SA_NOT_FOUND",
        InitialContact = 16384 => "INITIAL_CONTACT",
        SetWindowSize = 16385 => "SET_WINDOW_SIZE",
        AdditionalTsPossible = 16386 => "ADDITIONAL_TS_POSSIBLE",
        IpcompSupported = 16387 => "IPCOMP_SUPPORTED",
        NatDetectionSourceIp = 16388 => "NAT_DETECTION_SOURCE_IP",
        NatDetectionDestinationIp = 16389 => "NAT_DETECTION_DESTINATION_IP",
        Cookie = 16390 => "COOKIE",
        UseTransportMode = 16391 => "USE_TRANSPORT_MODE",
        HttpCertLookupSupported = 16392 => "HTTP_CERT_LOOKUP_SUPPORTED",
        RekeySa = 16393 => "REKEY_SA",
        EspTfcPaddingNotSupported = 16394 => "ESP_TFC_PADDING_NOT_SUPPORTED",
        NonFirstFragmentsAlso = 16395 => "NON_FIRST_FRAGMENTS_ALSO",
        MobikeSupported = 16396 => "MOBIKE_SUPPORTED",
        RedirectSupported = 16406 => "REDIRECT_SUPPORTED",
        Ikev2FragmentationSupported = 16430 => "IKEV2_FRAGMENTATION_SUPPORTED",
        SignatureHashAlgorithms = 16431 => "SIGNATURE_HASH_ALGORITHMS",
    }
}

impl NotifyType {
    /// Error types (RFC 7296 section 3.10.1: 0..16383) make a response a failure; status
    /// types only inform.
    pub const fn is_error(self) -> bool {
        self.number() < 16384
    }
}

registry! {
    /// IKEv2 Identification Payload ID Types (RFC 7296 section 3.5).
    IdType: u8 {
        Ipv4Addr = 1 => "ID_IPV4_ADDR",
        Fqdn = 2 => "ID_FQDN",
        Rfc822Addr = 3 => "ID_RFC822_ADDR",
        Ipv6Addr = 5 => "ID_IPV6_ADDR",
        DerAsn1Dn = 9 => "ID_DER_ASN1_DN",
        DerAsn1Gn = 10 => "ID_DER_ASN1_GN",
        KeyId = 11 => "ID_KEY_ID",
    }
}

registry! {
    /// IKEv2 Authentication Methods (RFC 7296 section 3.8, RFC 4754, RFC 7619, RFC 7427).
    AuthMethod: u8 {
        RsaSig = 1 => "RSA Digital Signature",
        SharedKeyMic = 2 => "Shared Key Message Integrity Code",
        DssSig = 3 => "DSS Digital Signature",
        EcdsaSha256P256 = 9 => "ECDSA with SHA-256 on the P-256 curve",
        EcdsaSha384P384 = 10 => "ECDSA with SHA-384 on the P-384 curve",
        EcdsaSha512P521 = 11 => "ECDSA with SHA-512 on the P-521 curve",
        NullAuth = 13 => "NULL Authentication",
        DigitalSignature = 14 => "Digital Signature",
    }
}

registry! {
    /// IKEv2 Traffic Selector Types (RFC 7296 section 3.13.1).
    TsType: u8 {
        Ipv4AddrRange = 7 => "TS_IPV4_ADDR_RANGE",
        Ipv6AddrRange = 8 => "TS_IPV6_ADDR_RANGE",
    }
}

registry! {
    /// IKEv2 Security Protocol Identifiers (RFC 7296 section 3.3.1).
    ProtocolId: u8 {
        Ike = 1 => "IKE",
        Ah = 2 => "AH",
        Esp = 3 => "ESP",
    }
}

registry! {
    /// IKEv2 Transform Types (RFC 7296 section 3.3.2). The transform IDs within each type are
    /// the crypto module's business.
    TransformType: u8 {
        Encr = 1 => "ENCR",
        Prf = 2 => "PRF",
        Integ = 3 => "INTEG",
        Dh = 4 => "D-H",
        Esn = 5 => "ESN",
    }
}

/// Transform attribute type of the Key Length attribute (RFC 7296 section 3.3.5), always in
/// TV format.
pub const ATTR_KEY_LENGTH: u16 = 14;

/// The Attribute Format bit of a transform attribute type: set means TV (2-byte value inline),
/// clear means TLV.
pub const ATTR_FORMAT_TV: u16 = 0x8000;
