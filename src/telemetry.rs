//! The metric handles the runtime and the QUIC transport record into: the `metrics` crate's with
//! the `metrics` feature, and handles that record nothing without it. Each recorder is written
//! once against these names; docs/metrics.md lists what they publish.

#[cfg(feature = "metrics")]
pub(crate) use metrics::{Counter, Gauge, counter, gauge};

#[cfg(not(feature = "metrics"))]
pub(crate) use noop::{Counter, Gauge, counter, gauge};

#[cfg(not(feature = "metrics"))]
mod noop {
    /// Records nothing (no `metrics` feature).
    #[derive(Clone, Debug, Default)]
    pub(crate) struct Counter;

    impl Counter {
        pub(crate) fn increment(&self, _: u64) {}
        pub(crate) fn absolute(&self, _: u64) {}
    }

    /// Records nothing (no `metrics` feature).
    #[derive(Clone, Debug, Default)]
    pub(crate) struct Gauge;

    impl Gauge {
        pub(crate) fn set(&self, _: f64) {}
    }

    /// `metrics::counter!`'s form, making a [`Counter`] that records nothing.
    macro_rules! counter {
        ($name:expr $(, $key:literal => $value:expr)* $(,)?) => {{
            let _ = ($name, $($value,)*);
            $crate::telemetry::Counter
        }};
    }

    /// `metrics::gauge!`'s form, making a [`Gauge`] that records nothing.
    macro_rules! gauge {
        ($name:expr $(, $key:literal => $value:expr)* $(,)?) => {{
            let _ = ($name, $($value,)*);
            $crate::telemetry::Gauge
        }};
    }

    pub(crate) use {counter, gauge};
}
