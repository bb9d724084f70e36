//! How a command ended, for `main` to turn into the process's exit code.

/// A command's end other than an error (an error exits 1 with its
/// message): done, or the exit code it chose after saying why itself.
pub enum Outcome {
    Done,
    Exit(i32),
}
