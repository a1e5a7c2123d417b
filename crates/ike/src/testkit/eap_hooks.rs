//! Misbehaviour for the EAP client in tests (per thread, so each test sets its own): an MSK
//! that does not match the gateway's, or a Nak instead of an MSCHAPv2 Response. Compiled only
//! with the testkit (tests, fuzz), never in a release build.

use std::cell::Cell;

thread_local! {
    static CORRUPT_MSK: Cell<bool> = const { Cell::new(false) };
    static NAK_WITH: Cell<Option<u8>> = const { Cell::new(None) };
}

/// The EAP client keys its final AUTH with a wrong MSK (one bit flipped).
pub fn corrupt_msk(on: bool) {
    CORRUPT_MSK.with(|c| c.set(on));
}

/// The EAP client answers the MSCHAPv2 Challenge with a Nak asking for EAP type `t`.
pub fn nak_with(t: Option<u8>) {
    NAK_WITH.with(|c| c.set(t));
}

pub(crate) fn msk_corrupted() -> bool {
    CORRUPT_MSK.with(Cell::get)
}

pub(crate) fn nak() -> Option<u8> {
    NAK_WITH.with(Cell::get)
}
