//! The sandbox alone, per job: instantiate the `noop` handler, call it, drop the store.
//!
//! - `sque`: sque's own path (`Sandbox::run`: pooling allocator sized to the slots, epoch
//!   yields, limits, log capture, WASI with an empty context, the wasi:http allow-list).
//! - `plain`: the plain way, for comparison: wasmtime's default pooling config, WASI and the
//!   log import, a sync call, the store dropped inline.
//! - `reused`: one instance called again and again: the floor, not a sandbox per job.
//!
//! `cargo bench -p sque-host --bench sandbox`

use criterion::{criterion_group, criterion_main, Criterion};
use sque_host::sandbox::{Grants, Handler, JobInput, Limits, Outcome, Sandbox, SandboxConfig};

mod plain {
    use wasmtime::component::{HasSelf, Linker, ResourceTable};
    use wasmtime::{Config, Engine, InstanceAllocationStrategy, Store};
    use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

    wasmtime::component::bindgen!({
        world: "handler",
        path: "wit",
        with: {
            "wasi:cli": wasmtime_wasi::p2::bindings::sync::cli,
            "wasi:io": wasmtime_wasi::p2::bindings::sync::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::sync::clocks,
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
        },
    });

    pub struct State {
        wasi: WasiCtx,
        table: ResourceTable,
    }

    impl WasiView for State {
        fn ctx(&mut self) -> WasiCtxView<'_> {
            WasiCtxView {
                ctx: &mut self.wasi,
                table: &mut self.table,
            }
        }
    }

    impl self::sque::handler::types::Host for State {}

    impl self::sque::handler::log::Host for State {
        fn log(&mut self, _: self::sque::handler::log::Level, _: String) {}

        fn enabled(&mut self, _: self::sque::handler::log::Level) -> bool {
            false
        }
    }

    pub struct Plain {
        pub engine: Engine,
        pub pre: HandlerPre<State>,
    }

    impl Plain {
        pub fn new(wasm: &std::path::Path) -> Plain {
            let mut config = Config::new();
            config.allocation_strategy(InstanceAllocationStrategy::pooling());
            let engine = Engine::new(&config).unwrap();
            let mut linker = Linker::new(&engine);
            wasmtime_wasi::p2::add_to_linker_sync(&mut linker).unwrap();
            // What `noop` imports of the world: the types and the log.
            self::sque::handler::types::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s)
                .unwrap();
            self::sque::handler::log::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s)
                .unwrap();
            let component = wasmtime::component::Component::from_file(&engine, wasm).unwrap();
            let pre = HandlerPre::new(linker.instantiate_pre(&component).unwrap()).unwrap();
            Plain { engine, pre }
        }

        pub fn store(&self) -> Store<State> {
            Store::new(
                &self.engine,
                State {
                    wasi: WasiCtx::builder().build(),
                    table: ResourceTable::new(),
                },
            )
        }

        /// Fresh store and instance, one call, store dropped.
        pub fn run_fresh(&self, job: &Job) {
            let mut store = self.store();
            let instance = self.pre.instantiate(&mut store).unwrap();
            let out = instance.call_handle(&mut store, job).unwrap();
            assert!(out.is_ok());
        }
    }
}

fn job() -> JobInput {
    JobInput {
        id: "1".into(),
        queue: "bench".into(),
        attempt: 1,
        data: r#"{"email":"test1@mail.org"}"#.into(),
        progress: None,
    }
}

fn sandbox(c: &mut Criterion) {
    let noop = sque_testing::guests::guest("noop");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let sandbox = Sandbox::new(SandboxConfig {
        slots: 16,
        limits: Limits::default(),
        grants: Grants::default(),
        cache_dir: None,
        trust_precompiled: false,
    })
    .unwrap();
    let handler = std::sync::Arc::new(Handler::load(&sandbox, &noop).unwrap());
    let plain = plain::Plain::new(&noop);
    let plain_job = plain::Job {
        id: "1".into(),
        queue: "bench".into(),
        attempt: 1,
        data: r#"{"email":"test1@mail.org"}"#.into(),
    };

    let mut group = c.benchmark_group("sandbox per job");
    group.bench_function("sque: fresh instance, call, teardown", |b| {
        b.to_async(&runtime).iter(|| async {
            let out = sandbox.run(&handler, job()).await;
            assert_eq!(out, Outcome::Completed(None, Vec::new()));
        })
    });
    group.bench_function(
        "plain: default pooling, fresh instance, call, teardown",
        |b| b.iter(|| plain.run_fresh(&plain_job)),
    );
    group.bench_function("reused instance: call only (the floor)", |b| {
        let mut store = plain.store();
        let instance = plain.pre.instantiate(&mut store).unwrap();
        b.iter(|| {
            let out = instance.call_handle(&mut store, &plain_job).unwrap();
            assert!(out.is_ok());
        })
    });
    group.finish();
}

criterion_group!(benches, sandbox);
criterion_main!(benches);
