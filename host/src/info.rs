//! What Weft knows of a module's UDFs: their names, kinds and combiners, as validation reads them
//! from the exports and as a compiled or native module carries them.

use weft_abi::UdfKind;

/// One UDF a module exports.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct UdfInfo {
    pub name: String,
    pub kind: UdfKind,
    /// A `reduce` that comes with a combiner (`weft_combine_<name>`, ABI.md §3a): a map task
    /// feeding it combines inside the guest rather than in the host.
    pub combiner: bool,
    /// The module states that the UDF never reads its input records' keys (`key=unused` in its
    /// `weft.udfs` section, ABI.md §3b), so a task may hand it empty keys. Known only where the
    /// module's bytes are read (validation, registration); false elsewhere, which only costs the
    /// keys being built.
    pub key_unused: bool,
}

/// What validation learned about a module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleInfo {
    /// The UDFs, sorted by name.
    pub udfs: Vec<UdfInfo>,
    /// The ABI version the guest reported.
    pub abi_version: u32,
    /// The WASI functions it imports, sorted.
    pub wasi_imports: Vec<String>,
    /// Size of the module in bytes.
    pub size: usize,
}

impl ModuleInfo {
    /// Looks up a UDF by name.
    pub fn udf(&self, name: &str) -> Option<&UdfInfo> {
        self.udfs.iter().find(|u| u.name == name)
    }
}
