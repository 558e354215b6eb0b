//! The attribute's argument: the service's lifetime.

use proc_macro2::{Span, TokenStream};
use quote::quote_spanned;
use syn::Path;
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;

const LIFETIMES: [&str; 3] = ["App", "Request", "Transient"];

/// `App`, `Request` or `Transient` (or a path ending in one, such as
/// `provision::Request`), kept with the span the user wrote it at so that a
/// lifetime error points at the attribute.
pub(crate) struct LifetimeArg {
    name: syn::Ident,
    span: Span,
}

impl LifetimeArg {
    /// The `provision` lifetime type, as the generated `type Lifetime`.
    pub(crate) fn to_type(&self) -> TokenStream {
        let name = &self.name;
        quote_spanned!(self.span=> ::provision::#name)
    }
}

impl Parse for LifetimeArg {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if input.is_empty() {
            return Err(syn::Error::new(
                Span::call_site(),
                "a service needs a lifetime: write `#[provide(App)]`, `#[provide(Request)]` or `#[provide(Transient)]`",
            ));
        }
        let path: Path = input.parse().map_err(|error| {
            syn::Error::new(
                error.span(),
                "expected the service's lifetime: `App`, `Request` or `Transient`",
            )
        })?;
        let name = path
            .segments
            .last()
            .filter(|segment| segment.arguments.is_none())
            .map(|segment| segment.ident.clone())
            .filter(|ident| LIFETIMES.iter().any(|l| ident == l));
        let Some(name) = name else {
            return Err(syn::Error::new_spanned(
                &path,
                format!(
                    "unknown lifetime `{}`: a service lives for the `App` (built once at startup), one `Request`, or is `Transient` (built for each use)",
                    quote::ToTokens::to_token_stream(&path)
                        .to_string()
                        .replace(' ', "")
                ),
            ));
        };
        if !input.is_empty() {
            return Err(input.error(
                "`#[provide]` takes one argument, the lifetime: the dependencies are `build`'s parameters",
            ));
        }
        Ok(LifetimeArg {
            name,
            span: path.span(),
        })
    }
}
