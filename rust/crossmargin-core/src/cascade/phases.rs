//! Where a cascade's time goes, phase by phase: with `CROSSMARGIN_CASCADE_PHASES=1`,
//! [`super::run`] prints each phase's wall and CPU time to stderr when it ends (as polars'
//! `POLARS_VERBOSE` reports its plans). The CPU time is the whole process's, so a phase's
//! CPU over its wall says how many threads it kept busy. Off, timing a phase costs a branch.

use std::fmt::Write;
use std::time::Instant;

/// The steps of [`super::step::run_sharded`], plus what [`super::run`] does around them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The shard built from the book, the ledger's capacity and the opening totals.
    Setup,
    /// [`super::step::Shard::select`]: who needs action at the round's prices.
    Select,
    /// [`super::step::Driver::plan`]: priority order, the markets' fills.
    Plan,
    /// [`super::step::Shard::settle`]: the fills on the accounts.
    Settle,
    /// [`super::step::Driver::settled`]: the settlements merged, the round's deficits.
    Settled,
    /// [`super::step::Shard::counterparties`]: a deficit's ranked counterparties.
    Counterparties,
    /// [`super::step::Driver::plan_deleverage`]: who covers a deficit.
    PlanDeleverage,
    /// [`super::step::Shard::deleverage`]: the closes on the accounts.
    Deleverage,
    /// [`super::step::Driver::deleveraged`]: their events merged.
    Deleveraged,
    /// The closing totals and the driver's output.
    Finish,
}

impl Phase {
    pub const ALL: [Phase; 10] = [
        Phase::Setup,
        Phase::Select,
        Phase::Plan,
        Phase::Settle,
        Phase::Settled,
        Phase::Counterparties,
        Phase::PlanDeleverage,
        Phase::Deleverage,
        Phase::Deleveraged,
        Phase::Finish,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Phase::Setup => "setup",
            Phase::Select => "select",
            Phase::Plan => "plan",
            Phase::Settle => "settle",
            Phase::Settled => "settled",
            Phase::Counterparties => "counterparties",
            Phase::PlanDeleverage => "plan_deleverage",
            Phase::Deleverage => "deleverage",
            Phase::Deleveraged => "deleveraged",
            Phase::Finish => "finish",
        }
    }
}

/// Wall and CPU seconds and calls per [`Phase`]; records nothing when off.
#[derive(Debug, Clone, Default)]
pub struct PhaseClock {
    on: bool,
    wall: [f64; Phase::ALL.len()],
    cpu: [f64; Phase::ALL.len()],
    calls: [u32; Phase::ALL.len()],
}

impl PhaseClock {
    /// On when `CROSSMARGIN_CASCADE_PHASES` is `1`.
    pub fn from_env() -> PhaseClock {
        PhaseClock::new(std::env::var("CROSSMARGIN_CASCADE_PHASES").is_ok_and(|v| v == "1"))
    }

    pub fn new(on: bool) -> PhaseClock {
        PhaseClock { on, ..PhaseClock::default() }
    }

    /// Runs `f` as (part of) `phase`.
    pub fn time<T>(&mut self, phase: Phase, f: impl FnOnce() -> T) -> T {
        if !self.on {
            return f();
        }
        let (wall, cpu) = (Instant::now(), process_cpu_seconds());
        let out = f();
        let i = phase as usize;
        self.wall[i] += wall.elapsed().as_secs_f64();
        self.cpu[i] += process_cpu_seconds() - cpu;
        self.calls[i] += 1;
        out
    }

    /// (wall s, CPU s, calls) of `phase`.
    pub fn get(&self, phase: Phase) -> (f64, f64, u32) {
        let i = phase as usize;
        (self.wall[i], self.cpu[i], self.calls[i])
    }

    /// The table [`super::run`] prints: one line per phase, then the totals; `None` when off.
    pub fn report(&self) -> Option<String> {
        if !self.on {
            return None;
        }
        let mut s = String::from("crossmargin cascade phases: wall ms, cpu ms, calls\n");
        for p in Phase::ALL {
            let (wall, cpu, calls) = self.get(p);
            let _ = writeln!(s, "  {:<16}{:>10.1}{:>10.1}{:>8}", p.name(), wall * 1e3, cpu * 1e3, calls);
        }
        let (wall, cpu) = (self.wall.iter().sum::<f64>(), self.cpu.iter().sum::<f64>());
        let _ = write!(s, "  {:<16}{:>10.1}{:>10.1}", "total", wall * 1e3, cpu * 1e3);
        Some(s)
    }
}

/// CPU seconds used by every thread of the process so far.
fn process_cpu_seconds() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec for the call to write; the clock id is a constant
    // every supported platform defines.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_off_clock_records_nothing_and_reports_nothing() {
        let mut c = PhaseClock::new(false);
        assert_eq!(c.time(Phase::Select, || 7), 7);
        assert_eq!(c.get(Phase::Select), (0.0, 0.0, 0));
        assert!(c.report().is_none());
    }

    #[test]
    fn an_on_clock_counts_calls_and_time_per_phase() {
        let mut c = PhaseClock::new(true);
        let spin = || (0..200_000u64).fold(0u64, |x, i| x.wrapping_mul(31).wrapping_add(std::hint::black_box(i)));
        c.time(Phase::Select, spin);
        c.time(Phase::Select, spin);
        c.time(Phase::Settle, spin);
        let (wall, cpu, calls) = c.get(Phase::Select);
        assert_eq!(calls, 2);
        assert!(wall > 0.0 && cpu >= 0.0);
        assert_eq!(c.get(Phase::Settle).2, 1);
        assert_eq!(c.get(Phase::Plan), (0.0, 0.0, 0));
        let report = c.report().unwrap();
        assert_eq!(report.lines().count(), Phase::ALL.len() + 2);
        assert!(report.lines().any(|l| l.split_whitespace().next() == Some("select") && l.ends_with(" 2")));
    }
}
