//! What every kind of instance checks of a call's output, whether the UDF ran in wasm or natively
//! (ABI.md, "Output rules").

/// Checks that a `map` returned one record per input record.
pub(crate) fn map_count(input: usize, output: usize) -> Result<(), String> {
    if input == output {
        Ok(())
    } else {
        Err(format!(
            "a map must return one record per input: {input} in, {output} out"
        ))
    }
}
