//! Grouping by key: the reduce side of a shuffle, and the map-side combiner.
//!
//! A `reduce` keeps one value per key and folds every new batch into it with one guest call (the
//! batch's values of a key and the key's running value form one group). A `group_reduce` must see
//! all values of a key at once, so it collects them and calls the guest at the end, batched.
//! Both hold their state in memory; spilling sorted runs to disk when over budget is the next step
//! (the bounded-memory target of the speed issue). Maps use foldhash: keys are short and hashed
//! once per record, where SipHash cost a tenth of a word count's time; its per-process seed keeps
//! crafted keys from degrading one task's map predictably.

use foldhash::{HashMap, HashMapExt};

use arrow_array::BinaryArray;
use weft_host::{Groups, Records, UdfKind};

use crate::{BATCH_BYTES, Pipeline, StepRef, TaskError};

/// Groups records by key and runs a wide step over them.
#[derive(Debug)]
pub struct Grouper {
    step: StepRef,
    state: State,
}

#[derive(Debug)]
enum State {
    /// Key → the running reduced value.
    Reduce(HashMap<Vec<u8>, Vec<u8>>),
    /// Key → every value seen, in arrival order; `order` keeps keys in first-seen order.
    GroupReduce {
        values: HashMap<Vec<u8>, Vec<Vec<u8>>>,
        order: Vec<Vec<u8>>,
    },
}

impl Grouper {
    /// A grouper for a `reduce` or `group_reduce` step.
    pub fn new(step: StepRef) -> Result<Grouper, TaskError> {
        let state = match step.kind {
            UdfKind::Reduce => State::Reduce(HashMap::new()),
            UdfKind::GroupReduce => State::GroupReduce {
                values: HashMap::new(),
                order: Vec::new(),
            },
            other => return Err(TaskError::NotWide(other)),
        };
        Ok(Grouper { step, state })
    }

    /// The wide step this grouper runs.
    pub fn step(&self) -> &StepRef {
        &self.step
    }

    /// Number of distinct keys held.
    pub fn keys(&self) -> usize {
        match &self.state {
            State::Reduce(m) => m.len(),
            State::GroupReduce { values, .. } => values.len(),
        }
    }

    /// Takes in a batch of records.
    pub fn absorb(&mut self, pipeline: &mut Pipeline, batch: &Records) -> Result<(), TaskError> {
        if batch.is_empty() {
            return Ok(());
        }
        match &mut self.state {
            State::Reduce(current) => {
                // One group per distinct key of the batch, in first-seen order, led by the key's
                // running value. Groups are laid out by a counting sort over the records' group
                // numbers: no allocation per key, one guest call per batch.
                let mut index: HashMap<&[u8], u32> =
                    HashMap::with_capacity(batch.len().min(1 << 16));
                let mut order: Vec<&[u8]> = Vec::new();
                let mut group_of: Vec<u32> = Vec::with_capacity(batch.len());
                for k in batch.keys().iter() {
                    let k = k.unwrap_or_default();
                    let next = order.len() as u32;
                    let g = *index.entry(k).or_insert_with(|| {
                        order.push(k);
                        next
                    });
                    group_of.push(g);
                }
                let running: Vec<Option<&[u8]>> = order
                    .iter()
                    .map(|k| current.get(*k).map(Vec::as_slice))
                    .collect();
                let mut offsets = vec![0u32; order.len() + 1];
                for (g, r) in running.iter().enumerate() {
                    offsets[g + 1] += u32::from(r.is_some());
                }
                for &g in &group_of {
                    offsets[g as usize + 1] += 1;
                }
                for g in 0..order.len() {
                    offsets[g + 1] += offsets[g];
                }
                let mut cursor = offsets[..order.len()].to_vec();
                let mut slots: Vec<&[u8]> = vec![&[]; offsets[order.len()] as usize];
                for (g, r) in running.iter().enumerate() {
                    if let Some(v) = r {
                        slots[cursor[g] as usize] = v;
                        cursor[g] += 1;
                    }
                }
                for (v, &g) in batch.values().iter().zip(&group_of) {
                    slots[cursor[g as usize] as usize] = v.unwrap_or_default();
                    cursor[g as usize] += 1;
                }
                let groups = Groups::new(
                    BinaryArray::from_iter_values(order.iter()),
                    offsets.into(),
                    BinaryArray::from_iter_values(slots.iter()),
                )
                .map_err(|e| self.step.failed(e))?;
                drop(running);
                let reduced = pipeline.reduce(&self.step, &groups)?;
                for (k, v) in order.into_iter().zip(reduced.iter()) {
                    let v = v.unwrap_or_default();
                    match current.get_mut(k) {
                        Some(slot) => {
                            slot.clear();
                            slot.extend_from_slice(v);
                        }
                        None => {
                            current.insert(k.to_vec(), v.to_vec());
                        }
                    }
                }
            }
            State::GroupReduce { values, order } => {
                for (k, v) in batch.iter() {
                    match values.get_mut(k) {
                        Some(list) => list.push(v.to_vec()),
                        None => {
                            order.push(k.to_vec());
                            values.insert(k.to_vec(), vec![v.to_vec()]);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Runs what is left and hands the resulting records to `emit`, in batches of about
    /// [`BATCH_BYTES`].
    pub fn finish(
        self,
        pipeline: &mut Pipeline,
        mut emit: impl FnMut(Records) -> Result<(), TaskError>,
    ) -> Result<(), TaskError> {
        match self.state {
            State::Reduce(current) => {
                let mut chunk: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
                let mut bytes = 0;
                for (k, v) in current {
                    bytes += k.len() + v.len();
                    chunk.push((k, v));
                    if bytes >= BATCH_BYTES {
                        emit(Records::from_pairs(chunk.drain(..)))?;
                        bytes = 0;
                    }
                }
                if !chunk.is_empty() {
                    emit(Records::from_pairs(chunk))?;
                }
            }
            State::GroupReduce { mut values, order } => {
                let mut keys: Vec<Vec<u8>> = Vec::new();
                let mut lists: Vec<Vec<Vec<u8>>> = Vec::new();
                let mut bytes = 0;
                for key in order {
                    let list = values.remove(&key).unwrap_or_default();
                    bytes += key.len() + list.iter().map(Vec::len).sum::<usize>();
                    keys.push(key);
                    lists.push(list);
                    if bytes >= BATCH_BYTES {
                        let groups = Groups::from_groups(keys.drain(..).zip(lists.drain(..)));
                        emit(pipeline.group_reduce(&self.step, &groups)?)?;
                        bytes = 0;
                    }
                }
                if !keys.is_empty() {
                    let groups = Groups::from_groups(keys.into_iter().zip(lists));
                    emit(pipeline.group_reduce(&self.step, &groups)?)?;
                }
            }
        }
        Ok(())
    }
}
