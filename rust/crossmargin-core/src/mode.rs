//! Margin modes. Every weight and rate comes as an (initial, maintenance) pair.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    Initial = 0,
    Maint = 1,
}

impl Mode {
    pub const BOTH: [Mode; 2] = [Mode::Initial, Mode::Maint];

    pub fn index(self) -> usize {
        self as usize
    }
}

/// A value per mode, indexed by [`Mode`].
pub type PerMode<T> = [T; 2];
