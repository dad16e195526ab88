//! `native_udfs!`: from the paths of UDF functions to the paths of their native constants.

use proc_macro2::TokenStream;
use quote::quote;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Path, PathArguments, Token};

use crate::udf::native_constant;

/// Expands to an array of the named UDFs' native constants, or to compile errors at the paths
/// that cannot name a function.
pub(crate) fn expand(input: TokenStream) -> TokenStream {
    match try_expand(input) {
        Ok(tokens) => tokens,
        Err(error) => error.into_compile_error(),
    }
}

fn try_expand(input: TokenStream) -> syn::Result<TokenStream> {
    let paths = Punctuated::<Path, Token![,]>::parse_terminated.parse2(input)?;
    let mut constants = Vec::with_capacity(paths.len());
    for mut path in paths {
        let Some(last) = path.segments.last_mut() else {
            // `Path` parses at least one segment; keep this free of panics all the same.
            continue;
        };
        if !matches!(last.arguments, PathArguments::None) {
            return Err(syn::Error::new_spanned(
                &last.arguments,
                "a UDF is a plain function: name it without generic arguments",
            ));
        }
        last.ident = native_constant(&last.ident);
        constants.push(path);
    }
    let len = constants.len();
    Ok(quote! {{
        let udfs: [::weft_guest::__private::NativeUdf; #len] = [#(#constants),*];
        udfs
    }})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_the_native_constants() {
        let out = expand(quote!(weft_example_wordcount::split_words, sum, r#type,)).to_string();
        assert!(
            out.contains("weft_example_wordcount :: __WEFT_NATIVE_split_words"),
            "{out}"
        );
        assert!(out.contains("__WEFT_NATIVE_sum"), "{out}");
        assert!(out.contains("__WEFT_NATIVE_type"), "{out}");
        assert!(out.contains("NativeUdf ; 3usize"), "{out}");
    }

    #[test]
    fn generic_arguments_and_non_paths_are_compile_errors() {
        let out = expand(quote!(f::<u8>)).to_string();
        assert!(out.contains("compile_error"), "{out}");
        assert!(out.contains("without generic arguments"), "{out}");
        let out = expand(quote!(1 + 2)).to_string();
        assert!(out.contains("compile_error"), "{out}");
    }
}
