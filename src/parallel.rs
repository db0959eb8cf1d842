//! Work over every certificate, spread over the CPUs: reading 100,000
//! lineages (`status`, the daemon's startup) is mostly system calls and path
//! lookups, which run in parallel as well as the parsing does. Used from
//! blocking contexts only; it does not know what the work is.

use std::num::NonZero;

/// Below this many items per thread, one thread does it all: starting
/// threads costs more than it saves.
const MIN_PER_THREAD: usize = 512;

/// `f` of each item, in order, computed by one scoped thread per CPU.
///
/// A panic in `f` is passed on to the caller.
pub fn map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, NonZero::get);
    let per_thread = items.len().div_ceil(threads).max(MIN_PER_THREAD);
    if items.len() <= per_thread {
        return items.iter().map(&f).collect();
    }
    let f = &f;
    std::thread::scope(|scope| {
        let parts: Vec<_> = items
            .chunks(per_thread)
            .map(|part| scope.spawn(move || part.iter().map(f).collect::<Vec<R>>()))
            .collect();
        parts
            .into_iter()
            .flat_map(|part| {
                part.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_order_of_many_items() {
        let items: Vec<u32> = (0..10_000).collect();
        let doubled = map(&items, |i| i * 2);
        assert_eq!(doubled, items.iter().map(|i| i * 2).collect::<Vec<_>>());
    }

    #[test]
    fn few_items_and_none() {
        assert_eq!(map(&[1, 2, 3], |i| i + 1), vec![2, 3, 4]);
        assert!(map(&[] as &[u8], |i| *i).is_empty());
    }
}
