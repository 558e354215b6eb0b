//! Where a connection stands with respect to an explicit transaction.

use std::sync::atomic::{AtomicU8, Ordering};

const IDLE: u8 = 0;
const OPEN: u8 = 1;
const FAILED: u8 = 2;

/// What `take` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TxStatus {
    /// No explicit transaction.
    Idle,
    /// Open, every operation in it succeeded.
    Open,
    /// Open, but an operation in it failed: it may only be rolled back.
    Failed,
}

/// Shared by both backends so "any error poisons the transaction" means the
/// same on Postgres (where a failed statement aborts it) and SQLite (where
/// it would not).
///
/// Atomic rather than `&mut`-tracked so every `Connection` method can take
/// `&self` and a request scope can share one connection by reference.
#[derive(Debug, Default)]
pub(crate) struct TxState(AtomicU8);

impl TxState {
    pub(crate) fn is_open(&self) -> bool {
        self.0.load(Ordering::Acquire) != IDLE
    }

    pub(crate) fn open(&self) {
        self.0.store(OPEN, Ordering::Release);
    }

    /// Marks an open transaction as failed; no effect outside one.
    pub(crate) fn poison(&self) {
        let _ = self
            .0
            .compare_exchange(OPEN, FAILED, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Ends the transaction (as far as the state goes), returning how it
    /// stood.
    pub(crate) fn take(&self) -> TxStatus {
        match self.0.swap(IDLE, Ordering::AcqRel) {
            OPEN => TxStatus::Open,
            FAILED => TxStatus::Failed,
            _ => TxStatus::Idle,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poison_only_affects_open_transactions() {
        let tx = TxState::default();
        tx.poison();
        assert!(!tx.is_open());
        assert_eq!(tx.take(), TxStatus::Idle);
        tx.open();
        assert!(tx.is_open());
        assert_eq!(tx.take(), TxStatus::Open);
        tx.open();
        tx.poison();
        assert!(tx.is_open());
        assert_eq!(tx.take(), TxStatus::Failed);
        assert!(!tx.is_open());
    }
}
