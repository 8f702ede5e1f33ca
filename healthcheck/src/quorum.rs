//! Sans-IO quorum with hysteresis for one virtual server (KEEPALIVED.md §9
//! "Quorum and hysteresis"; `update_quorum_state` in keepalived's
//! `ipwrapper.c`).
//!
//! The input is the sum of the clamped effective weights of the *alive* real
//! servers; the caller recomputes it after every change and calls
//! [`Quorum::evaluate`].
//!
//! * The first evaluation sets the initial state: up iff the sum is at least
//!   `quorum + hysteresis` (and not 0, which always means no quorum).
//! * While up, quorum is lost when the sum is 0 or below
//!   `quorum - hysteresis`.
//! * While down, quorum is gained when the sum reaches `quorum + hysteresis`.

/// What an evaluation changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuorumTransition {
    /// The first evaluation: the initial state. keepalived activates the
    /// sorry server at start-up when this is down.
    Initial {
        /// Whether quorum is up.
        up: bool,
    },
    /// Quorum was down and is now up (sorry server out, alive real servers
    /// in, `quorum_up`).
    Gained,
    /// Quorum was up and is now down (alive real servers out, sorry server
    /// in, `quorum_down`).
    Lost,
}

/// A configuration warning from [`Quorum::validated`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuorumWarning {
    /// `quorum` exceeded the total configured weight and was lowered to it.
    QuorumLowered {
        /// The configured value.
        from: u64,
        /// The total configured weight.
        to: u64,
    },
    /// `hysteresis` was not below `quorum` and was set to `quorum - 1`.
    HysteresisLowered {
        /// The configured value.
        from: u64,
        /// The value used.
        to: u64,
    },
}

/// Quorum state of one virtual server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quorum {
    quorum: u64,
    hysteresis: u64,
    up: Option<bool>,
}

impl Quorum {
    /// A quorum with the values as given; no evaluation yet.
    pub fn new(quorum: u64, hysteresis: u64) -> Self {
        Quorum {
            quorum,
            hysteresis,
            up: None,
        }
    }

    /// keepalived's validation: `quorum` is lowered to `total_weight` (the
    /// sum of the configured real-server weights) if larger, then
    /// `hysteresis` is set to `quorum - 1` if it is not below `quorum`.
    ///
    /// ```
    /// use healthcheck::{Quorum, QuorumWarning};
    /// let (q, warnings) = Quorum::validated(10, 10, 6);
    /// assert_eq!((q.quorum(), q.hysteresis()), (6, 5));
    /// assert_eq!(warnings, vec![
    ///     QuorumWarning::QuorumLowered { from: 10, to: 6 },
    ///     QuorumWarning::HysteresisLowered { from: 10, to: 5 },
    /// ]);
    /// ```
    pub fn validated(
        quorum: u64,
        hysteresis: u64,
        total_weight: u64,
    ) -> (Self, Vec<QuorumWarning>) {
        let mut warnings = Vec::new();
        let mut q = quorum;
        if q > total_weight {
            warnings.push(QuorumWarning::QuorumLowered {
                from: q,
                to: total_weight,
            });
            q = total_weight;
        }
        let mut h = hysteresis;
        if h >= q && h > 0 {
            let to = q.saturating_sub(1);
            warnings.push(QuorumWarning::HysteresisLowered { from: h, to });
            h = to;
        }
        (Quorum::new(q, h), warnings)
    }

    /// The `quorum` in force.
    pub fn quorum(&self) -> u64 {
        self.quorum
    }

    /// The `hysteresis` in force.
    pub fn hysteresis(&self) -> u64 {
        self.hysteresis
    }

    /// Whether quorum is up; `None` before the first evaluation.
    pub fn is_up(&self) -> Option<bool> {
        self.up
    }

    /// Feeds the current sum of alive weights; returns what changed.
    pub fn evaluate(&mut self, alive_weight_sum: u64) -> Option<QuorumTransition> {
        let sum = alive_weight_sum;
        let high = self.quorum.saturating_add(self.hysteresis);
        match self.up {
            None => {
                let up = sum > 0 && sum >= high;
                self.up = Some(up);
                Some(QuorumTransition::Initial { up })
            }
            Some(true) => {
                // quorum - hysteresis may be "negative": then only 0 loses.
                let lost = sum == 0
                    || self
                        .quorum
                        .checked_sub(self.hysteresis)
                        .is_some_and(|low| sum < low);
                lost.then(|| {
                    self.up = Some(false);
                    QuorumTransition::Lost
                })
            }
            Some(false) => (sum > 0 && sum >= high).then(|| {
                self.up = Some(true);
                QuorumTransition::Gained
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_state_needs_quorum_plus_hysteresis() {
        let mut q = Quorum::new(5, 2);
        assert_eq!(q.is_up(), None);
        assert_eq!(q.evaluate(6), Some(QuorumTransition::Initial { up: false }));
        let mut q = Quorum::new(5, 2);
        assert_eq!(q.evaluate(7), Some(QuorumTransition::Initial { up: true }));
        assert_eq!(q.is_up(), Some(true));
        let mut q = Quorum::new(0, 0);
        assert_eq!(
            q.evaluate(0),
            Some(QuorumTransition::Initial { up: false }),
            "a zero sum never has quorum"
        );
    }

    #[test]
    fn hysteresis_band() {
        let mut q = Quorum::new(5, 2);
        assert_eq!(q.evaluate(10), Some(QuorumTransition::Initial { up: true }));
        // Up: lost only below quorum - hysteresis = 3.
        assert_eq!(q.evaluate(5), None);
        assert_eq!(q.evaluate(3), None);
        assert_eq!(q.evaluate(2), Some(QuorumTransition::Lost));
        assert_eq!(q.is_up(), Some(false));
        // Down: gained only at quorum + hysteresis = 7.
        assert_eq!(q.evaluate(2), None);
        assert_eq!(q.evaluate(5), None);
        assert_eq!(q.evaluate(6), None);
        assert_eq!(q.evaluate(7), Some(QuorumTransition::Gained));
        assert_eq!(q.evaluate(7), None);
        assert_eq!(q.evaluate(3), None);
    }

    #[test]
    fn no_hysteresis() {
        let mut q = Quorum::new(1, 0);
        assert_eq!(q.evaluate(1), Some(QuorumTransition::Initial { up: true }));
        assert_eq!(q.evaluate(0), Some(QuorumTransition::Lost));
        assert_eq!(q.evaluate(1), Some(QuorumTransition::Gained));
    }

    #[test]
    fn zero_sum_loses_even_below_a_negative_threshold() {
        // Unvalidated hysteresis > quorum: quorum - hysteresis is negative,
        // so only a zero sum loses quorum.
        let mut q = Quorum::new(2, 5);
        assert_eq!(q.evaluate(7), Some(QuorumTransition::Initial { up: true }));
        assert_eq!(q.evaluate(1), None);
        assert_eq!(q.evaluate(0), Some(QuorumTransition::Lost));
    }

    #[test]
    fn validation() {
        assert_eq!(Quorum::validated(3, 1, 10), (Quorum::new(3, 1), vec![]));
        let (q, w) = Quorum::validated(3, 3, 10);
        assert_eq!((q.quorum(), q.hysteresis()), (3, 2));
        assert_eq!(w, vec![QuorumWarning::HysteresisLowered { from: 3, to: 2 }]);
        let (q, w) = Quorum::validated(1, 0, 0);
        assert_eq!((q.quorum(), q.hysteresis()), (0, 0));
        assert_eq!(w, vec![QuorumWarning::QuorumLowered { from: 1, to: 0 }]);
    }
}
