//! [`Alarm`]: one sleep the protocol task keeps across turns and points at a new instant only
//! when that instant changes.
//!
//! A fresh sleep per turn would register and remove a timer (and often wake the timer driver)
//! for every frame; an alarm re-arms only when its deadline moves.

use std::pin::Pin;

use tokio::time::{Instant, Sleep};

/// A reusable sleep with an optional deadline. Unarmed, it must not be awaited (`select!` arms
/// guard it with [`is_armed`](Self::is_armed)).
#[derive(Debug)]
pub(crate) struct Alarm {
    sleep: Pin<Box<Sleep>>,
    at: Option<Instant>,
}

impl Alarm {
    /// An unarmed alarm.
    pub(crate) fn new() -> Self {
        // The instant is never awaited before `set` arms it.
        Self {
            sleep: Box::pin(tokio::time::sleep_until(Instant::now())),
            at: None,
        }
    }

    /// Arms the alarm for `at`, or disarms it (`None`). Re-arms the sleep only if `at` differs
    /// from the instant it is armed for.
    pub(crate) fn set(&mut self, at: Option<std::time::Instant>) {
        let at = at.map(Instant::from_std);
        if at != self.at {
            if let Some(at) = at {
                self.sleep.as_mut().reset(at);
            }
            self.at = at;
        }
    }

    /// Whether the alarm waits for an instant.
    pub(crate) fn is_armed(&self) -> bool {
        self.at.is_some()
    }

    /// Resolves at the armed instant and disarms the alarm, so that an elapsed sleep is not
    /// awaited again until `set` arms it anew.
    ///
    /// # Cancel safety
    /// Cancel safe: cancelled, the alarm stays armed.
    pub(crate) async fn fired(&mut self) {
        self.sleep.as_mut().await;
        self.at = None;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn fires_once_at_its_instant_and_moves_only_when_set_elsewhere() {
        let start = Instant::now();
        let mut alarm = Alarm::new();
        assert!(!alarm.is_armed());
        alarm.set(Some((start + Duration::from_millis(10)).into_std()));
        // Setting the same instant again changes nothing; an earlier one moves it.
        alarm.set(Some((start + Duration::from_millis(10)).into_std()));
        alarm.set(Some((start + Duration::from_millis(5)).into_std()));
        alarm.fired().await;
        assert_eq!(Instant::now() - start, Duration::from_millis(5));
        assert!(!alarm.is_armed());

        alarm.set(Some((start + Duration::from_millis(20)).into_std()));
        alarm.set(None);
        assert!(!alarm.is_armed());
        let waited = tokio::time::timeout(Duration::from_millis(50), async {
            alarm.set(Some((start + Duration::from_millis(30)).into_std()));
            alarm.fired().await;
        })
        .await;
        assert!(waited.is_ok());
        assert_eq!(Instant::now() - start, Duration::from_millis(30));
    }
}
