//! [`QuicConfig`]: timeouts, limits and presets of the QUIC transport.

use std::sync::Arc;
use std::time::Duration;

use crate::ConfigError;

/// Largest frame any [`QuicConfig`] may accept: the codec's own payload limit plus room for the
/// envelope.
pub const MAX_FRAME_SIZE_LIMIT: usize = crate::MAX_MESSAGE_SIZE_LIMIT + 64 * 1024;

/// How the QUIC transport keeps its connections and what it accepts from them.
///
/// The presets follow [`PlumtreeConfig`](crate::PlumtreeConfig)'s: [`lan`](Self::lan) detects a
/// dead connection in seconds, [`wan`](Self::wan) tolerates long round trips and lossy paths.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use memberlist_plumtree::QuicConfig;
///
/// let config = QuicConfig::wan()
///     .with_max_frame_size(256 * 1024)
///     .with_idle_timeout(Duration::from_secs(60));
/// config.validate()?;
/// # Ok::<(), memberlist_plumtree::ConfigError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct QuicConfig {
    /// A connection that hears nothing for this long is closed. Default 10 s.
    pub idle_timeout: Duration,
    /// How often an otherwise idle connection sends a keep-alive, so that it outlives
    /// `idle_timeout` and NAT bindings. Must be below `idle_timeout`. Default 3 s.
    pub keep_alive: Duration,
    /// Longest wait for a handshake, either way. Default 3 s.
    pub connect_timeout: Duration,
    /// After a failed dial, the first wait before the next; each further failure doubles it up to
    /// [`reconnect_max`](Self::reconnect_max). Frames for the peer fail at once meanwhile (the
    /// protocol repairs them). Default 100 ms.
    pub reconnect_min: Duration,
    /// Longest wait between dials to an unreachable peer. Default 5 s.
    pub reconnect_max: Duration,
    /// Largest frame accepted from a peer, in bytes. A larger declared length closes the
    /// connection before any of the frame is read. Must hold the largest Gossip
    /// (`max_message_size` plus under 1 KiB of envelope). Default 1 MiB.
    pub max_frame_size: usize,
    /// Bytes a peer may send on one stream ahead of our reading it (QUIC flow control). Larger
    /// windows carry more on long round trips; memory per connection grows with it. Default
    /// 1 MiB.
    pub stream_window: u32,
}

impl Default for QuicConfig {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(10),
            keep_alive: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(3),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
            max_frame_size: 1024 * 1024,
            stream_window: 1024 * 1024,
        }
    }
}

setters! { QuicConfig;
    /// Sets [`idle_timeout`](Self::idle_timeout).
    with_idle_timeout: idle_timeout: Duration;
    /// Sets [`keep_alive`](Self::keep_alive).
    with_keep_alive: keep_alive: Duration;
    /// Sets [`connect_timeout`](Self::connect_timeout).
    with_connect_timeout: connect_timeout: Duration;
    /// Sets [`reconnect_min`](Self::reconnect_min).
    with_reconnect_min: reconnect_min: Duration;
    /// Sets [`reconnect_max`](Self::reconnect_max).
    with_reconnect_max: reconnect_max: Duration;
    /// Sets [`max_frame_size`](Self::max_frame_size).
    with_max_frame_size: max_frame_size: usize;
    /// Sets [`stream_window`](Self::stream_window).
    with_stream_window: stream_window: u32;
}

impl QuicConfig {
    /// A LAN: round trips under a few milliseconds. Dead connections are noticed in 5 s.
    pub fn lan() -> Self {
        Self {
            idle_timeout: Duration::from_secs(5),
            keep_alive: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(2),
            ..Self::default()
        }
    }

    /// A WAN: round trips of 50-300 ms and some loss. Larger windows keep a long pipe full;
    /// longer timeouts ride out short outages.
    pub fn wan() -> Self {
        Self {
            idle_timeout: Duration::from_secs(30),
            keep_alive: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            reconnect_max: Duration::from_secs(30),
            stream_window: 8 * 1024 * 1024,
            ..Self::default()
        }
    }

    /// Checks that the fields make sense together.
    ///
    /// # Errors
    /// The first [`ConfigError`] found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        ConfigError::first_zero(
            &[("max_frame_size", self.max_frame_size)],
            &[
                ("idle_timeout", self.idle_timeout),
                ("keep_alive", self.keep_alive),
                ("connect_timeout", self.connect_timeout),
                ("reconnect_min", self.reconnect_min),
            ],
        )?;
        if self.stream_window == 0 {
            return Err(ConfigError::Zero("stream_window"));
        }
        if self.max_frame_size > MAX_FRAME_SIZE_LIMIT {
            return Err(ConfigError::TooLarge {
                field: "max_frame_size",
                max: MAX_FRAME_SIZE_LIMIT,
            });
        }
        if self.keep_alive >= self.idle_timeout {
            return Err(ConfigError::Inconsistent(
                "keep_alive must be shorter than idle_timeout",
            ));
        }
        if self.reconnect_max < self.reconnect_min {
            return Err(ConfigError::Inconsistent(
                "reconnect_max must be at least reconnect_min",
            ));
        }
        // quinn's idle timeout is a varint of milliseconds.
        if quinn::IdleTimeout::try_from(self.idle_timeout).is_err() {
            return Err(ConfigError::TooLarge {
                field: "idle_timeout",
                max: u32::MAX as usize,
            });
        }
        Ok(())
    }

    /// quinn's transport parameters for these settings.
    pub(crate) fn transport_config(&self) -> Arc<quinn::TransportConfig> {
        let mut config = quinn::TransportConfig::default();
        config
            .max_idle_timeout(quinn::IdleTimeout::try_from(self.idle_timeout).ok())
            .keep_alive_interval(Some(self.keep_alive))
            .stream_receive_window(self.stream_window.into())
            // Two streams per direction are all we open (control and payload); a few more
            // leave room for a reconnecting peer's new streams before the old ones are closed.
            .max_concurrent_uni_streams(8u32.into())
            .max_concurrent_bidi_streams(0u32.into())
            .receive_window(
                (u64::from(self.stream_window) * 2)
                    .try_into()
                    .unwrap_or(quinn::VarInt::MAX),
            )
            .send_window(u64::from(self.stream_window) * 2);
        Arc::new(config)
    }

    /// The next wait after `failures` failed dials in a row (at least 1).
    pub(crate) fn backoff(&self, failures: u32) -> Duration {
        let factor = 1u32 << failures.saturating_sub(1).min(16);
        self.reconnect_min
            .saturating_mul(factor)
            .min(self.reconnect_max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_validate() {
        for config in [QuicConfig::default(), QuicConfig::lan(), QuicConfig::wan()] {
            config.validate().unwrap();
        }
    }

    #[test]
    fn bad_configs_are_errors() {
        let keep = QuicConfig::default().with_keep_alive(Duration::from_secs(60));
        assert!(matches!(keep.validate(), Err(ConfigError::Inconsistent(_))));
        let zero = QuicConfig::default().with_max_frame_size(0);
        assert_eq!(zero.validate(), Err(ConfigError::Zero("max_frame_size")));
        let huge = QuicConfig::default().with_max_frame_size(MAX_FRAME_SIZE_LIMIT + 1);
        assert!(matches!(huge.validate(), Err(ConfigError::TooLarge { .. })));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let config = QuicConfig::default();
        assert_eq!(config.backoff(1), Duration::from_millis(100));
        assert_eq!(config.backoff(2), Duration::from_millis(200));
        assert_eq!(config.backoff(4), Duration::from_millis(800));
        assert_eq!(config.backoff(40), Duration::from_secs(5));
    }
}
