//! Tasks tied to their owner's lifetime.

/// Aborts a task when dropped unfinished: a stage's lag reporter ends with the stage's run, the
/// loader's INSERT with the loader.
pub struct AbortOnDrop<T = ()>(pub tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
