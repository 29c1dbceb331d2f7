//! `sque-host check FILE`: is this a handler this host can run, which world does it target,
//! what is it made of (core instances, memory at start) and which capabilities does it
//! import? Exit 0 when it is, 2 (with the reason) when it is not. It compiles through the
//! module cache `run` uses, so a check warms the cache for the host that follows.
//!
//! `sque-host check sque.toml`: is this a file `run --config` can serve: every key known and
//! well formed, every grant valid, every handler loadable within its queue's limits? Every
//! problem is said, one line each, with exit 2.

use std::path::PathBuf;
use std::sync::Arc;

use crate::cli::common::{one_line, parse_memory_limit, usage};
use crate::cli::native_code::{load, NativeCodeArgs};
use crate::config::{self, QueueSpec};
use crate::pool::Order;
use crate::sandbox::{EngineConfig, Grants, GuestEngine, Limits, Sandbox, SandboxConfig, Shape};
use crate::serving;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The component to check (.wasm, or a .cwasm with --trust-precompiled), or a config
    /// file of queues (.toml, as `run --config` takes).
    file: PathBuf,

    /// Print a JSON object instead of text.
    #[arg(long)]
    json: bool,

    /// Check against this linear-memory limit, as `run --max-memory` would.
    #[arg(long, env = "SQUE_MAX_MEMORY", default_value = "64MiB", value_parser = parse_memory_limit)]
    max_memory: usize,

    #[command(flatten)]
    native: NativeCodeArgs,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    if args.file.extension().is_some_and(|e| e == "toml") {
        return check_config(&args).await;
    }
    let sandbox = Arc::new(Sandbox::new(SandboxConfig {
        slots: 1,
        limits: Limits {
            max_memory: args.max_memory,
            ..Limits::default()
        },
        grants: Grants::default(),
        cache_dir: args.native.cache_dir(),
        trust_precompiled: args.native.trust_precompiled,
    })?);
    let handler = load(&sandbox, &args.file).await?;
    let caps: Vec<String> = handler
        .capabilities()
        .iter()
        .map(|c| c.to_string())
        .collect();
    let shape = handler.shape();
    if args.json {
        let out = serde_json::json!({
            "file": args.file.display().to_string(),
            "handler": true,
            "world": handler.world(),
            "precompiled": shape.is_none(),
            "core_instances": shape.map(|s| s.core_instances),
            "memories": shape.map(|s| s.memories),
            "initial_memory_bytes": shape.map(|s| s.initial_memory),
            "capabilities": caps,
            "imports": handler.imports(),
        });
        println!("{out}");
        return Ok(());
    }
    match handler.world() {
        Some(world) => println!("{}: a sque handler (world {world})", args.file.display()),
        None => println!(
            "{}: a sque handler (it imports nothing of the world, so it runs under any of {})",
            args.file.display(),
            crate::sandbox::WORLDS.join(", ")
        ),
    }
    match shape {
        Some(Shape {
            core_instances,
            memories,
            initial_memory,
            ..
        }) => println!(
            "made of: {core_instances} core instance(s), {memories} linear memor{}; needs {} of linear memory at start (--max-memory: {})",
            if memories == 1 { "y" } else { "ies" },
            crate::sandbox::size_text(initial_memory),
            crate::sandbox::size_text(args.max_memory as u64),
        ),
        None => println!("made of: not known (precompiled native code keeps no record of it)"),
    }
    if caps.is_empty() {
        println!("capabilities imported: none");
    } else {
        println!("capabilities imported (each denied unless granted: --env for the environment, --allow-http for HTTP; files and sockets are never granted):");
        for c in caps {
            println!("  - {c}");
        }
    }
    println!("imports:");
    for i in handler.imports() {
        println!("  {i}");
    }
    Ok(())
}

/// Checks a config file: the file, then every queue's handler in a sandbox of its limits.
async fn check_config(args: &Args) -> anyhow::Result<()> {
    let defaults = QueueSpec {
        name: String::new(),
        handler: None,
        limits: Limits {
            max_memory: args.max_memory,
            ..Limits::default()
        },
        grants: Grants {
            max_pushes_per_job: crate::sandbox::DEFAULT_MAX_PUSHES,
            ..Grants::default()
        },
        settings: Default::default(),
        share: crate::pool::LaneShare::default(),
    };
    let shown = args.file.display();
    let plan = config::load(&args.file, &defaults).map_err(|p| usage(p.join("\nerror: ")))?;
    let engine = Arc::new(GuestEngine::new(EngineConfig {
        slots: 1,
        max_memory: plan.max_memory(args.max_memory),
        cache_dir: args.native.cache_dir(),
        trust_precompiled: args.native.trust_precompiled,
    })?);
    let mut problems = Vec::new();
    for spec in &plan.queues {
        let name = &spec.name;
        if let Err(e) = serving::prepare(Some(&engine), spec.clone()).await {
            problems.push(format!("{shown}: queue {name:?}: {}", one_line(&e)));
        }
        // One handler's compiled code at a time, as `check` has always held.
        engine.forget_loaded();
    }
    if !problems.is_empty() {
        return Err(usage(problems.join("\nerror: ")));
    }
    println!(
        "{shown}: {} queue(s), {} order, {} slots",
        plan.queues.len(),
        format!("{:?}", plan.order.unwrap_or(Order::Weighted)).to_lowercase(),
        plan.slots
            .map_or("--slots (16 unless set)".to_string(), |n| n.to_string()),
    );
    for q in &plan.queues {
        let handler = q
            .handler
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let most = q
            .share
            .max_held
            .map_or(String::new(), |n| format!(", at most {n} held"));
        println!("  {}: {handler}, weight {}{most}", q.name, q.share.weight);
    }
    Ok(())
}
