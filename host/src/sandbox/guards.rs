//! Host functions replaced in the linker, where the WASI implementations have no limit or
//! hook of their own:
//!
//! - `wasi:http` fields (`new`, `from-list`, `set`, `append`, `clone`): headers live in the
//!   host's memory, so every byte of them a job creates is counted against
//!   [`MAX_HTTP_FIELD_BYTES`] (a clone counts as the copy it becomes once written to), and
//!   past it the job ends with a reason; wasmtime's own limit is per `fields`, so ten
//!   thousand of them could hold over a gigabyte;
//! - `wasi:sockets` name lookups: refused, as without the replacement, but logged (once per
//!   job, then counted) like the other denials.

use wasmtime::component::{Linker, Resource, Val};
use wasmtime::StoreContextMut;
use wasmtime_wasi_http::p2::bindings::http::types::{HeaderError, HostFields};
use wasmtime_wasi_http::p2::HeaderResult;
use wasmtime_wasi_http::{FieldMap, WasiHttpView};

use crate::sandbox::limits::MAX_HTTP_FIELD_BYTES;
use crate::sandbox::output::Denied;
use crate::sandbox::state::State;

/// The interfaces replaced, in the versions wasmtime 48 links (guests importing an older
/// 0.2.x are linked to these too).
const HTTP_TYPES: &str = "wasi:http/types@0.2.12";
const NAME_LOOKUP: &str = "wasi:sockets/ip-name-lookup@0.2.12";

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

/// A `header-error` for the guest, or a trap.
fn answer<T>(result: HeaderResult<T>) -> wasmtime::Result<(Result<T, HeaderError>,)> {
    match result {
        Ok(value) => Ok((Ok(value),)),
        Err(e) => Ok((Err(e.downcast()?),)),
    }
}
