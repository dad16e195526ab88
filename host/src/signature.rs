//! [`Signature`]: a function type in the one form both wasmparser's types (what validation reads)
//! and wasmtime's (what the engine's linker provides) convert to, so the two can be compared, and
//! named in messages.

use std::fmt;

/// A function type in a form both wasmparser's and wasmtime's types convert to, for comparison and
/// for messages (`[i32, i32] -> [i32]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Signature {
    params: Vec<&'static str>,
    results: Vec<&'static str>,
}

impl Signature {
    pub(crate) const fn new(params: Vec<&'static str>, results: Vec<&'static str>) -> Signature {
        Signature { params, results }
    }

    pub(crate) fn of_wasmtime(ty: &wasmtime::FuncType) -> Signature {
        let name = |t: wasmtime::ValType| match t {
            wasmtime::ValType::I32 => "i32",
            wasmtime::ValType::I64 => "i64",
            wasmtime::ValType::F32 => "f32",
            wasmtime::ValType::F64 => "f64",
            wasmtime::ValType::V128 => "v128",
            wasmtime::ValType::Ref(_) => "ref",
        };
        Signature::new(
            ty.params().map(name).collect(),
            ty.results().map(name).collect(),
        )
    }

    pub(crate) fn of_parser(ty: &wasmparser::FuncType) -> Signature {
        let name = |t: &wasmparser::ValType| match t {
            wasmparser::ValType::I32 => "i32",
            wasmparser::ValType::I64 => "i64",
            wasmparser::ValType::F32 => "f32",
            wasmparser::ValType::F64 => "f64",
            wasmparser::ValType::V128 => "v128",
            wasmparser::ValType::Ref(_) => "ref",
        };
        Signature::new(
            ty.params().iter().map(name).collect(),
            ty.results().iter().map(name).collect(),
        )
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}] -> [{}]",
            self.params.join(", "),
            self.results.join(", ")
        )
    }
}

pub(crate) fn sig(params: &[&'static str], results: &[&'static str]) -> Signature {
    Signature::new(params.to_vec(), results.to_vec())
}
