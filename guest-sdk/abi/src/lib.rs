//! The constants and memory layout of Weft's guest ABI, version 1.
//!
//! `guest-sdk/ABI.md` is the normative description; this crate is the same contract in code, used by
//! the host (`weft-host`) and the Rust guest SDK (`weft-guest`), so the two sides cannot drift apart.
//! It has no dependencies and is `no_std`, so any Rust-side tool can use it.
//!
//! # Brief overview
//! A guest is a core wasm module. It exports its `memory`, [`ABI_VERSION_EXPORT`], [`ALLOC_EXPORT`],
//! [`FREE_EXPORT`] and one function per UDF, named `weft_<kind>_<name>` (see [`UdfKind`]). The host
//! calls a UDF with a pointer to a [`Frame`] of [`FRAME_SIZE`] bytes in guest memory: the input batch
//! (Arrow variable-size binary layout for keys and values) is described by the frame's `in_*` fields,
//! and the guest describes its output in the `out_*` fields and returns a status ([`STATUS_OK`] or
//! [`STATUS_ERROR`] with a message).
//!
//! [`native`] describes the same call for UDFs compiled into the host process instead (for
//! measuring what the sandbox costs, and for tests; not part of the contract a module follows).

#![no_std]

// For the native module's combiner state, which a host process allocates anyway, and the row
// encoder.
extern crate alloc;

pub mod facts;
pub mod row;

/// Version of the guest ABI this crate describes. Bump it on any change a compiled guest could notice:
/// the frame layout, an export's signature, or the meaning of a field.
pub const ABI_VERSION: u32 = 1;

/// `() -> i32`: returns the ABI version the guest was built for.
pub const ABI_VERSION_EXPORT: &str = "weft_abi_version";
/// `(size: i32, align: i32) -> i32`: returns a block of guest memory, or 0 when out of memory.
pub const ALLOC_EXPORT: &str = "weft_alloc";
/// `(ptr: i32, size: i32, align: i32) -> ()`: releases a block obtained from [`ALLOC_EXPORT`].
pub const FREE_EXPORT: &str = "weft_free";
/// The linear memory every guest exports.
pub const MEMORY_EXPORT: &str = "memory";
/// WASI reactor initialiser, called once after instantiation when exported.
pub const INITIALIZE_EXPORT: &str = "_initialize";
/// Prefix of every export that belongs to the ABI; an unrecognised `weft_` export is refused.
pub const EXPORT_PREFIX: &str = "weft_";
/// The only import module the sandbox provides (WASI preview 1, without ambient capabilities).
pub const WASI_MODULE: &str = "wasi_snapshot_preview1";

/// Prefix of the optional combiner export of a `reduce` UDF: `weft_combine_<name>`, of type
/// `(frame: i32, op: i32) -> i32`, where `<name>` is a `reduce` of the same module (ABI.md §3a). The
/// combiner holds running values by key in guest memory, so a map task's output can be combined
/// where it was produced instead of being copied out and back in.
pub const COMBINE_EXPORT_PREFIX: &str = "weft_combine_";
/// Combiner op: fold the frame's input records into the values held, left to right; on success
/// `out_count` is the number of bytes the combiner now holds (keys and values).
pub const COMBINE_FOLD: u32 = 0;
/// Combiner op: describe every record held (a key and its combined value) in the frame's `out_*`
/// fields, and hold nothing after.
pub const COMBINE_DRAIN: u32 = 1;

/// The `reduce` UDF a combiner export belongs to: `Some("sum")` for `weft_combine_sum`.
pub fn split_combine_export(export: &str) -> Option<&str> {
    export
        .strip_prefix(COMBINE_EXPORT_PREFIX)
        .filter(|name| is_valid_udf_name(name))
}

/// A UDF returned normally; its output is described in the frame.
pub const STATUS_OK: u32 = 0;
/// A UDF failed; `error_ptr`/`error_len` in the frame hold a UTF-8 message for the user.
pub const STATUS_ERROR: u32 = 1;

/// The kinds of user-defined function, and the export-name prefix of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UdfKind {
    /// One record in, exactly one record out.
    Map,
    /// One record in, kept or dropped.
    Filter,
    /// One record in, zero or more records out.
    FlatMap,
    /// Associative, commutative combine of the values of one key into one value.
    Reduce,
    /// One key with all its values in, zero or more records out.
    GroupReduce,
}

impl UdfKind {
    /// Every kind, in the order the ABI document lists them.
    pub const ALL: [UdfKind; 5] = [
        UdfKind::Map,
        UdfKind::Filter,
        UdfKind::FlatMap,
        UdfKind::Reduce,
        UdfKind::GroupReduce,
    ];

    /// The kind's name as written in export names, job files and the CLI.
    pub const fn as_str(self) -> &'static str {
        match self {
            UdfKind::Map => "map",
            UdfKind::Filter => "filter",
            UdfKind::FlatMap => "flat_map",
            UdfKind::Reduce => "reduce",
            UdfKind::GroupReduce => "group_reduce",
        }
    }

    /// Parses a kind name (`"flat_map"`, ...).
    pub fn parse(name: &str) -> Option<UdfKind> {
        UdfKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Whether the input is grouped by key (`in_groups` is set) rather than a flat list of records.
    pub const fn is_grouped(self) -> bool {
        matches!(self, UdfKind::Reduce | UdfKind::GroupReduce)
    }

    /// Splits an export name `weft_<kind>_<name>` into its kind and UDF name. Returns `None` for a name
    /// that is not a UDF export (the reserved exports included). No kind name is a prefix of another
    /// at the start of the remainder, so the split is unambiguous.
    pub fn split_export(export: &str) -> Option<(UdfKind, &str)> {
        let rest = export.strip_prefix(EXPORT_PREFIX)?;
        UdfKind::ALL.into_iter().find_map(|kind| {
            let name = rest.strip_prefix(kind.as_str())?.strip_prefix('_')?;
            is_valid_udf_name(name).then_some((kind, name))
        })
    }
}

impl core::fmt::Display for UdfKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A UDF name is non-empty ASCII letters, digits and `_`: it must be a legal identifier in every guest
/// language and needs no quoting in job files.
pub fn is_valid_udf_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The call frame: fourteen little-endian `u32` fields at the address passed to a UDF export.
///
/// The host writes the `in_*` fields and zeroes the rest before each call; the guest writes the
/// `out_*` (and, on failure, `error_*`) fields. All pointers are offsets into the guest's memory.
/// The struct is `#[repr(C)]` so a Rust guest can use it in place; its layout equals [`offsets`].
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Frame {
    /// Records in the input (map, filter, flat_map) or groups (reduce, group_reduce).
    pub in_count: u32,
    /// `in_count + 1` offsets into `in_keys_data`.
    pub in_keys_offsets: u32,
    pub in_keys_data: u32,
    /// One offset more than there are input values (`in_count`, or `groups[in_count]` when grouped).
    pub in_values_offsets: u32,
    pub in_values_data: u32,
    /// Grouped kinds only: `in_count + 1` value indexes; group `i` has values `groups[i]..groups[i+1]`.
    pub in_groups: u32,
    /// Records (or, for reduce, values) in the output.
    pub out_count: u32,
    pub out_keys_offsets: u32,
    pub out_keys_data: u32,
    pub out_values_offsets: u32,
    pub out_values_data: u32,
    /// Filter only: `in_count` bytes, non-zero to keep the record at that index.
    pub out_keep: u32,
    /// On [`STATUS_ERROR`]: a UTF-8 message for the user.
    pub error_ptr: u32,
    pub error_len: u32,
}

/// Size of [`Frame`] in bytes.
pub const FRAME_SIZE: u32 = 56;
/// Alignment the host requests for the frame and for offset arrays.
pub const FRAME_ALIGN: u32 = 4;

/// Byte offsets of each [`Frame`] field, for hosts and SDKs that read the frame as raw memory.
pub mod offsets {
    pub const IN_COUNT: u32 = 0;
    pub const IN_KEYS_OFFSETS: u32 = 4;
    pub const IN_KEYS_DATA: u32 = 8;
    pub const IN_VALUES_OFFSETS: u32 = 12;
    pub const IN_VALUES_DATA: u32 = 16;
    pub const IN_GROUPS: u32 = 20;
    pub const OUT_COUNT: u32 = 24;
    pub const OUT_KEYS_OFFSETS: u32 = 28;
    pub const OUT_KEYS_DATA: u32 = 32;
    pub const OUT_VALUES_OFFSETS: u32 = 36;
    pub const OUT_VALUES_DATA: u32 = 40;
    pub const OUT_KEEP: u32 = 44;
    pub const ERROR_PTR: u32 = 48;
    pub const ERROR_LEN: u32 = 52;
}

// The layout is part of the contract: fail the build if the struct and the table disagree.
const _: () = {
    assert!(size_of::<Frame>() == FRAME_SIZE as usize);
    assert!(align_of::<Frame>() == FRAME_ALIGN as usize);
    assert!(core::mem::offset_of!(Frame, in_count) == offsets::IN_COUNT as usize);
    assert!(core::mem::offset_of!(Frame, in_keys_offsets) == offsets::IN_KEYS_OFFSETS as usize);
    assert!(core::mem::offset_of!(Frame, in_keys_data) == offsets::IN_KEYS_DATA as usize);
    assert!(core::mem::offset_of!(Frame, in_values_offsets) == offsets::IN_VALUES_OFFSETS as usize);
    assert!(core::mem::offset_of!(Frame, in_values_data) == offsets::IN_VALUES_DATA as usize);
    assert!(core::mem::offset_of!(Frame, in_groups) == offsets::IN_GROUPS as usize);
    assert!(core::mem::offset_of!(Frame, out_count) == offsets::OUT_COUNT as usize);
    assert!(core::mem::offset_of!(Frame, out_keys_offsets) == offsets::OUT_KEYS_OFFSETS as usize);
    assert!(core::mem::offset_of!(Frame, out_keys_data) == offsets::OUT_KEYS_DATA as usize);
    assert!(
        core::mem::offset_of!(Frame, out_values_offsets) == offsets::OUT_VALUES_OFFSETS as usize
    );
    assert!(core::mem::offset_of!(Frame, out_values_data) == offsets::OUT_VALUES_DATA as usize);
    assert!(core::mem::offset_of!(Frame, out_keep) == offsets::OUT_KEEP as usize);
    assert!(core::mem::offset_of!(Frame, error_ptr) == offsets::ERROR_PTR as usize);
    assert!(core::mem::offset_of!(Frame, error_len) == offsets::ERROR_LEN as usize);
};

impl Frame {
    /// Every field with its offset ([`offsets`]): the one place the codec names the layout.
    fn fields(&self) -> [(u32, u32); 14] {
        [
            (offsets::IN_COUNT, self.in_count),
            (offsets::IN_KEYS_OFFSETS, self.in_keys_offsets),
            (offsets::IN_KEYS_DATA, self.in_keys_data),
            (offsets::IN_VALUES_OFFSETS, self.in_values_offsets),
            (offsets::IN_VALUES_DATA, self.in_values_data),
            (offsets::IN_GROUPS, self.in_groups),
            (offsets::OUT_COUNT, self.out_count),
            (offsets::OUT_KEYS_OFFSETS, self.out_keys_offsets),
            (offsets::OUT_KEYS_DATA, self.out_keys_data),
            (offsets::OUT_VALUES_OFFSETS, self.out_values_offsets),
            (offsets::OUT_VALUES_DATA, self.out_values_data),
            (offsets::OUT_KEEP, self.out_keep),
            (offsets::ERROR_PTR, self.error_ptr),
            (offsets::ERROR_LEN, self.error_len),
        ]
    }

    /// The frame as it lies in guest memory: each field little-endian at its offset. For a host,
    /// which sees guest memory as bytes (a Rust guest uses the struct in place).
    pub fn to_bytes(&self) -> [u8; FRAME_SIZE as usize] {
        let mut bytes = [0u8; FRAME_SIZE as usize];
        for (at, value) in self.fields() {
            let at = at as usize;
            bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
        }
        bytes
    }

    /// The frame that `bytes` (as [`Frame::to_bytes`] lays them out) hold.
    pub fn from_bytes(bytes: &[u8; FRAME_SIZE as usize]) -> Frame {
        let field = |at: u32| {
            let at = at as usize;
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        Frame {
            in_count: field(offsets::IN_COUNT),
            in_keys_offsets: field(offsets::IN_KEYS_OFFSETS),
            in_keys_data: field(offsets::IN_KEYS_DATA),
            in_values_offsets: field(offsets::IN_VALUES_OFFSETS),
            in_values_data: field(offsets::IN_VALUES_DATA),
            in_groups: field(offsets::IN_GROUPS),
            out_count: field(offsets::OUT_COUNT),
            out_keys_offsets: field(offsets::OUT_KEYS_OFFSETS),
            out_keys_data: field(offsets::OUT_KEYS_DATA),
            out_values_offsets: field(offsets::OUT_VALUES_OFFSETS),
            out_values_data: field(offsets::OUT_VALUES_DATA),
            out_keep: field(offsets::OUT_KEEP),
            error_ptr: field(offsets::ERROR_PTR),
            error_len: field(offsets::ERROR_LEN),
        }
    }
}

/// The same call without wasm: a UDF built into the host process, for measuring what the sandbox
/// costs and for testing. The views have exactly the layout of the frame's buffers (Arrow binary
/// arrays with `u32` offsets starting at 0), but they are plain slices of the caller's memory.
///
/// A native UDF is trusted code running in the host: it has none of the sandbox's isolation or
/// limits. The sandboxed module is the product; this exists so that the two can be compared.
pub mod native {
    use alloc::boxed::Box;

    use crate::UdfKind;

    /// A variable-size binary array: item `i` is `data[offsets[i]..offsets[i + 1]]`. `offsets` has
    /// one entry more than there are items, starting at 0; it may be empty when there are none.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    pub struct Binary<'a> {
        pub offsets: &'a [u32],
        pub data: &'a [u8],
    }

    impl Binary<'_> {
        /// The number of items the offsets describe.
        pub fn count(&self) -> usize {
            self.offsets.len().saturating_sub(1)
        }
    }

    /// What the frame's `in_*` fields describe.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    pub struct Input<'a> {
        /// Records (map, filter, flat_map) or groups (reduce, group_reduce).
        pub count: usize,
        /// `count` keys.
        pub keys: Binary<'a>,
        /// `count` values, or `groups[count]` when grouped.
        pub values: Binary<'a>,
        /// Grouped kinds only: `count + 1` value indexes; group `i` has values
        /// `groups[i]..groups[i + 1]`. Empty for the other kinds.
        pub groups: &'a [u32],
    }

    /// What the frame's `out_*` fields describe after a successful call.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    pub struct Output<'a> {
        /// Records out (map, flat_map, group_reduce) or values out (reduce); 0 for filter.
        pub count: usize,
        /// `count` keys; empty for reduce and filter.
        pub keys: Binary<'a>,
        /// `count` values; empty for filter.
        pub values: Binary<'a>,
        /// Filter only: one byte per input record, non-zero to keep it.
        pub keep: &'a [u8],
    }

    /// One call of a native UDF. The result goes to the callback rather than being returned: the
    /// output (or the error message) lives in buffers the UDF keeps for the next call, and is valid
    /// only while the callback runs, so a steady stream of batches allocates nothing for output,
    /// as with wasm. The callback is called exactly once.
    pub type NativeCall = fn(&Input<'_>, &mut dyn FnMut(Result<&Output<'_>, &str>));

    /// The state of a native combiner, owned by the caller (one per instance and `reduce` UDF, empty
    /// at first) and kept between calls; what it holds is the UDF's business.
    pub type CombineState = Option<Box<dyn core::any::Any + Send>>;

    /// One call of a native `reduce` UDF's combiner (what `weft_combine_<name>` is to a module):
    /// `op` is [`COMBINE_FOLD`](crate::COMBINE_FOLD), with the records to fold as the input and
    /// the bytes held as the output's `count`, or [`COMBINE_DRAIN`](crate::COMBINE_DRAIN), with the
    /// records held as the output. The callback is called exactly once, as for [`NativeCall`].
    pub type NativeCombine =
        fn(u32, &Input<'_>, &mut CombineState, &mut dyn FnMut(Result<&Output<'_>, &str>));

    /// A UDF compiled into the host process: what the export `weft_<kind>_<name>` is to a module.
    #[derive(Debug, Clone, Copy)]
    pub struct NativeUdf {
        pub kind: UdfKind,
        pub name: &'static str,
        pub call: NativeCall,
        /// A `reduce`'s combiner, if it has one (what `weft_combine_<name>` is to a module).
        pub combine: Option<NativeCombine>,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame whose every field is distinct and uses all four bytes.
    fn numbered() -> Frame {
        let mut frame = Frame::default();
        let fields = [
            &mut frame.in_count,
            &mut frame.in_keys_offsets,
            &mut frame.in_keys_data,
            &mut frame.in_values_offsets,
            &mut frame.in_values_data,
            &mut frame.in_groups,
            &mut frame.out_count,
            &mut frame.out_keys_offsets,
            &mut frame.out_keys_data,
            &mut frame.out_values_offsets,
            &mut frame.out_values_data,
            &mut frame.out_keep,
            &mut frame.error_ptr,
            &mut frame.error_len,
        ];
        for (i, field) in fields.into_iter().enumerate() {
            *field = 0x0101_0101 * (i as u32 + 1) + 0x0302_0100;
        }
        frame
    }

    #[test]
    fn each_field_is_encoded_at_its_offset_little_endian() {
        let frame = numbered();
        let bytes = frame.to_bytes();
        let at = |offset: u32| {
            let o = offset as usize;
            u32::from_le_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]])
        };
        assert_eq!(at(offsets::IN_COUNT), frame.in_count);
        assert_eq!(at(offsets::IN_KEYS_OFFSETS), frame.in_keys_offsets);
        assert_eq!(at(offsets::IN_KEYS_DATA), frame.in_keys_data);
        assert_eq!(at(offsets::IN_VALUES_OFFSETS), frame.in_values_offsets);
        assert_eq!(at(offsets::IN_VALUES_DATA), frame.in_values_data);
        assert_eq!(at(offsets::IN_GROUPS), frame.in_groups);
        assert_eq!(at(offsets::OUT_COUNT), frame.out_count);
        assert_eq!(at(offsets::OUT_KEYS_OFFSETS), frame.out_keys_offsets);
        assert_eq!(at(offsets::OUT_KEYS_DATA), frame.out_keys_data);
        assert_eq!(at(offsets::OUT_VALUES_OFFSETS), frame.out_values_offsets);
        assert_eq!(at(offsets::OUT_VALUES_DATA), frame.out_values_data);
        assert_eq!(at(offsets::OUT_KEEP), frame.out_keep);
        assert_eq!(at(offsets::ERROR_PTR), frame.error_ptr);
        assert_eq!(at(offsets::ERROR_LEN), frame.error_len);
        // Little-endian: the lowest byte first.
        assert_eq!(bytes[0], frame.in_count as u8);
    }

    #[test]
    fn frames_round_trip_through_bytes() {
        let frame = numbered();
        assert_eq!(Frame::from_bytes(&frame.to_bytes()), frame);
        assert_eq!(
            Frame::from_bytes(&[0; FRAME_SIZE as usize]),
            Frame::default()
        );
    }

    #[test]
    fn export_names_split_into_kind_and_name() {
        assert_eq!(
            UdfKind::split_export("weft_flat_map_split_words"),
            Some((UdfKind::FlatMap, "split_words"))
        );
        assert_eq!(
            UdfKind::split_export("weft_map_map"),
            Some((UdfKind::Map, "map"))
        );
        assert_eq!(
            UdfKind::split_export("weft_group_reduce_index"),
            Some((UdfKind::GroupReduce, "index"))
        );
        assert_eq!(
            UdfKind::split_export("weft_reduce_sum"),
            Some((UdfKind::Reduce, "sum"))
        );
        assert_eq!(UdfKind::split_export("weft_alloc"), None);
        assert_eq!(UdfKind::split_export("weft_abi_version"), None);
        assert_eq!(UdfKind::split_export("weft_map_"), None);
        assert_eq!(UdfKind::split_export("weft_map_bad-name"), None);
        assert_eq!(UdfKind::split_export("map_x"), None);
    }

    #[test]
    fn combiner_exports_name_their_reduce_and_are_no_udf_export() {
        assert_eq!(split_combine_export("weft_combine_sum"), Some("sum"));
        assert_eq!(split_combine_export("weft_combine_"), None);
        assert_eq!(split_combine_export("weft_combine_bad-name"), None);
        assert_eq!(split_combine_export("weft_reduce_sum"), None);
        assert_eq!(UdfKind::split_export("weft_combine_sum"), None);
    }

    #[test]
    fn kinds_round_trip_through_their_names() {
        for kind in UdfKind::ALL {
            assert_eq!(UdfKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(UdfKind::parse("fold"), None);
    }
}
