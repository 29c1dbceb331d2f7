//! `sque-host check FILE`: is this a handler this host can run, and which capabilities does
//! it import? Exit 0 when it is, 2 (with the reason) when it is not.

use std::path::PathBuf;

use crate::sandbox::{Grants, Handler, Limits, Sandbox, SandboxConfig};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The component to check.
    file: PathBuf,

    /// Print a JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let sandbox = Sandbox::new(SandboxConfig {
        slots: 1,
        limits: Limits::default(),
        grants: Grants::default(),
        cache_dir: None,
    })?;
    let file = args.file.clone();
    let handler = tokio::task::spawn_blocking(move || Handler::load(&sandbox, &file)).await??;
    let caps: Vec<String> = handler
        .capabilities()
        .iter()
        .map(|c| c.to_string())
        .collect();
    if args.json {
        let out = serde_json::json!({
            "file": args.file.display().to_string(),
            "handler": true,
            "world": "sque:handler/handler@0.1.0",
            "capabilities": caps,
            "imports": handler.imports(),
        });
        println!("{out}");
        return Ok(());
    }
    println!(
        "{}: a sque handler (world sque:handler/handler@0.1.0)",
        args.file.display()
    );
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
