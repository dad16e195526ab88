//! The UDF kinds, the checks on the annotated function, and the code generated for it.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{FnArg, Item, ItemFn, PatType, ReturnType, Type};

use crate::args::{self, UdfName};

/// The five UDF kinds. Their ABI names are repeated here because a proc-macro crate cannot use
/// `weft-abi`; the generated code checks them against it at compile time.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    Map,
    Filter,
    FlatMap,
    Reduce,
    GroupReduce,
}

impl Kind {
    /// The kind as written in export names, and the name of its SDK entry point.
    fn as_str(self) -> &'static str {
        match self {
            Kind::Map => "map",
            Kind::Filter => "filter",
            Kind::FlatMap => "flat_map",
            Kind::Reduce => "reduce",
            Kind::GroupReduce => "group_reduce",
        }
    }

    /// The `weft_abi::UdfKind` variant.
    fn variant(self) -> Ident {
        let name = match self {
            Kind::Map => "Map",
            Kind::Filter => "Filter",
            Kind::FlatMap => "FlatMap",
            Kind::Reduce => "Reduce",
            Kind::GroupReduce => "GroupReduce",
        };
        Ident::new(name, Span::call_site())
    }

    /// The accepted parameter counts and the signature to show when the count is wrong.
    fn shape(self) -> (&'static [usize], &'static str) {
        match self {
            Kind::Map => (&[2], "fn(key: K, value: V) -> (K2, V2)"),
            Kind::Filter => (&[2], "fn(key: K, value: V) -> bool"),
            Kind::FlatMap => (&[3], "fn(key: K, value: V, out: &mut Emitter)"),
            Kind::Reduce => (
                &[2, 3],
                "fn(a: V, b: V) -> V` or `fn(key: K, a: V, b: V) -> V",
            ),
            Kind::GroupReduce => (&[3], "fn(key: K, values: Values<'_, V>, out: &mut Emitter)"),
        }
    }
}

/// Expands one attribute. Never panics: any problem becomes `compile_error!`s at the offending
/// tokens, emitted next to the untouched function so that the user sees only those errors and not a
/// cascade of "cannot find function" ones.
pub(crate) fn expand(kind: Kind, attr: TokenStream, item: TokenStream) -> TokenStream {
    match try_expand(kind, attr, item.clone()) {
        Ok(tokens) => tokens,
        Err(error) => {
            let error = error.into_compile_error();
            quote! { #item #error }
        }
    }
}

fn try_expand(kind: Kind, attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    // Collect every mistake (arguments, signature, name) so that one compile shows them all.
    let mut errors = Errors::default();
    let name = errors.take(args::parse(attr));
    let function = errors.take(match syn::parse2::<Item>(item) {
        Ok(Item::Fn(function)) => Ok(function),
        Ok(other) => Err(syn::Error::new_spanned(
            other,
            format!("#[{}] applies to a free function", kind.as_str()),
        )),
        Err(error) => Err(error),
    });
    let Some(function) = function else {
        return Err(errors.into_error());
    };
    let params = check_signature(kind, &function, &mut errors);
    let name = match name {
        Some(Some(name)) => Some(name),
        // No `name` argument: the function's own name, which Rust allows to be non-ASCII.
        Some(None) => {
            let ident = function.sig.ident.unraw();
            let what = format!(
                "the function name (give another with `#[{}(name = \"...\")]`)",
                kind.as_str()
            );
            errors
                .take(args::check_name(&ident.to_string(), ident.span(), &what))
                .map(|()| UdfName {
                    value: ident.to_string(),
                    span: ident.span(),
                })
        }
        None => None,
    };
    match name {
        Some(name) if errors.is_empty() => Ok(generate(kind, &name, &function, &params)),
        // Without a name, `take` recorded why.
        _ => Err(errors.into_error()),
    }
}

/// The errors found so far, combined into one `syn::Error` (which holds a list).
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(first) => first.combine(error),
            None => self.0 = Some(error),
        }
    }

    /// The value, or `None` after recording the error.
    fn take<T>(&mut self, result: syn::Result<T>) -> Option<T> {
        result.map_err(|error| self.push(error)).ok()
    }

    fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// The combined error; callers only ask once one was recorded, but even otherwise this must
    /// not panic.
    fn into_error(self) -> syn::Error {
        self.0
            .unwrap_or_else(|| syn::Error::new(Span::call_site(), "weft_guest: invalid UDF"))
    }
}

/// Checks what the macro can see of the signature, recording each problem at its own tokens, and
/// returns the typed parameters.
fn check_signature(kind: Kind, function: &ItemFn, errors: &mut Errors) -> Vec<PatType> {
    let sig = &function.sig;
    let mut fail = |span: Span, message: String| errors.push(syn::Error::new(span, message));
    let udf = format!("a #[{}] UDF", kind.as_str());

    if let Some(token) = &sig.asyncness {
        fail(
            token.span(),
            format!("{udf} cannot be `async`: the host calls it synchronously, once per batch"),
        );
    }
    if let Some(token) = &sig.unsafety {
        fail(
            token.span(),
            format!("{udf} cannot be `unsafe`: the generated glue calls it as safe code"),
        );
    }
    if let Some(variadic) = &sig.variadic {
        fail(variadic.span(), format!("{udf} cannot be variadic"));
    }
    for param in &sig.generics.params {
        match param {
            // Lifetimes are fine (`fn f<'a>(k: &'a str, v: &'a str) -> (&'a str, &'a str)`):
            // the call infers them. Types and constants cannot be chosen by the host.
            syn::GenericParam::Lifetime(_) => {}
            syn::GenericParam::Type(_) | syn::GenericParam::Const(_) => fail(
                param.span(),
                format!(
                    "{udf} cannot have type or const parameters: \
                     the exported function needs concrete types"
                ),
            ),
        }
    }

    let mut params = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(receiver) => fail(
                receiver.span(),
                format!("{udf} is a free function and cannot take `self`"),
            ),
            FnArg::Typed(param) => {
                if let Some(span) = impl_trait(&param.ty) {
                    fail(
                        span,
                        format!("{udf} cannot take `impl Trait` parameters: name a concrete type"),
                    );
                }
                params.push(param.clone());
            }
        }
    }
    // Count the typed parameters only: a `self` was reported above and is not a parameter the
    // host could fill either way.
    let (counts, shape) = kind.shape();
    if !counts.contains(&params.len()) {
        let expected = counts
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(" or ");
        let span = if sig.inputs.is_empty() {
            sig.paren_token.span.join()
        } else {
            sig.inputs.span()
        };
        fail(
            span,
            format!(
                "{udf} takes {expected} parameters, not {}: expected `{shape}`",
                params.len()
            ),
        );
    }

    params
}

/// Where an `impl Trait` makes the parameter's type generic, if it does at the top level.
fn impl_trait(ty: &Type) -> Option<Span> {
    match ty {
        Type::ImplTrait(t) => Some(t.span()),
        Type::Reference(r) => impl_trait(&r.elem),
        Type::Paren(p) => impl_trait(&p.elem),
        Type::Group(g) => impl_trait(&g.elem),
        _ => None,
    }
}

/// The name of the constant that describes a UDF in native builds: `__WEFT_NATIVE_<function>`.
/// Named after the function rather than the UDF so that it sits next to the function under a name
/// a Rust path can be written from (the function's names are unique in their module).
pub(crate) fn native_constant(function: &Ident) -> Ident {
    format_ident!("__WEFT_NATIVE_{}", function.unraw(), span = function.span())
}

/// The original function, then the glue. The glue is one closure (decode the parameters, call the
/// function, convert its result) handed to the SDK's entry point for the kind: on wasm32 from an
/// exported function; natively from a function behind a public `NativeUdf` constant, so that a
/// host can run the same code in-process (and, either way, the types are checked and the function
/// counts as used).
fn generate(kind: Kind, name: &UdfName, function: &ItemFn, params: &[PatType]) -> TokenStream {
    let closure = glue_closure(kind, function, params);
    let entry = format_ident!("{}", kind.as_str());
    let variant = kind.variant();
    let udf = syn::LitStr::new(&name.value, name.span);
    let export = syn::LitStr::new(&format!("weft_{}_{}", kind.as_str(), name.value), name.span);
    let frame = Ident::new("frame", Span::mixed_site());
    let (input, sink) = (
        Ident::new("input", Span::mixed_site()),
        Ident::new("sink", Span::mixed_site()),
    );
    let constant = native_constant(&function.sig.ident);
    let doc = format!(
        "The UDF `{}` ({}) compiled natively, for running it in the host process without the \
         sandbox (measurement and tests). Generated by `#[{}]`.",
        name.value,
        kind.as_str(),
        kind.as_str()
    );
    // A `reduce` also gets its combiner: the `weft_combine_<name>` export, and the native
    // constant's `combine`.
    let (combine_export, native_combine) = match kind {
        Kind::Reduce => {
            let fold = match resident_type(function, params) {
                Some(ty) => resident_fold(function, ty),
                None => combine_closure(function, params),
            };
            let export = syn::LitStr::new(&format!("weft_combine_{}", name.value), name.span);
            // Names a reduce whose values and result are not one type in words, at its first
            // value, before the type mismatches this makes in the glue below.
            let user = &function.sig.ident;
            let checker = if params.len() == 3 {
                quote!(check_keyed_reduce)
            } else {
                quote!(check_reduce)
            };
            let first = params.len().saturating_sub(2);
            let check = quote_spanned!(params[first].ty.span()=>
                ::weft_guest::__private::#checker(#user)
            );
            let (op, state) = (
                Ident::new("op", Span::mixed_site()),
                Ident::new("state", Span::mixed_site()),
            );
            (
                quote! {
                    const _: () = {
                        // Never called: only type-checked.
                        #[allow(dead_code)]
                        fn __weft_check_reduce() {
                            #check;
                        }
                    };

                    #[cfg(target_arch = "wasm32")]
                    const _: () = {
                        #[unsafe(export_name = #export)]
                        unsafe extern "C" fn __weft_export(
                            #frame: *mut ::weft_guest::__private::Frame,
                            #op: u32,
                        ) -> u32 {
                            // SAFETY: as for the UDF's own export (ABI.md, sections 3a and 4).
                            unsafe { ::weft_guest::__private::combine(#frame, #op, #udf, #fold) }
                        }
                    };
                },
                quote! {
                    ::core::option::Option::Some({
                        fn __weft_native_combine(
                            #op: u32,
                            #input: &::weft_guest::__private::NativeInput<'_>,
                            #state: &mut ::weft_guest::__private::CombineState,
                            #sink: &mut dyn ::core::ops::FnMut(
                                ::core::result::Result<
                                    &::weft_guest::__private::NativeOutput<'_>,
                                    &str,
                                >,
                            ),
                        ) {
                            ::weft_guest::__private::native::combine(
                                #op, #input, #state, #sink, #udf, #fold,
                            )
                        }
                        __weft_native_combine
                    })
                },
            )
        }
        _ => (quote! {}, quote! { ::core::option::Option::None }),
    };
    let facts = udf_facts(kind, &name.value, params);
    quote! {
        #function

        #combine_export

        #facts

        #[cfg(target_arch = "wasm32")]
        const _: () = {
            ::weft_guest::__private::check_export_name(
                ::weft_guest::__private::UdfKind::#variant,
                #udf,
                #export,
            );

            #[unsafe(export_name = #export)]
            unsafe extern "C" fn __weft_export(#frame: *mut ::weft_guest::__private::Frame) -> u32 {
                // SAFETY: the host calls this export with the address of a call frame, as the
                // guest ABI (weft-guest's ABI.md, section 4) requires.
                unsafe { ::weft_guest::__private::#entry(#frame, #udf, #closure) }
            }
        };

        #[cfg(not(target_arch = "wasm32"))]
        #[doc = #doc]
        #[doc(hidden)]
        // Public whatever the function's visibility, so a native program can list the crate's UDFs;
        // unused in most builds, and named after a function that is snake_case.
        #[allow(dead_code, non_upper_case_globals)]
        pub const #constant: ::weft_guest::__private::NativeUdf = ::weft_guest::__private::NativeUdf {
            kind: ::weft_guest::__private::UdfKind::#variant,
            name: #udf,
            call: {
                fn __weft_native(
                    #input: &::weft_guest::__private::NativeInput<'_>,
                    #sink: &mut dyn ::core::ops::FnMut(
                        ::core::result::Result<&::weft_guest::__private::NativeOutput<'_>, &str>,
                    ),
                ) {
                    ::weft_guest::__private::native::#entry(#input, #sink, #udf, #closure)
                }
                __weft_native
            },
            combine: #native_combine,
        };
    }
}

/// The UDF's line of the `weft.udfs` custom section (ABI.md §3b), if it states a fact: `key=unused`
/// for a `map`, `filter` or `flat_map` whose key parameter is written `()`, so that the host may
/// leave the input keys empty. The linker concatenates the statics of every UDF into one section.
///
/// Unlike everything else here this looks at a type's spelling: a hint that is missed (an alias of
/// `()`, or a type whose `Decode` ignores its bytes) only costs the host building keys, while a
/// hint given wrongly would hand a UDF empty keys, and `()` cannot read them whatever it is called.
fn udf_facts(kind: Kind, name: &str, params: &[PatType]) -> TokenStream {
    let reads_records = matches!(kind, Kind::Map | Kind::Filter | Kind::FlatMap);
    if !reads_records || !params.first().is_some_and(|key| is_unit(&key.ty)) {
        return quote! {};
    }
    let line = format!("1 {name} key=unused\n");
    let bytes = syn::LitByteStr::new(line.as_bytes(), Span::call_site());
    let len = line.len();
    quote! {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            #[unsafe(link_section = "weft.udfs")]
            #[used]
            static __WEFT_UDF_FACTS: [u8; #len] = *#bytes;
        };
    }
}

/// `()`, possibly in parentheses.
fn is_unit(ty: &Type) -> bool {
    match ty {
        Type::Tuple(t) => t.elems.is_empty(),
        Type::Paren(p) => is_unit(&p.elem),
        Type::Group(g) => is_unit(&g.elem),
        _ => false,
    }
}

/// The per-record (or per-group) closure. Each SDK call carries the span of the parameter or return
/// type it serves, so the compiler reports an unsupported type there rather than at the attribute.
fn glue_closure(kind: Kind, function: &ItemFn, params: &[PatType]) -> TokenStream {
    let user = &function.sig.ident;
    // Mixed-site hygiene: these locals cannot clash with (or shadow) the user's names, e.g. a UDF
    // called `key`.
    let local = |name: &str| Ident::new(name, Span::mixed_site());
    let (key, value, out, group, slot, result, a, b) = (
        local("key"),
        local("value"),
        local("out"),
        local("group"),
        local("slot"),
        local("result"),
        local("a"),
        local("b"),
    );
    let span = |index: usize| params[index].ty.span();
    let returns = match &function.sig.output {
        ReturnType::Default => function.sig.ident.span(),
        ReturnType::Type(_, ty) => ty.span(),
    };
    // Paths are written out in full inside `quote_spanned!`: an interpolated path would keep its
    // own span, and the compiler would point at the attribute instead of the user's type.

    match kind {
        Kind::Map | Kind::Filter | Kind::FlatMap => {
            let decode_key = quote_spanned!(span(0)=> ::weft_guest::__private::decode_key(#key)?);
            let decode_value =
                quote_spanned!(span(1)=> ::weft_guest::__private::decode_value(#value)?);
            let (inputs, output) = match kind {
                Kind::Map => {
                    let call = quote_spanned!(returns=> #user(#key, #value));
                    let output = quote_spanned!(returns=>
                        ::weft_guest::__private::emit_map_output(#call, #out)
                    );
                    (quote!(#key, #value, #out), output)
                }
                Kind::Filter => {
                    let call = quote_spanned!(returns=> #user(#key, #value));
                    let output =
                        quote_spanned!(returns=> ::weft_guest::__private::filter_output(#call));
                    (quote!(#key, #value), output)
                }
                _ => {
                    let emitter = quote_spanned!(span(2)=> ::weft_guest::__private::emitter(#out));
                    let call = quote_spanned!(returns=> #user(#key, #value, #emitter));
                    let output =
                        quote_spanned!(returns=> ::weft_guest::__private::unit_output(#call));
                    (quote!(#key, #value, #out), output)
                }
            };
            quote! {
                |#inputs| {
                    let #key = #decode_key;
                    let #value = #decode_value;
                    #output
                }
            }
        }
        Kind::Reduce if params.len() == 3 => {
            let decode_key = quote_spanned!(span(0)=> #group.key()?);
            let clone_key = quote_spanned!(span(0)=> ::core::clone::Clone::clone(&#key));
            let call = quote_spanned!(returns=> #user(#clone_key, #a, #b));
            let combine = quote_spanned!(returns=> ::weft_guest::__private::reduce_output(#call));
            let fold = quote_spanned!(span(1)=> #group.fold(|#a, #b| #combine));
            quote! {
                |#group| {
                    // Decoded once per group, even a group of one value: a bad key fails however
                    // the host happens to group the values.
                    let #key = #decode_key;
                    #fold
                }
            }
        }
        Kind::Reduce => {
            let combine =
                quote_spanned!(returns=> ::weft_guest::__private::reduce_output(#user(#a, #b)));
            let fold = quote_spanned!(span(0)=> #group.fold(|#a, #b| #combine));
            quote! { |#group| #fold }
        }
        Kind::GroupReduce => {
            let decode_key = quote_spanned!(span(0)=> #group.key()?);
            let values = quote_spanned!(span(1)=> #group.values(&#slot));
            let emitter = quote_spanned!(span(2)=> ::weft_guest::__private::emitter(#out));
            let output = quote_spanned!(returns=> ::weft_guest::__private::unit_output(#result));
            quote! {
                |#group, #out| {
                    let #key = #decode_key;
                    let #slot = ::weft_guest::__private::ValueSlot::new();
                    let #result = #user(#key, #values, #emitter);
                    // A value that failed to decode ended the iteration early: that, not whatever
                    // the function made of the shortened group, is the error to report.
                    #slot.check()?;
                    #output
                }
            }
        }
    }
}

/// The value type of a `reduce` whose combiner can hold its running values decoded
/// (`weft_guest::__private::ResidentFold`): two parameters, both `Decimal<_>` of one type, and the
/// same type returned (or in a `Result`). A type is known here only by its spelling, so this is
/// the SDK's own `Decimal`, whatever its path; any other `reduce` gets the general combiner.
fn resident_type<'p>(function: &ItemFn, params: &'p [PatType]) -> Option<&'p Type> {
    let [a, b] = params else {
        return None;
    };
    let spelled = |ty: &Type| quote!(#ty).to_string();
    let is_decimal = |ty: &Type| match ty {
        Type::Path(path) => path
            .path
            .segments
            .last()
            .is_some_and(|s| s.ident == "Decimal" && !s.arguments.is_empty()),
        _ => false,
    };
    let value = spelled(&a.ty);
    if !is_decimal(&a.ty) || spelled(&b.ty) != value {
        return None;
    }
    let ReturnType::Type(_, returned) = &function.sig.output else {
        return None;
    };
    if spelled(returned) == value {
        return Some(&a.ty);
    }
    // `Result<T, E>` (any path to `Result`): its first argument.
    let Type::Path(path) = &**returned else {
        return None;
    };
    let last = path.path.segments.last()?;
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.first() {
        Some(syn::GenericArgument::Type(ok)) if last.ident == "Result" && spelled(ok) == value => {
            Some(&a.ty)
        }
        _ => None,
    }
}

/// A `reduce`'s fold over running values held decoded (see [`resident_type`]): the user's function
/// as `FnMut(T, T) -> Result<T, Failure>`.
fn resident_fold(function: &ItemFn, ty: &Type) -> TokenStream {
    let user = &function.sig.ident;
    let (a, b) = (
        Ident::new("a", Span::mixed_site()),
        Ident::new("b", Span::mixed_site()),
    );
    let returns = match &function.sig.output {
        ReturnType::Default => function.sig.ident.span(),
        ReturnType::Type(_, ty) => ty.span(),
    };
    let call = quote_spanned!(returns=> ::weft_guest::__private::reduce_output(#user(#a, #b)));
    quote! {
        ::weft_guest::__private::ResidentFold::new(|#a: #ty, #b: #ty| #call)
    }
}

/// A `reduce`'s fold for its combiner (`weft_guest::__private::Fold`): one accumulator per key of
/// the call, decoded from its running value (or from its first value), each record's value decoded
/// and folded into its key's accumulator in arrival order, and each key's result encoded once.
/// Bytes in, bytes out, so the user's types may borrow from either.
fn combine_closure(function: &ItemFn, params: &[PatType]) -> TokenStream {
    let user = &function.sig.ident;
    let local = |name: &str| Ident::new(name, Span::mixed_site());
    let (pending, results, keys, accs, group, value, a, b, acc) = (
        local("pending"),
        local("results"),
        local("keys"),
        local("accs"),
        local("group"),
        local("value"),
        local("a"),
        local("b"),
        local("acc"),
    );
    let span = |index: usize| params[index].ty.span();
    let returns = match &function.sig.output {
        ReturnType::Default => function.sig.ident.span(),
        ReturnType::Type(_, ty) => ty.span(),
    };
    // The value parameters are the last two; a 3-parameter reduce takes the key first.
    let first = params.len().saturating_sub(2);
    let decode_running = quote_spanned!(span(first)=>
        ::weft_guest::__private::decode_combined(#acc)
    );
    let decode_b = quote_spanned!(span(first + 1)=>
        ::weft_guest::__private::decode_value(#value?)?
    );
    let (decode_keys, call) = if params.len() == 3 {
        let decode_key = quote_spanned!(span(0)=>
            ::weft_guest::__private::decode_key(#pending.key(#group))
        );
        let clone_key = quote_spanned!(span(0)=> ::core::clone::Clone::clone(&#keys[#group]));
        (
            quote! {
                // Decoded once per key and call, as the reduce decodes it once per group: a bad
                // key fails however the records happen to be combined.
                let #keys = (0..#pending.keys())
                    .map(|#group| #decode_key)
                    .collect::<::core::result::Result<::std::vec::Vec<_>, _>>()?;
            },
            quote_spanned!(returns=> #user(#clone_key, #a, #b)),
        )
    } else {
        (quote! {}, quote_spanned!(returns=> #user(#a, #b)))
    };
    let combine = quote_spanned!(returns=> ::weft_guest::__private::reduce_output(#call)?);
    quote! {
        |#pending: &::weft_guest::__private::Pending<'_>,
         #results: &mut ::weft_guest::__private::Results| {
            #decode_keys
            let mut #accs = ::std::vec::Vec::with_capacity(#pending.keys());
            for #group in 0..#pending.keys() {
                #accs.push(match #pending.running(#group) {
                    ::core::option::Option::Some(#acc) => ::core::option::Option::Some(#decode_running?),
                    ::core::option::Option::None => ::core::option::Option::None,
                });
            }
            for (#group, #value) in #pending.records() {
                let #b = #decode_b;
                #accs[#group] = ::core::option::Option::Some(match #accs[#group].take() {
                    ::core::option::Option::Some(#a) => #combine,
                    // A key's first value: decoded, and encoded again with the results.
                    ::core::option::Option::None => #b,
                });
            }
            for #acc in #accs {
                // Every key of the call has at least its first value.
                let #acc = #acc.ok_or_else(::weft_guest::__private::no_values)?;
                #results.push(#acc);
            }
            ::core::result::Result::Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expanded(kind: Kind, attr: &str, item: &str) -> String {
        let attr: TokenStream = attr.parse().expect("test attribute tokens");
        let item: TokenStream = item.parse().expect("test item tokens");
        expand(kind, attr, item).to_string()
    }

    #[test]
    fn a_valid_udf_keeps_the_function_and_adds_both_glues() {
        let out = expanded(
            Kind::FlatMap,
            "",
            "fn split(k: (), v: &[u8], out: &mut Emitter) {}",
        );
        assert!(out.starts_with("fn split"), "{out}");
        assert!(out.contains("\"weft_flat_map_split\""), "{out}");
        assert!(out.contains("target_arch = \"wasm32\""), "{out}");
        assert!(out.contains("native :: flat_map"), "{out}");
        assert!(out.contains("const __WEFT_NATIVE_split"), "{out}");
        assert!(!out.contains("compile_error"), "{out}");
    }

    /// A `reduce` of `Decimal`s (returned as is or in a `Result`) gets the combiner that holds its
    /// values decoded; any other `reduce` (other types, a key parameter, a different return type)
    /// the general one.
    #[test]
    fn a_reduce_of_decimals_gets_the_resident_combiner() {
        let resident = |item: &str| {
            let out = expanded(Kind::Reduce, "", item);
            assert!(!out.contains("compile_error"), "{out}");
            out.contains("ResidentFold")
        };
        assert!(resident(
            "fn sum(a: Decimal<u64>, b: Decimal<u64>) -> Result<Decimal<u64>, String> { a }"
        ));
        assert!(resident(
            "fn sum(a: weft_guest::Decimal<i32>, b: weft_guest::Decimal<i32>) -> weft_guest::Decimal<i32> { a }"
        ));
        assert!(!resident(
            "fn sum(a: Decimal<u64>, b: Decimal<u64>) -> Decimal<u32> { a }"
        ));
        assert!(!resident(
            "fn sum(a: Decimal<u64>, b: Decimal<u32>) -> Decimal<u64> { a }"
        ));
        assert!(!resident(
            "fn sum(k: &[u8], a: Decimal<u64>, b: Decimal<u64>) -> Decimal<u64> { a }"
        ));
        assert!(!resident("fn max(a: &[u8], b: &[u8]) -> Vec<u8> { a }"));
    }

    #[test]
    fn a_udf_whose_key_is_unit_states_it_in_the_custom_section() {
        let line = |kind, attr, item| {
            let out = expanded(kind, attr, item);
            out.contains("link_section = \"weft.udfs\"").then(|| {
                out.split("b\"")
                    .nth(1)
                    .unwrap()
                    .split('"')
                    .next()
                    .unwrap()
                    .to_owned()
            })
        };
        let unused = Some("1 up key=unused\\n".to_owned());
        assert_eq!(
            line(
                Kind::Map,
                "name = \"up\"",
                "fn f(_k: (), v: &[u8]) -> ((), u8) {}"
            ),
            unused
        );
        assert_eq!(
            line(
                Kind::Filter,
                "name = \"up\"",
                "fn f(_k: (()), v: ()) -> bool {}"
            ),
            unused
        );
        assert_eq!(
            line(
                Kind::FlatMap,
                "name = \"up\"",
                "fn f(_: (), v: (), o: &mut E) {}"
            ),
            unused
        );
        // A key that is read, a unit value, and the grouped kinds state nothing.
        assert_eq!(
            line(Kind::Map, "", "fn f(k: &[u8], v: ()) -> ((), u8) {}"),
            None
        );
        assert_eq!(
            line(Kind::Reduce, "", "fn f(k: (), a: u8, b: u8) -> u8 {}"),
            None
        );
        assert_eq!(
            line(
                Kind::GroupReduce,
                "",
                "fn f(k: (), v: Values<'_, u8>, o: &mut E) {}"
            ),
            None
        );
    }

    #[test]
    fn the_name_argument_renames_the_export() {
        let out = expanded(
            Kind::Map,
            "name = \"up\"",
            "fn upper(k: &[u8], v: &[u8]) -> (u8, u8) {}",
        );
        assert!(out.contains("\"weft_map_up\""), "{out}");
        // The native constant keeps the function's name, and carries the UDF's.
        assert!(out.contains("const __WEFT_NATIVE_upper"), "{out}");
        assert!(out.contains("name : \"up\""), "{out}");
    }

    #[test]
    fn mistakes_become_compile_errors_next_to_the_untouched_item() {
        for (kind, attr, item, message) in [
            (
                Kind::Map,
                "",
                "fn f(k: &[u8]) {}",
                "takes 2 parameters, not 1",
            ),
            (
                Kind::Reduce,
                "",
                "fn f(a: u8) {}",
                "takes 2 or 3 parameters, not 1",
            ),
            (
                Kind::Filter,
                "",
                "async fn f(k: (), v: ()) {}",
                "cannot be `async`",
            ),
            (
                Kind::Filter,
                "",
                "unsafe fn f(k: (), v: ()) {}",
                "cannot be `unsafe`",
            ),
            (
                Kind::Map,
                "",
                "fn f<T>(k: T, v: T) {}",
                "type or const parameters",
            ),
            (
                Kind::Map,
                "",
                "fn f<const N: usize>(k: (), v: ()) {}",
                "type or const parameters",
            ),
            (
                Kind::Map,
                "",
                "fn f(&self, k: (), v: ()) {}",
                "cannot take `self`",
            ),
            (
                Kind::Map,
                "",
                "fn f(k: (), v: &impl AsRef<[u8]>) {}",
                "`impl Trait` parameters",
            ),
            (
                Kind::Map,
                "nmae = \"x\"",
                "fn f(k: (), v: ()) {}",
                "unknown argument",
            ),
            (Kind::Map, "name", "fn f(k: (), v: ()) {}", "expected `=`"),
            (
                Kind::Map,
                "name = \"a-b\"",
                "fn f(k: (), v: ()) {}",
                "not a valid UDF name",
            ),
            (
                Kind::Map,
                "name = \"\"",
                "fn f(k: (), v: ()) {}",
                "not a valid UDF name",
            ),
            (
                Kind::Map,
                "name = \"a\", name = \"b\"",
                "fn f(k: (), v: ()) {}",
                "given twice",
            ),
            (
                Kind::Map,
                "",
                "fn größe(k: (), v: ()) {}",
                "not a valid UDF name",
            ),
            (
                Kind::GroupReduce,
                "",
                "struct S;",
                "applies to a free function",
            ),
        ] {
            let out = expanded(kind, attr, item);
            assert!(out.contains("compile_error"), "{item}: {out}");
            assert!(
                out.contains(message),
                "{item}: expected {message:?} in {out}"
            );
            assert!(!out.contains("export_name"), "{item}: {out}");
            assert!(!out.contains("__WEFT_NATIVE"), "{item}: {out}");
        }
    }

    #[test]
    fn every_mistake_is_reported_at_once() {
        let out = expanded(Kind::Filter, "name = \"a b\"", "async fn f<T>(k: T) {}");
        for message in [
            "not a valid UDF name",
            "`async`",
            "type or const",
            "takes 2 parameters",
        ] {
            assert!(out.contains(message), "expected {message:?} in {out}");
        }
    }
}
