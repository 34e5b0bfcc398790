//! [`IdRuns`] and [`Digest`]: runs of consecutive payload ids, the bodies of anti-entropy's Want
//! and Digest.
//!
//! ```text
//! runs   := count:varint  count * (first:24B  len:varint)                (Want)
//! digest := uptime:varint  count:varint
//!           count * (first:24B  len:varint  age:varint  uncached:varint)
//! ```
//!
//! A digest's `age` is how many milliseconds ago its sender delivered the run's first payload:
//! a node that started later than that knows the run begins before its own time. `uncached` is
//! how many of the run's first ids its sender delivered but no longer caches: they exist, and
//! whoever lacks them learns that they may be lost. `uptime` is how
//! long ago the digest's sender started: its neighbours then offer it only runs that begin after
//! that, so that a run straddling its start does not hide the part it must fetch.
//!
//! A run names `len` ids: `first` and the `len - 1` that follow it (same origin and
//! incarnation, the next sequence numbers). An origin's payloads are numbered in order, so what a
//! node has delivered of one origin is usually one run however many payloads it holds.

use bytes::{BufMut, BytesMut};

use super::codec::{DecodeError, message_id};
use super::{MESSAGE_ID_LEN, MessageId, varint};

/// `first` and the `len - 1` payload ids that follow it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdRun {
    /// The run's first id.
    pub first: MessageId,
    /// How many ids the run names, at least 1.
    pub len: u64,
}

impl IdRun {
    /// The run's ids in order (none past the last sequence number).
    pub fn ids(&self) -> impl Iterator<Item = MessageId> + '_ {
        (0..self.len).map_while(|k| self.first.after(k))
    }
}

/// Runs of payload ids (see the module docs for the wire form).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdRuns {
    /// The runs, in the order they were written.
    pub runs: Vec<IdRun>,
}

impl IdRuns {
    /// Every id of every run.
    pub fn ids(&self) -> impl Iterator<Item = MessageId> + '_ {
        self.runs.iter().flat_map(IdRun::ids)
    }

    pub(super) fn encoded_len(&self) -> usize {
        let runs: usize = self
            .runs
            .iter()
            .map(|run| MESSAGE_ID_LEN + varint::len(run.len))
            .sum();
        varint::len(self.runs.len() as u64) + runs
    }

    pub(super) fn encode(&self, buf: &mut BytesMut) {
        varint::put(buf, self.runs.len() as u64);
        for run in &self.runs {
            buf.put_slice(&run.first.to_bytes());
            varint::put(buf, run.len);
        }
    }

    /// Reads at most `max_runs` runs, each of at least one id and none past the last sequence
    /// number. Allocates in proportion to the runs read, never to the ids they name.
    pub(super) fn decode(input: &mut &[u8], max_runs: usize) -> Result<Self, DecodeError> {
        let count = count(input, max_runs)?;
        let mut runs = Vec::with_capacity(count);
        for _ in 0..count {
            runs.push(run(input)?);
        }
        Ok(Self { runs })
    }
}

/// A run a digest offers, with how long ago its sender delivered the run's first payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Offer {
    /// The payloads the sender delivered.
    pub run: IdRun,
    /// Milliseconds since the sender delivered `run.first` (saturating).
    pub age_ms: u64,
    /// How many of the run's first ids the sender no longer caches (at most `run.len`; a
    /// larger number reads as all of them).
    pub uncached: u64,
}

impl Offer {
    /// The ids the sender can still supply: the run past its uncached start.
    pub fn cached_from(&self) -> u64 {
        self.run
            .first
            .seq()
            .saturating_add(self.uncached.min(self.run.len))
    }
}

/// What a node has delivered and can still supply, per origin (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Digest {
    /// Milliseconds since the sender started (saturating).
    pub uptime_ms: u64,
    /// One offer per origin, in the order they were written.
    pub offers: Vec<Offer>,
}

impl Digest {
    pub(super) fn encoded_len(&self) -> usize {
        let offers: usize = self
            .offers
            .iter()
            .map(|o| {
                MESSAGE_ID_LEN
                    + varint::len(o.run.len)
                    + varint::len(o.age_ms)
                    + varint::len(o.uncached)
            })
            .sum();
        varint::len(self.uptime_ms) + varint::len(self.offers.len() as u64) + offers
    }

    pub(super) fn encode(&self, buf: &mut BytesMut) {
        varint::put(buf, self.uptime_ms);
        varint::put(buf, self.offers.len() as u64);
        for offer in &self.offers {
            buf.put_slice(&offer.run.first.to_bytes());
            varint::put(buf, offer.run.len);
            varint::put(buf, offer.age_ms);
            varint::put(buf, offer.uncached);
        }
    }

    /// The sender's uptime, then as [`IdRuns::decode`] with each run followed by its age and
    /// its uncached count.
    pub(super) fn decode(input: &mut &[u8], max_runs: usize) -> Result<Self, DecodeError> {
        let uptime_ms = varint::get(input)?;
        let count = count(input, max_runs)?;
        let mut offers = Vec::with_capacity(count);
        for _ in 0..count {
            let run = run(input)?;
            let age_ms = varint::get(input)?;
            let uncached = varint::get(input)?;
            offers.push(Offer {
                run,
                age_ms,
                uncached,
            });
        }
        Ok(Self { uptime_ms, offers })
    }
}

/// A run count, within `max_runs` and within what the input can hold (each run takes at least
/// 25 bytes): a count the input cannot hold is truncated, and is refused before allocating.
fn count(input: &mut &[u8], max_runs: usize) -> Result<usize, DecodeError> {
    let count = varint::get(input)?;
    if count > max_runs as u64 {
        return Err(DecodeError::TooManyRuns {
            count,
            max: max_runs,
        });
    }
    if count > (input.len() / (MESSAGE_ID_LEN + 1)) as u64 {
        return Err(DecodeError::Truncated);
    }
    Ok(count as usize)
}

/// One run: at least one id, none past the last sequence number.
fn run(input: &mut &[u8]) -> Result<IdRun, DecodeError> {
    let first = message_id(input)?;
    let len = varint::get(input)?;
    if len == 0 {
        return Err(DecodeError::EmptyRun);
    }
    first.after(len - 1).ok_or(DecodeError::RunOverflow)?;
    Ok(IdRun { first, len })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_round_trip_and_name_their_ids() {
        let runs = IdRuns {
            runs: vec![
                IdRun {
                    first: MessageId::new(1, 2, 10),
                    len: 3,
                },
                IdRun {
                    first: MessageId::new(7, 8, 0),
                    len: 1,
                },
            ],
        };
        let mut buf = BytesMut::new();
        runs.encode(&mut buf);
        assert_eq!(buf.len(), runs.encoded_len());
        let mut input = &buf[..];
        assert_eq!(IdRuns::decode(&mut input, 2).unwrap(), runs);
        assert!(input.is_empty());
        let seqs: Vec<u64> = runs.ids().map(|id| id.seq()).collect();
        assert_eq!(seqs, [10, 11, 12, 0]);
        let mut input = &buf[..];
        assert_eq!(
            IdRuns::decode(&mut input, 1),
            Err(DecodeError::TooManyRuns { count: 2, max: 1 })
        );
    }

    #[test]
    fn digests_round_trip_with_their_ages() {
        let digest = Digest {
            uptime_ms: 3_600_000,
            offers: vec![Offer {
                run: IdRun {
                    first: MessageId::new(3, 4, 5),
                    len: 9,
                },
                age_ms: 70_000,
                uncached: 3,
            }],
        };
        let mut buf = BytesMut::new();
        digest.encode(&mut buf);
        assert_eq!(buf.len(), digest.encoded_len());
        assert_eq!(Digest::decode(&mut &buf[..], 1).unwrap(), digest);
    }

    #[test]
    fn empty_and_overflowing_runs_are_refused() {
        for (seq, len, error) in [
            (5, 0, DecodeError::EmptyRun),
            (u64::MAX, 2, DecodeError::RunOverflow),
        ] {
            let mut buf = BytesMut::new();
            varint::put(&mut buf, 1);
            buf.put_slice(&MessageId::new(1, 1, seq).to_bytes());
            varint::put(&mut buf, len);
            assert_eq!(IdRuns::decode(&mut &buf[..], 4), Err(error));
        }
    }
}
