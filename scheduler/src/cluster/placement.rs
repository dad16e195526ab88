//! Where a task runs: among the workers with a free slot, the one that suits it best.
//!
//! A map task may only run where its input is readable (the workers that answered `CheckPaths`).
//! Among the eligible, a reduce task prefers the worker holding most of its shuffle input's bytes
//! (a local read instead of a fetch), then any task prefers a worker that already holds its
//! modules compiled; ties go to the worker with most free slots (spreading load), then the lowest
//! id (so placement is deterministic).

use std::collections::HashSet;

use weft_task::{TaskInput, TaskSpec};

use super::worker::WorkerEntry;

/// How much `worker` suits `spec`: `None` when it cannot run it (it cannot read the input, when
/// `eligible` says who can); otherwise higher for the worker holding most of a shuffle read's bytes
/// and for one that has the task's modules compiled already.
pub fn score(
    worker: &WorkerEntry,
    spec: &TaskSpec,
    eligible: Option<&HashSet<String>>,
) -> Option<i64> {
    if let Some(eligible) = eligible
        && !eligible.contains(&worker.id)
    {
        return None;
    }
    let mut score = 0i64;
    if let TaskInput::Shuffle { blocks, .. } = &spec.input {
        let total: u64 = blocks.iter().map(|b| b.bytes).sum();
        let local: u64 = blocks
            .iter()
            .filter(|b| b.worker_id == worker.id)
            .map(|b| b.bytes)
            .sum();
        // Local bytes dominate: moving data costs more than compiling once.
        if let Some(share) = (local * 1000).checked_div(total) {
            score += i64::try_from(share).unwrap_or(0) * 10;
        }
    }
    if spec
        .all_steps()
        .iter()
        .all(|s| worker.has_compiled(&s.module))
    {
        score += 1000;
    }
    Some(score)
}

/// The worker with a free slot that `score` rates highest (`None` from `score`: not eligible), then
/// with most free slots, then with the lowest id.
pub fn choose<'a>(
    workers: impl IntoIterator<Item = &'a WorkerEntry>,
    score: impl Fn(&WorkerEntry) -> Option<i64>,
) -> Option<&'a WorkerEntry> {
    workers
        .into_iter()
        .filter(|w| w.free_slots() > 0)
        .filter_map(|w| score(w).map(|s| (s, w)))
        .max_by(|(a, wa), (b, wb)| {
            a.cmp(b)
                .then(wa.free_slots().cmp(&wb.free_slots()))
                .then(wb.id.cmp(&wa.id))
        })
        .map(|(_, w)| w)
}
