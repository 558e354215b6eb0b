//! The `#[provide]` attribute of [provision](https://docs.rs/provision):
//! a service's lifetime said once, its dependencies said once (as `build`'s
//! parameters), release beside build.
//!
//! Use it through `provision` (`#[provision::provide(Request)]`, feature
//! `macros`, on by default) rather than depending on this crate.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod lifetime;
mod steps;

use proc_macro::TokenStream;
use proc_macro2::{Delimiter, Group};
use quote::quote;
use syn::Item;

use lifetime::LifetimeArg;
use steps::Steps;

/// Implements `provision::Provide` from an `impl` block holding the
/// service's steps: `build` (required), `settle` and `release`.
///
/// The argument is the lifetime (`App`, `Request` or `Transient`).
/// `build`'s parameters are the dependencies, each a `Dep<T>`: the
/// attribute reads `type Deps` from them and hands `build` the handles as
/// its parameters, so the list is written once. The steps are otherwise
/// the trait's, unchanged: the generated `build` is the function written,
/// with its parameters gathered into the tuple the trait passes, so it
/// compiles to the same future as a hand-written `impl Provide`.
///
/// ```
/// use provision::{Dep, Error, Exit, provide};
///
/// struct Pool;
/// #[provide(App)]
/// impl Pool {
///     async fn build() -> Result<Self, Error> { Ok(Pool) }
/// }
///
/// struct Conn { pool: Dep<Pool> }
/// #[provide(Request)]
/// impl Conn {
///     async fn build(pool: Dep<Pool>) -> Result<Self, Error> { Ok(Conn { pool }) }
///     async fn release(self, exit: Exit) -> Result<(), Error> { Ok(()) }
/// }
/// ```
///
/// expands to
///
/// ```
/// # use provision::{App, Dep, Error, Exit, Request, Provide};
/// # struct Pool;
/// # provision::supplied!(Pool);
/// # struct Conn { pool: Dep<Pool> }
/// impl Provide for Conn {
///     type Lifetime = Request;
///     type Deps = (Pool,);
///     async fn build((pool,): (Dep<Pool>,)) -> Result<Self, Error> { Ok(Conn { pool }) }
///     async fn release(self, exit: Exit) -> Result<(), Error> { Ok(()) }
/// }
/// ```
///
/// The compiler's two promises hold through it: a `Dep<T>` parameter for a
/// `T` that nothing provides, and an `App` service with a `Dep` on a
/// `Request` service, are refused with the same messages as without it,
/// pointing at the parameter. Any other method, a `build` that takes `self`
/// or a parameter that is not a `Dep<T>`, and a `settle` not on `&self` or a
/// `release` not on `self` are refused by the attribute, naming the item.
#[proc_macro_attribute]
pub fn provide(args: TokenStream, item: TokenStream) -> TokenStream {
    let written = item.clone();
    let expanded = syn::parse::<LifetimeArg>(args).and_then(|lifetime| {
        let item = syn::parse::<Item>(item)?;
        expand(&lifetime, item)
    });
    match expanded {
        Ok(expanded) => expanded.into(),
        Err(error) => {
            let error = error.into_compile_error();
            let kept = keep_as_written(written);
            quote!(#error #kept).into()
        }
    }
}

/// The item as written, beside an error, so the user sees that one mistake
/// rather than a cascade of unused imports and missing methods from an item
/// that vanished. An inherent `impl` keeps only its methods: an associated
/// type or constant in it would add an error of its own.
fn keep_as_written(item: TokenStream) -> proc_macro2::TokenStream {
    match syn::parse::<Item>(item.clone()) {
        Ok(Item::Impl(mut block)) if block.trait_.is_none() => {
            block.items.retain(|i| matches!(i, syn::ImplItem::Fn(_)));
            quote!(#block)
        }
        _ => item.into(),
    }
}

fn expand(lifetime: &LifetimeArg, item: Item) -> syn::Result<proc_macro2::TokenStream> {
    let mut item = match item {
        Item::Impl(item) => item,
        other => {
            return Err(syn::Error::new_spanned(
                &other,
                "`#[provide]` goes on the service's `impl` block: `#[provide(Request)] impl Conn { async fn build(...) -> Result<Self, Error> { ... } }`",
            ));
        }
    };
    if let Some((_, path, _)) = &item.trait_ {
        return Err(syn::Error::new_spanned(
            path,
            "`#[provide]` writes the `impl Provide` itself: put it on `impl Conn { ... }`, not on a trait impl",
        ));
    }
    let steps = Steps::take(&mut item)?;
    let lifetime = lifetime.to_type();
    let services = &steps.build.services;
    // The dependency list takes the span of `build`'s parameter list, so a
    // dependency the compiler refuses (no provider, or a request service
    // under an app service) is reported there, where the user wrote it.
    let mut deps = Group::new(Delimiter::Parenthesis, quote!(#(#services,)*));
    deps.set_span(steps.build.method.sig.paren_token.span.join());
    let build = steps.build.to_trait_method();
    let others = &steps.others;
    let attrs = &item.attrs;
    let (impl_generics, _, where_clause) = item.generics.split_for_impl();
    let self_ty = &item.self_ty;
    Ok(quote! {
        #(#attrs)*
        impl #impl_generics ::provision::Provide for #self_ty #where_clause {
            type Lifetime = #lifetime;
            type Deps = #deps;
            #build
            #(#others)*
        }
    })
}
