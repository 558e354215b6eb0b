//! The fetch event's request as an `http::Request`, without the JavaScript
//! exception workers-rs's own conversion throws in local workerd.
//!
//! workers-rs (0.8) reads `request.cf.httpProtocol` through a binding that
//! expects a string. Local workerd's `cf` is a frozen `{clientIp}` with no
//! `httpProtocol`, so that binding throws a `TypeError` inside its glue,
//! which is caught and turned into the default `HTTP/1.1`: one JavaScript
//! exception thrown and caught per request. This conversion reads the field
//! with `Reflect.get` and checks its type instead, and keeps what handlers
//! can read from workers-rs's: the URI, method, headers, body, version, the
//! `cf` properties (`worker::Cf` in the extensions) and the `AbortSignal`.
//! Not the redirect mode: workers-rs keeps it in a type of a private
//! module, which only its own `request_to_wasm` reads, when a handler sends
//! the incoming request on with `fetch`; it then follows redirects, the
//! mode an incoming request has anyway.

use std::any::{Any, TypeId};

use http::{HeaderName, HeaderValue, Version};
use wasm_bindgen::JsValue;
use worker::web_sys;
use worker::worker_sys::IncomingRequestCfProperties;
use worker::worker_sys::ext::RequestExt;
use worker::{AbortSignal, Body, Cf, FromRequest, HttpRequest};

/// `Req` from the event's request: for [`HttpRequest`] this module's
/// conversion, for any other type workers-rs's own.
pub(crate) fn convert<Req: FromRequest + 'static>(
    request: web_sys::Request,
) -> Result<Req, Box<dyn std::error::Error>> {
    if TypeId::of::<Req>() != TypeId::of::<HttpRequest>() {
        return Req::from_raw(request).map_err(Into::into);
    }
    let converted: Box<dyn Any> = Box::new(http_request(request)?);
    Ok(*converted
        .downcast::<Req>()
        .expect("Req is HttpRequest, checked above"))
}

/// The conversion itself.
pub(crate) fn http_request(request: web_sys::Request) -> worker::Result<HttpRequest> {
    let mut builder = http::Request::builder()
        .uri(request.url())
        .method(&*request.method())
        .extension(AbortSignal::from(request.signal()));
    if let Some(headers) = builder.headers_mut() {
        // `Headers.entries()` yields `[name, value]` string pairs.
        let entries = js_sys::try_iter(&request.headers().entries())
            .map_err(worker::Error::from)?
            .into_iter()
            .flatten();
        for entry in entries {
            let pair = js_sys::Array::from(&entry?);
            let (Some(name), Some(value)) = (pair.get(0).as_string(), pair.get(1).as_string())
            else {
                continue;
            };
            headers.append(
                HeaderName::from_bytes(name.as_bytes())?,
                HeaderValue::from_str(&value)?,
            );
        }
    }
    let cf: Option<IncomingRequestCfProperties> = RequestExt::cf(&request);
    if let Some(cf) = cf {
        let protocol = js_sys::Reflect::get(cf.as_ref(), &JsValue::from_str("httpProtocol"))
            .ok()
            .and_then(|value| value.as_string());
        builder = builder
            .version(version(protocol.as_deref()))
            .extension(Cf::from(cf));
    }
    let body = match request.body() {
        Some(stream) => Body::new(stream),
        None => Body::empty(),
    };
    Ok(builder.body(body)?)
}

/// The version `cf.httpProtocol` names; HTTP/1.1 when it names none (what
/// workers-rs falls back to as well).
fn version(protocol: Option<&str>) -> Version {
    match protocol {
        Some("HTTP/0.9") => Version::HTTP_09,
        Some("HTTP/1.0") => Version::HTTP_10,
        Some("HTTP/2") => Version::HTTP_2,
        Some("HTTP/3") => Version::HTTP_3,
        _ => Version::HTTP_11,
    }
}
