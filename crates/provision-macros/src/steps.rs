//! The methods of a `#[provide]` block, checked one by one: `build` (whose
//! parameters are the dependencies), `settle` and `release`.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};
use syn::{FnArg, GenericArgument, ImplItem, ImplItemFn, ItemImpl, PathArguments, Type};

/// The steps of one service, checked.
pub(crate) struct Steps {
    pub(crate) build: Build,
    /// `settle` and `release`, as written (their signatures checked).
    pub(crate) others: Vec<ImplItemFn>,
}

/// `build`, with its parameters split into patterns and dependency handles.
pub(crate) struct Build {
    pub(crate) method: ImplItemFn,
    /// Each parameter's pattern, as written (`db`, `mut db`, `Dep(db)`).
    pub(crate) patterns: Vec<TokenStream>,
    /// Each parameter's type, as written: `Dep<Db>`.
    pub(crate) handles: Vec<TokenStream>,
    /// The `T` of each `Dep<T>`: the dependency list.
    pub(crate) services: Vec<TokenStream>,
}

impl Steps {
    /// Takes the methods out of `item`, collecting every mistake rather than
    /// stopping at the first, so that a user sees them all in one build.
    pub(crate) fn take(item: &mut ItemImpl) -> syn::Result<Steps> {
        let mut errors: Option<syn::Error> = None;
        let mut build = None;
        let mut saw_build = false;
        let mut others = Vec::new();
        for member in std::mem::take(&mut item.items) {
            let mut method = match member {
                ImplItem::Fn(method) => method,
                ImplItem::Type(ty) if ty.ident == "Lifetime" || ty.ident == "Deps" => {
                    combine(
                        &mut errors,
                        syn::Error::new_spanned(
                            &ty,
                            format!(
                                "`#[provide]` writes `type {}` itself: the lifetime from its argument, the dependencies from `build`'s parameters; remove this line",
                                ty.ident
                            ),
                        ),
                    );
                    continue;
                }
                other => {
                    combine(
                        &mut errors,
                        syn::Error::new_spanned(
                            &other,
                            "a `#[provide]` block holds only the service's steps: `build`, `settle` and `release`; move this to a separate `impl` block",
                        ),
                    );
                    continue;
                }
            };
            // The steps implement a trait: they have no visibility of their
            // own, and a habitual `pub` is no mistake worth an error.
            method.vis = syn::Visibility::Inherited;
            let name = method.sig.ident.to_string();
            saw_build |= name == "build";
            let checked = match name.as_str() {
                "build" => Build::check(method).map(|b| build = Some(b)),
                "settle" => check_settle(&method).map(|()| others.push(method)),
                "release" => check_release(&method).map(|()| others.push(method)),
                _ => Err(syn::Error::new(
                    method.sig.ident.span(),
                    format!(
                        "`{name}` is not a step of a service: a `#[provide]` block holds only `build`, `settle` and `release`; move `{name}` to a separate `impl` block"
                    ),
                )),
            };
            if let Err(error) = checked {
                combine(&mut errors, error);
            }
        }
        if !saw_build {
            combine(
                &mut errors,
                syn::Error::new_spanned(
                    &item.self_ty,
                    "missing `build`: a service is made by `async fn build(dep: Dep<T>, ...) -> Result<Self, Error>`, whose parameters are the services it is built from",
                ),
            );
        }
        match (errors, build) {
            (Some(errors), _) => Err(errors),
            (None, Some(build)) => Ok(Steps { build, others }),
            (None, None) => unreachable!("a missing build is an error"),
        }
    }
}

impl Build {
    fn check(method: ImplItemFn) -> syn::Result<Build> {
        let mut patterns = Vec::new();
        let mut handles = Vec::new();
        let mut services = Vec::new();
        let mut errors: Option<syn::Error> = None;
        for input in &method.sig.inputs {
            let typed = match input {
                FnArg::Receiver(receiver) => {
                    let error = syn::Error::new_spanned(
                        receiver,
                        "`build` makes the service, so it takes no `self`: its parameters are the services it is built from, each a `Dep<T>`",
                    );
                    combine(&mut errors, error);
                    continue;
                }
                FnArg::Typed(typed) => typed,
            };
            if let Some(attr) = typed.attrs.first() {
                let error = syn::Error::new_spanned(
                    attr,
                    "attributes on `build`'s parameters are not supported: the parameters become one tuple",
                );
                combine(&mut errors, error);
                continue;
            }
            match dep_target(&typed.ty) {
                Some(service) => {
                    patterns.push(typed.pat.to_token_stream());
                    handles.push(typed.ty.to_token_stream());
                    services.push(service.to_token_stream());
                }
                None => {
                    let error = syn::Error::new_spanned(
                        &typed.ty,
                        format!(
                            "a `build` parameter is a dependency, a `Dep<T>` handle to another service; `{}` is not one. For a value made before startup, write `provision::supplied!(T)` and take `Dep<T>`",
                            typed
                                .ty
                                .to_token_stream()
                                .to_string()
                                .replace(" < ", "<")
                                .replace(" >", ">")
                        ),
                    );
                    combine(&mut errors, error);
                }
            }
        }
        match errors {
            Some(errors) => Err(errors),
            None => Ok(Build {
                method,
                patterns,
                handles,
                services,
            }),
        }
    }

    /// `build` as the trait wants it: one parameter, the tuple of handles,
    /// destructured into the user's own patterns. The body and the return
    /// type are the user's, so the future is the one they wrote.
    pub(crate) fn to_trait_method(&self) -> TokenStream {
        let Build {
            method,
            patterns,
            handles,
            ..
        } = self;
        let attrs = &method.attrs;
        let sig = &method.sig;
        let (constness, asyncness, unsafety, fn_token, ident, generics, output) = (
            &sig.constness,
            &sig.asyncness,
            &sig.unsafety,
            &sig.fn_token,
            &sig.ident,
            &sig.generics,
            &sig.output,
        );
        let where_clause = &generics.where_clause;
        let body = &method.block;
        let input = if patterns.is_empty() {
            quote!(_: ())
        } else {
            quote!((#(#patterns,)*): (#(#handles,)*))
        };
        quote! {
            #(#attrs)*
            #constness #asyncness #unsafety #fn_token #ident #generics (#input) #output #where_clause
            #body
        }
    }
}

fn combine(errors: &mut Option<syn::Error>, error: syn::Error) {
    match errors {
        Some(all) => all.combine(error),
        None => *errors = Some(error),
    }
}

/// The `T` of a `Dep<T>` (also written `provision::Dep<T>`).
fn dep_target(ty: &Type) -> Option<&Type> {
    let Type::Path(path) = ty else { return None };
    if path.qself.is_some() {
        return None;
    }
    let last = path.path.segments.last()?;
    if last.ident != "Dep" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.iter().collect::<Vec<_>>().as_slice() {
        [GenericArgument::Type(target)] => Some(target),
        _ => None,
    }
}

/// The arguments besides the receiver must be exactly one: the `Exit`.
fn check_exit_argument(method: &ImplItemFn, receiver: &str) -> syn::Result<()> {
    let others = method
        .sig
        .inputs
        .iter()
        .filter(|input| matches!(input, FnArg::Typed(_)))
        .count();
    if others == 1 {
        return Ok(());
    }
    let name = &method.sig.ident;
    Err(syn::Error::new_spanned(
        &method.sig.inputs,
        format!(
            "`{name}` takes `{receiver}` and one argument, how the request ended: `{name}({receiver}, exit: Exit)`"
        ),
    ))
}

fn check_settle(method: &ImplItemFn) -> syn::Result<()> {
    match method.sig.receiver() {
        None => Err(syn::Error::new(
            method.sig.ident.span(),
            "`settle` runs on the built service: `async fn settle(&self, exit: Exit) -> Result<(), Error>`",
        )),
        Some(receiver) if receiver.reference.is_none() => Err(syn::Error::new_spanned(
            receiver,
            "`settle` takes `&self`: the response it settles may still hold the service; `release(self, exit)` is the step that takes it by value",
        )),
        Some(receiver) if receiver.mutability.is_some() || receiver.colon_token.is_some() => {
            Err(syn::Error::new_spanned(
                receiver,
                "`settle` takes `&self`, not `&mut self`: when it runs, a streaming response body or a task may still hold `Dep` handles to this service, so it cannot have it alone (and must not skip the commit because of them); keep what `settle` changes behind the handle that already synchronises it, such as the connection",
            ))
        }
        Some(_) => check_exit_argument(method, "&self"),
    }
}

fn check_release(method: &ImplItemFn) -> syn::Result<()> {
    match method.sig.receiver() {
        None => Err(syn::Error::new(
            method.sig.ident.span(),
            "`release` consumes the built service: `async fn release(self, exit: Exit) -> Result<(), Error>`",
        )),
        Some(receiver) if receiver.reference.is_some() || receiver.colon_token.is_some() => {
            Err(syn::Error::new_spanned(
                receiver,
                "`release` takes the service by value (`self`): it runs once nothing else holds it, so it can close, give back or consume what the service owns",
            ))
        }
        Some(_) => check_exit_argument(method, "self"),
    }
}
