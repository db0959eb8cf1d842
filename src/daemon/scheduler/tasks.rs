//! Tasks about one certificate each, joined with the certificate's name even
//! when they panicked: a renewal, poll or check that died must still end, or
//! its certificate would count as busy until the daemon restarts.

use std::collections::HashMap;

use tokio::task::{Id, JoinError, JoinSet};

pub(super) struct Tasks<T> {
    set: JoinSet<T>,
    names: HashMap<Id, String>,
}

impl<T: Send + 'static> Tasks<T> {
    pub(super) fn new() -> Self {
        Self {
            set: JoinSet::new(),
            names: HashMap::new(),
        }
    }

    pub(super) fn spawn(&mut self, name: &str, task: impl Future<Output = T> + Send + 'static) {
        let handle = self.set.spawn(task);
        self.names.insert(handle.id(), name.to_owned());
    }

    /// The next task to end and the name it was spawned for; `None` when none is
    /// left. Cancel safe, like [`JoinSet::join_next`].
    pub(super) async fn join_next(&mut self) -> Option<(String, Result<T, JoinError>)> {
        let done = self.set.join_next_with_id().await?;
        let id = match &done {
            Ok((id, _)) => *id,
            Err(e) => e.id(),
        };
        let name = self.names.remove(&id).unwrap_or_default();
        Some((name, done.map(|(_, output)| output)))
    }

    pub(super) fn len(&self) -> usize {
        self.set.len()
    }

    pub(super) fn abort_all(&mut self) {
        self.set.abort_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicked_task_is_joined_with_its_name() {
        let mut tasks = Tasks::new();
        tasks.spawn("a", async { 1 });
        tasks.spawn("b", async { panic!("bug") });
        let mut ended = Vec::new();
        while let Some((name, result)) = tasks.join_next().await {
            ended.push((name, result.map_err(|e| e.is_panic())));
        }
        ended.sort();
        assert_eq!(
            ended,
            vec![("a".to_owned(), Ok(1)), ("b".to_owned(), Err(true))]
        );
        assert_eq!(tasks.len(), 0);
    }
}
