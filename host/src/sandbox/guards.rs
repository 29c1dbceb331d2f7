//! Host functions replaced in the linker, where the WASI implementations have no limit or
//! hook of their own:
//!
//! - `wasi:http` fields (`new`, `from-list`, `set`, `append`, `clone`): headers live in the
//!   host's memory, so every byte of them a job creates is counted against
//!   [`MAX_HTTP_FIELD_BYTES`] (a clone counts as the copy it becomes once written to), and
//!   past it the job ends with a reason; wasmtime's own limit is per `fields`, so ten
//!   thousand of them could hold over a gigabyte;
//! - `wasi:http` outgoing bodies (`outgoing-request.body`, `outgoing-response.body`): what a
//!   guest writes to one waits in the host's memory until the request is sent, if ever, so
//!   an instance may create [`MAX_HTTP_BODIES`] in all (each buffering at most two writes of
//!   `HTTP_BODY_CHUNK_BYTES`, `http.rs`), and past it the job ends with a reason;
//! - `wasi:sockets`: creating a TCP or UDP socket, and name lookups, are refused, as without
//!   the replacement, but logged (once per job, then counted) like the other denials. (Sockets
//!   are refused when made, not when used: a socket made holds one of the host's file
//!   descriptors, and ten thousand of them would leave none for Redis.)

use wasmtime::component::{Linker, Resource, Val};
use wasmtime::StoreContextMut;
use wasmtime_wasi_http::p2::bindings::http::types::{
    HeaderError, HostFields, HostOutgoingRequest, HostOutgoingResponse,
};
use wasmtime_wasi_http::p2::types::{
    HostOutgoingRequest as OutgoingRequest, HostOutgoingResponse as OutgoingResponse,
};
use wasmtime_wasi_http::p2::HeaderResult;
use wasmtime_wasi_http::{FieldMap, WasiHttpView};

use crate::sandbox::limits::{MAX_HTTP_BODIES, MAX_HTTP_FIELD_BYTES};
use crate::sandbox::output::Denied;
use crate::sandbox::state::State;

/// The interfaces replaced, in the versions wasmtime 48 links (guests importing an older
/// 0.2.x are linked to these too).
const HTTP_TYPES: &str = "wasi:http/types@0.2.12";
const NAME_LOOKUP: &str = "wasi:sockets/ip-name-lookup@0.2.12";
const TCP_CREATE: &str = "wasi:sockets/tcp-create-socket@0.2.12";
const UDP_CREATE: &str = "wasi:sockets/udp-create-socket@0.2.12";

/// What one header entry costs besides its bytes (the map's own bookkeeping).
const PER_ENTRY: usize = 32;

pub(crate) fn install(linker: &mut Linker<State>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut http = linker.instance(HTTP_TYPES)?;
    http.func_wrap(
        "[static]fields.from-list",
        |mut store: StoreContextMut<'_, State>, (entries,): (Vec<(String, Vec<u8>)>,)| {
            let bytes = entries
                .iter()
                .map(|(n, v)| n.len() + v.len() + PER_ENTRY)
                .sum();
            spend(store.data_mut(), bytes)?;
            answer(HostFields::from_list(&mut store.data_mut().http(), entries))
        },
    )?;
    http.func_wrap(
        "[method]fields.set",
        |mut store: StoreContextMut<'_, State>,
         (fields, name, values): (Resource<FieldMap>, String, Vec<Vec<u8>>)| {
            let bytes = values
                .iter()
                .map(|v| name.len() + v.len() + PER_ENTRY)
                .sum();
            spend(store.data_mut(), bytes)?;
            answer(HostFields::set(
                &mut store.data_mut().http(),
                fields,
                name,
                values,
            ))
        },
    )?;
    http.func_wrap(
        "[method]fields.append",
        |mut store: StoreContextMut<'_, State>,
         (fields, name, value): (Resource<FieldMap>, String, Vec<u8>)| {
            spend(store.data_mut(), name.len() + value.len() + PER_ENTRY)?;
            answer(HostFields::append(
                &mut store.data_mut().http(),
                fields,
                name,
                value,
            ))
        },
    )?;
    http.func_wrap(
        "[method]fields.clone",
        |mut store: StoreContextMut<'_, State>, (fields,): (Resource<FieldMap>,)| {
            let mut view = store.data_mut().http();
            let source = Resource::<FieldMap>::new_borrow(fields.rep());
            let bytes: usize = HostFields::entries(&mut view, source)?
                .iter()
                .map(|(n, v)| n.len() + v.len() + PER_ENTRY)
                .sum();
            spend(store.data_mut(), bytes + PER_ENTRY)?;
            Ok((HostFields::clone(&mut store.data_mut().http(), fields)?,))
        },
    )?;
    http.func_wrap(
        "[method]outgoing-request.body",
        |mut store: StoreContextMut<'_, State>, (request,): (Resource<OutgoingRequest>,)| {
            spend_body(store.data_mut())?;
            Ok((HostOutgoingRequest::body(
                &mut store.data_mut().http(),
                request,
            )?,))
        },
    )?;
    http.func_wrap(
        "[method]outgoing-response.body",
        |mut store: StoreContextMut<'_, State>, (response,): (Resource<OutgoingResponse>,)| {
            spend_body(store.data_mut())?;
            Ok((HostOutgoingResponse::body(
                &mut store.data_mut().http(),
                response,
            )?,))
        },
    )?;
    for (interface, function, kind) in [
        (TCP_CREATE, "create-tcp-socket", Denied::Tcp),
        (UDP_CREATE, "create-udp-socket", Denied::Udp),
    ] {
        linker.instance(interface)?.func_new(
            function,
            move |mut store, _ty, params, results| {
                let family = match params.first() {
                    Some(Val::Enum(family)) => family.clone(),
                    _ => String::new(),
                };
                store
                    .data_mut()
                    .log
                    .denied(kind, &format!("any {family} address"));
                results[0] = Val::Result(Err(Some(Box::new(Val::Enum("access-denied".into())))));
                Ok(())
            },
        )?;
    }
    let mut lookup = linker.instance(NAME_LOOKUP)?;
    lookup.func_new_async("resolve-addresses", |mut store, _ty, params, results| {
        Box::new(async move {
            // The network handle is only borrowed for the call: give it back.
            if let Some(Val::Resource(network)) = params.first() {
                network.resource_drop_async(&mut store).await?;
            }
            let name = match params.get(1) {
                Some(Val::String(name)) => name.clone(),
                _ => String::new(),
            };
            store.data_mut().log.denied(Denied::NameLookup, &name);
            results[0] = Val::Result(Err(Some(Box::new(Val::Enum("access-denied".into())))));
            Ok(())
        })
    })?;
    linker.allow_shadowing(false);
    Ok(())
}

/// Counts `bytes` of headers against the job's budget; past it, the call fails and the job
/// ends with the reason.
fn spend(state: &mut State, bytes: usize) -> wasmtime::Result<()> {
    match state.http_field_bytes_left.checked_sub(bytes) {
        Some(left) => {
            state.http_field_bytes_left = left;
            Ok(())
        }
        None => {
            let what = format!(
                "the guest created more than {} MiB of HTTP headers (wasi:http fields), which live in the host's memory",
                MAX_HTTP_FIELD_BYTES >> 20
            );
            state.resource_limit_hit = Some(what.clone());
            Err(wasmtime::format_err!("{what}"))
        }
    }
}

/// Counts one outgoing body against the instance's [`MAX_HTTP_BODIES`]; past it, the call
/// fails and the job ends with the reason.
fn spend_body(state: &mut State) -> wasmtime::Result<()> {
    match state.http_bodies_left.checked_sub(1) {
        Some(left) => {
            state.http_bodies_left = left;
            Ok(())
        }
        None => {
            let what = format!(
                "the guest created more than {MAX_HTTP_BODIES} outgoing HTTP bodies (wasi:http), which are buffered in the host's memory"
            );
            state.resource_limit_hit = Some(what.clone());
            Err(wasmtime::format_err!("{what}"))
        }
    }
}

/// A `header-error` for the guest, or a trap.
fn answer<T>(result: HeaderResult<T>) -> wasmtime::Result<(Result<T, HeaderError>,)> {
    match result {
        Ok(value) => Ok((Ok(value),)),
        Err(e) => Ok((Err(e.downcast()?),)),
    }
}
