//! NOTIFICATION (RFC 4271 §4.5): error codes and subcodes of RFC 4271, RFC 4486 (Cease),
//! RFC 5492, RFC 6608, RFC 7313, RFC 8538, RFC 9234, RFC 9384, and the shutdown
//! communication of RFC 8203/RFC 9003.

use std::fmt;

/// Defines a subcode enum whose named variants are the IANA-assigned values, with one
/// catch-all so that every octet maps to exactly one variant (decode is canonical).
macro_rules! subcodes {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $value:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)*
            /// A value with no name here (unassigned or deprecated).
            Unassigned(u8),
        }

        impl From<u8> for $name {
            fn from(v: u8) -> Self {
                match v {
                    $($value => $name::$variant,)*
                    other => $name::Unassigned(other),
                }
            }
        }

        impl From<$name> for u8 {
            fn from(s: $name) -> u8 {
                match s {
                    $($name::$variant => $value,)*
                    $name::Unassigned(v) => v,
                }
            }
        }
    };
}

subcodes! {
    /// Message Header Error subcodes (code 1).
    HeaderError {
        /// Unspecific.
        Unspecific = 0,
        /// The marker is not all ones.
        ConnectionNotSynchronized = 1,
        /// The length field is out of range for the type (data: the length field).
        BadMessageLength = 2,
        /// The type is unknown (data: the type octet).
        BadMessageType = 3,
    }
}

subcodes! {
    /// OPEN Message Error subcodes (code 2).
    OpenError {
        /// Unspecific.
        Unspecific = 0,
        /// The version is not 4 (data: the highest version we support, two octets).
        UnsupportedVersionNumber = 1,
        /// The peer's AS is not the one configured.
        BadPeerAs = 2,
        /// The BGP identifier is not acceptable.
        BadBgpIdentifier = 3,
        /// An optional parameter type is not supported.
        UnsupportedOptionalParameter = 4,
        /// The hold time is 1 or 2 seconds.
        UnacceptableHoldTime = 6,
        /// A required capability is missing (RFC 5492).
        UnsupportedCapability = 7,
        /// The BGP roles do not match (RFC 9234).
        RoleMismatch = 11,
    }
}

subcodes! {
    /// UPDATE Message Error subcodes (code 3).
    UpdateError {
        /// Unspecific.
        Unspecific = 0,
        /// The attribute list or the lengths around it are inconsistent.
        MalformedAttributeList = 1,
        /// A well-known attribute is not recognized.
        UnrecognizedWellKnownAttribute = 2,
        /// A well-known mandatory attribute is missing.
        MissingWellKnownAttribute = 3,
        /// Attribute flags conflict with the type code.
        AttributeFlagsError = 4,
        /// An attribute's length is wrong.
        AttributeLengthError = 5,
        /// ORIGIN has an undefined value.
        InvalidOriginAttribute = 6,
        /// NEXT_HOP is not a valid host address.
        InvalidNextHopAttribute = 8,
        /// An optional attribute is malformed.
        OptionalAttributeError = 9,
        /// The NLRI field is malformed.
        InvalidNetworkField = 10,
        /// AS_PATH is malformed.
        MalformedAsPath = 11,
    }
}

subcodes! {
    /// Finite State Machine Error subcodes (code 5, RFC 6608).
    FsmError {
        /// Unspecified.
        Unspecified = 0,
        /// Unexpected message in OpenSent (data: the message type).
        UnexpectedInOpenSent = 1,
        /// Unexpected message in OpenConfirm (data: the message type).
        UnexpectedInOpenConfirm = 2,
        /// Unexpected message in Established (data: the message type).
        UnexpectedInEstablished = 3,
    }
}

subcodes! {
    /// Cease subcodes (code 6, RFC 4486, RFC 8538, RFC 9384).
    Cease {
        /// The prefix limit was reached (data: AFI, SAFI, limit).
        MaximumPrefixesReached = 1,
        /// Administrative shutdown (data: RFC 9003 shutdown communication).
        AdministrativeShutdown = 2,
        /// The peer was removed from the configuration.
        PeerDeconfigured = 3,
        /// Administrative reset (data: RFC 9003 shutdown communication).
        AdministrativeReset = 4,
        /// The connection was rejected.
        ConnectionRejected = 5,
        /// Another configuration change.
        OtherConfigurationChange = 6,
        /// Connection collision resolution.
        ConnectionCollisionResolution = 7,
        /// Out of resources.
        OutOfResources = 8,
        /// Hard reset: graceful restart must not be used (RFC 8538).
        HardReset = 9,
        /// BFD reported the path down (RFC 9384).
        BfdDown = 10,
    }
}

subcodes! {
    /// ROUTE-REFRESH Message Error subcodes (code 7, RFC 7313).
    RouteRefreshError {
        /// The ROUTE-REFRESH length is not 23 (data: the whole message).
        InvalidMessageLength = 1,
    }
}

/// An error code with its subcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 1: Message Header Error.
    MessageHeader(HeaderError),
    /// 2: OPEN Message Error.
    Open(OpenError),
    /// 3: UPDATE Message Error.
    Update(UpdateError),
    /// 4: Hold Timer Expired (subcode 0).
    HoldTimerExpired,
    /// 5: Finite State Machine Error.
    Fsm(FsmError),
    /// 6: Cease.
    Cease(Cease),
    /// 7: ROUTE-REFRESH Message Error.
    RouteRefresh(RouteRefreshError),
    /// A code (or a Hold Timer Expired subcode) with no name here.
    Unassigned {
        /// The error code.
        code: u8,
        /// The subcode.
        subcode: u8,
    },
}

impl ErrorCode {
    /// The code for the octets `code` and `subcode`; every pair maps to exactly one value.
    pub fn from_octets(code: u8, subcode: u8) -> Self {
        match code {
            1 => ErrorCode::MessageHeader(subcode.into()),
            2 => ErrorCode::Open(subcode.into()),
            3 => ErrorCode::Update(subcode.into()),
            4 if subcode == 0 => ErrorCode::HoldTimerExpired,
            5 => ErrorCode::Fsm(subcode.into()),
            6 => ErrorCode::Cease(subcode.into()),
            7 => ErrorCode::RouteRefresh(subcode.into()),
            _ => ErrorCode::Unassigned { code, subcode },
        }
    }

    /// The (code, subcode) octets.
    pub fn octets(self) -> (u8, u8) {
        match self {
            ErrorCode::MessageHeader(s) => (1, s.into()),
            ErrorCode::Open(s) => (2, s.into()),
            ErrorCode::Update(s) => (3, s.into()),
            ErrorCode::HoldTimerExpired => (4, 0),
            ErrorCode::Fsm(s) => (5, s.into()),
            ErrorCode::Cease(s) => (6, s.into()),
            ErrorCode::RouteRefresh(s) => (7, s.into()),
            ErrorCode::Unassigned { code, subcode } => (code, subcode),
        }
    }
}

/// A NOTIFICATION message: the error and its diagnostic data.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Notification {
    /// The error code and subcode.
    pub code: ErrorCode,
    /// Diagnostic data whose meaning depends on the code.
    pub data: Vec<u8>,
}

/// Longest shutdown communication (RFC 9003 §2: one length octet).
pub const MAX_SHUTDOWN_MESSAGE: usize = 255;

impl Notification {
    /// A NOTIFICATION with `code` and `data`.
    pub fn new(code: ErrorCode, data: Vec<u8>) -> Self {
        Notification { code, data }
    }

    /// A Cease with a shutdown communication (RFC 9003): `message` is cut to 255 octets at a
    /// character boundary. Meant for Administrative Shutdown and Administrative Reset.
    pub fn shutdown(cease: Cease, message: &str) -> Self {
        let mut end = message.len().min(MAX_SHUTDOWN_MESSAGE);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let mut data = Vec::with_capacity(end + 1);
        // `end` is at most 255 by construction.
        data.push(u8::try_from(end).unwrap_or(u8::MAX));
        data.extend_from_slice(&message.as_bytes()[..end]);
        Notification {
            code: ErrorCode::Cease(cease),
            data,
        }
    }

    /// The shutdown communication (RFC 9003 §2) of an Administrative Shutdown or Reset, when the
    /// data holds a well-formed one.
    pub fn shutdown_message(&self) -> Option<&str> {
        match self.code {
            ErrorCode::Cease(Cease::AdministrativeShutdown | Cease::AdministrativeReset) => {}
            _ => return None,
        }
        let (&len, rest) = self.data.split_first()?;
        let text = rest.get(..usize::from(len))?;
        std::str::from_utf8(text).ok()
    }
}

impl fmt::Display for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (code, subcode) = self.code.octets();
        write!(f, "NOTIFICATION {code}/{subcode} ({:?})", self.code)?;
        if let Some(msg) = self.shutdown_message() {
            write!(f, ": {msg:?}")?;
        }
        Ok(())
    }
}
