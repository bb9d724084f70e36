//! The commands' bodies, one file per group, and their arguments; `main`
//! parses, dispatches and exits.

pub mod args;
pub mod check;
pub mod daemon;
pub mod logging;
pub mod operator;
pub mod outcome;
pub mod render;
pub mod target;
pub mod tools;
