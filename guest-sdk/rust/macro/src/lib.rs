//! `#[sque_guest::handler]`: turns `fn name(job: Job) -> Result<T, Error>` into the export of
//! the `sque:handler` world. Use it through the `sque-guest` crate, which re-exports it.

use proc_macro::TokenStream;
use quote::quote;
use syn::{parse_macro_input, ItemFn};

#[proc_macro_attribute]
pub fn handler(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        return syn::Error::new(
            proc_macro2::Span::call_site(),
            "#[handler] takes no arguments",
        )
        .to_compile_error()
        .into();
    }
    let func = parse_macro_input!(item as ItemFn);
    let name = &func.sig.ident;
    if func.sig.inputs.len() != 1 || func.sig.asyncness.is_some() {
        return syn::Error::new_spanned(
            &func.sig,
            "a handler is `fn name(job: sque_guest::Job) -> Result<T, sque_guest::Error>` (T: Serialize, or ())",
        )
        .to_compile_error()
        .into();
    }
    quote! {
        #func

        #[doc(hidden)]
        struct __SqueHandler;

        impl ::sque_guest::__bindings::Guest for __SqueHandler {
            fn handle(
                job: ::sque_guest::__bindings::Job,
            ) -> ::core::result::Result<
                ::core::option::Option<::std::string::String>,
                ::sque_guest::__bindings::Error,
            > {
                ::sque_guest::__run(job, #name)
            }
        }

        ::sque_guest::__export!(__SqueHandler);
    }
    .into()
}
