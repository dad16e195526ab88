//! The live guests of a task, and the fused narrow steps (`map`, `filter`, `flat_map`) applied to
//! each batch in one pass.
//!
//! A map task whose output is combined for a `reduce` with a combiner in its guest
//! ([`Pipeline::run_into_combiner`]) hands the last narrow step's output to the combiner inside
//! the guest when both are in the same module: the records never cross into the host.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use arrow_array::{Array, BinaryArray};
use weft_host::{Folded, Groups, GuestInstance, GuestModule, Records, SandboxLimits, UdfKind};
use weft_task::StepRef;

use crate::TaskError;

/// The instances a task needs, one per distinct module however many steps use it.
#[derive(Debug)]
pub struct Pipeline {
    instances: HashMap<String, GuestInstance>,
}

impl Pipeline {
    /// Instantiates every module `steps` use. `modules` maps module ids to compiled modules.
    pub fn new(
        modules: &HashMap<String, GuestModule>,
        steps: &[&StepRef],
        limits: &SandboxLimits,
    ) -> Result<Pipeline, TaskError> {
        let mut instances = HashMap::new();
        for step in steps {
            if instances.contains_key(&step.module) {
                continue;
            }
            let module = modules
                .get(&step.module)
                .ok_or_else(|| TaskError::MissingModule(step.module.clone()))?;
            let instance = module
                .instantiate(limits)
                .map_err(|source| TaskError::Instantiate {
                    module: step.module.clone(),
                    source: Box::new(source),
                })?;
            instances.insert(step.module.clone(), instance);
        }
        Ok(Pipeline { instances })
    }

    /// Lets `flag` stop every instance of the pipeline, even in the middle of a guest call.
    pub fn set_interrupt(&mut self, flag: &Arc<AtomicBool>) {
        for instance in self.instances.values_mut() {
            instance.set_interrupt(flag.clone());
        }
    }

    /// Stops every instance's calls once `deadline` has passed ([`Limit::TaskTime`](weft_task::Limit)).
    pub fn set_task_deadline(&mut self, deadline: std::time::Instant, limit: std::time::Duration) {
        for instance in self.instances.values_mut() {
            instance.set_task_deadline(deadline, limit);
        }
    }

    /// The largest linear memories the task's guests grew to, added up.
    pub fn peak_memory_bytes(&self) -> u64 {
        self.instances.values().map(|g| g.peak_memory_bytes()).sum()
    }

    /// Whether any guest wrote more to stdout or stderr than was kept.
    pub fn output_truncated(&self) -> bool {
        self.instances.values().any(|g| g.output_truncated())
    }

    fn guest(&mut self, step: &StepRef) -> Result<&mut GuestInstance, TaskError> {
        self.instances
            .get_mut(&step.module)
            .ok_or_else(|| TaskError::MissingModule(step.module.clone()))
    }

    /// Runs narrow steps over one batch, in order, each over the previous one's output.
    pub fn run(&mut self, steps: &[StepRef], mut batch: Records) -> Result<Records, TaskError> {
        for step in steps {
            if batch.is_empty() {
                break;
            }
            let guest = self.guest(step)?;
            batch = match step.kind {
                UdfKind::Map => guest.map(&step.function, &batch),
                UdfKind::FlatMap => guest.flat_map(&step.function, &batch),
                UdfKind::Filter => guest
                    .filter(&step.function, &batch)
                    .map(|keep| apply_mask(batch, &keep)),
                UdfKind::Reduce | UdfKind::GroupReduce => {
                    return Err(TaskError::NotNarrow(step.kind));
                }
            }
            .map_err(|e| TaskError::step(step, e))?;
        }
        Ok(batch)
    }

    /// Whether `step` (a `reduce`) has a combiner in its guest.
    pub fn has_combiner(&self, step: &StepRef) -> bool {
        step.kind == UdfKind::Reduce
            && self
                .instances
                .get(&step.module)
                .is_some_and(|g| g.has_combiner(&step.function))
    }

    /// Runs the narrow `steps` over `batch` and folds their output into the combiner of the
    /// `reduce` step `reduce` (see [`Pipeline::has_combiner`]). Returns the records folded and the
    /// bytes the combiner holds, or `None` if nothing reached it (the batch was filtered away).
    ///
    /// When the last step is a `map` or `flat_map` of the combiner's own module, its output stays
    /// in the guest and is folded where it is; otherwise it is copied in like any batch.
    pub fn run_into_combiner(
        &mut self,
        steps: &[StepRef],
        batch: Records,
        reduce: &StepRef,
    ) -> Result<Option<Folded>, TaskError> {
        let (fused, before) = match steps.split_last() {
            Some((last, before))
                if last.module == reduce.module
                    && matches!(last.kind, UdfKind::Map | UdfKind::FlatMap) =>
            {
                (Some(last), before)
            }
            _ => (None, steps),
        };
        let batch = self.run(before, batch)?;
        if batch.is_empty() {
            return Ok(None);
        }
        let guest = self.guest(reduce)?;
        let held = match fused {
            Some(last) => guest
                .map_into_combiner(last.kind, &last.function, &batch, &reduce.function)
                // Names are unique within a module: the error's UDF says which step failed.
                .map_err(|e| match e.udf() {
                    Some(udf) if udf == reduce.function => TaskError::step(reduce, e),
                    _ => TaskError::step(last, e),
                })?,
            None => guest
                .combine(&reduce.function, &batch)
                .map_err(|e| TaskError::step(reduce, e))?,
        };
        Ok(Some(held))
    }

    /// Takes every record the combiner of `reduce` holds.
    pub fn drain_combiner(&mut self, reduce: &StepRef) -> Result<Records, TaskError> {
        self.guest(reduce)?
            .drain_combiner(&reduce.function)
            .map_err(|e| TaskError::step(reduce, e))
    }

    /// Runs a `reduce` step over groups: one value per group.
    pub fn reduce(&mut self, step: &StepRef, groups: &Groups) -> Result<BinaryArray, TaskError> {
        self.guest(step)?
            .reduce(&step.function, groups)
            .map_err(|e| TaskError::step(step, e))
    }

    /// Runs a `group_reduce` step over groups.
    pub fn group_reduce(&mut self, step: &StepRef, groups: &Groups) -> Result<Records, TaskError> {
        self.guest(step)?
            .group_reduce(&step.function, groups)
            .map_err(|e| TaskError::step(step, e))
    }

    /// Everything the task's guests wrote to stdout and to stderr, one module after another in
    /// the order of their ids (so a report does not depend on hash map order).
    pub fn output(&self) -> (Vec<u8>, Vec<u8>) {
        let mut modules: Vec<_> = self.instances.iter().collect();
        modules.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut out = (Vec::new(), Vec::new());
        for (_, g) in modules {
            out.0.extend_from_slice(&g.stdout());
            out.1.extend_from_slice(&g.stderr());
        }
        out
    }
}

/// Keeps the records whose mask entry is true.
fn apply_mask(batch: Records, keep: &arrow_array::BooleanArray) -> Records {
    if keep.true_count() == batch.len() {
        return batch;
    }
    // The host returns exactly one mask entry per record, so the kernel cannot fail here.
    let pick = |a: &BinaryArray| -> BinaryArray {
        let picked = arrow_select::filter::filter(a, keep).expect("one mask entry per record");
        picked
            .as_any()
            .downcast_ref::<BinaryArray>()
            .expect("filtering a binary array gives a binary array")
            .clone()
    };
    Records::new(pick(batch.keys()), pick(batch.values())).expect("both filtered by one mask")
}
