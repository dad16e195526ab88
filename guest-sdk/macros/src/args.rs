//! The arguments of the attribute: nothing, or `name = "..."` to export the UDF under another name.

use proc_macro2::{Span, TokenStream};
use syn::LitStr;
use syn::parse::Parser;

/// The UDF's exported name and where it came from, for error messages.
pub(crate) struct UdfName {
    pub(crate) value: String,
    pub(crate) span: Span,
}

/// Parses the attribute's arguments; `None` when no name is given.
pub(crate) fn parse(attr: TokenStream) -> syn::Result<Option<UdfName>> {
    let mut name: Option<UdfName> = None;
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("name") {
            let literal: LitStr = meta.value()?.parse()?;
            if name.is_some() {
                return Err(syn::Error::new(literal.span(), "`name` is given twice"));
            }
            let value = literal.value();
            check_name(&value, literal.span(), "`name`")?;
            name = Some(UdfName {
                value,
                span: literal.span(),
            });
            Ok(())
        } else {
            Err(meta.error("unknown argument: the only one is `name = \"...\"`"))
        }
    });
    parser.parse2(attr)?;
    Ok(name)
}

/// A UDF name is ASCII letters, digits and `_` (ABI.md §3; `weft_abi::is_valid_udf_name`, which a
/// proc-macro crate cannot call, so the SDK also checks the final export name against `weft-abi` at
/// compile time).
pub(crate) fn check_name(name: &str, span: Span, what: &str) -> syn::Result<()> {
    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        Ok(())
    } else {
        Err(syn::Error::new(
            span,
            format!(
                "{what} {name:?} is not a valid UDF name: \
                 use one or more ASCII letters, digits or `_`"
            ),
        ))
    }
}
