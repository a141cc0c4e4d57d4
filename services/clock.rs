//! Time comes from here, so tests can set it (token expiry, reset-token expiry, returns).

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

/// The system clock, or a fixed one that tests move by hand. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    fixed: Option<Arc<Mutex<DateTime<Utc>>>>,
}

impl Clock {
    /// The real time.
    pub fn system() -> Clock {
        Clock { fixed: None }
    }

    /// A clock standing at `at` until advanced.
    pub fn fixed(at: DateTime<Utc>) -> Clock {
        Clock {
            fixed: Some(Arc::new(Mutex::new(at))),
        }
    }

    /// Now.
    pub fn now(&self) -> DateTime<Utc> {
        match &self.fixed {
            Some(at) => *at.lock().expect("clock poisoned"),
            None => Utc::now(),
        }
    }

    /// Moves a fixed clock forward; no effect on the system clock.
    pub fn advance(&self, by: chrono::Duration) {
        if let Some(at) = &self.fixed {
            let mut at = at.lock().expect("clock poisoned");
            *at += by;
        }
    }
}

/// A point in time as the wire's `google.protobuf.Timestamp`: the one conversion every
/// service uses.
pub fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        // Always below 2e9, so it fits.
        nanos: at.timestamp_subsec_nanos() as i32,
    }
}

/// A wire `google.protobuf.Timestamp` as a point in time; `None` when out of range.
pub fn from_timestamp(t: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0))
}
