//! `sque-host new --lang rust|python|js DIR`: a handler project that builds with one command
//! and runs with the demo's `emails` queue. Until the SDKs are on their registries, the
//! project points at them by path: `--sdk`, else the `guest-sdk` directory of the checkout
//! this binary was built in. The templates are in `new/`, one folder a language.

use std::path::{Path, PathBuf};

use crate::cli::common::usage;

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum Lang {
    Rust,
    Python,
    Js,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The handler's language.
    #[arg(long, value_enum)]
    lang: Lang,

    /// The directory to create; its last part names the project (letters, digits, - and _,
    /// starting with a letter).
    dir: PathBuf,

    /// The guest-sdk directory of a sque checkout (with rust/, python/ and js/). Default: the
    /// one of the checkout this sque-host was built in, if it is still there.
    #[arg(long, env = "SQUE_SDK_DIR")]
    sdk: Option<PathBuf>,
}

/// A template: where the file goes in the project, and its text.
type Template = (&'static str, &'static str);

const RUST: &[Template] = &[
    ("Cargo.toml", include_str!("new/rust/Cargo.toml")),
    ("src/lib.rs", include_str!("new/rust/lib.rs")),
    ("README.md", include_str!("new/rust/README.md")),
    (".gitignore", "/target\n"),
];
const PYTHON: &[Template] = &[
    ("app.py", include_str!("new/python/app.py")),
    ("build.sh", include_str!("new/python/build.sh")),
    ("README.md", include_str!("new/python/README.md")),
    (".gitignore", "*.wasm\n__pycache__/\n"),
];
const JS: &[Template] = &[
    ("app.js", include_str!("new/js/app.js")),
    ("package.json", include_str!("new/js/package.json")),
    ("README.md", include_str!("new/js/README.md")),
    (".gitignore", "*.wasm\nnode_modules/\n"),
];

pub async fn run(args: Args) -> anyhow::Result<()> {
    let name = args
        .dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    let valid = name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        return Err(usage(format!(
            "{}: a project's name is letters, digits, - and _, starting with a letter",
            args.dir.display()
        )));
    }
    if args.dir.exists() {
        return Err(usage(format!(
            "{} already exists; name a directory to create",
            args.dir.display()
        )));
    }
    let sdk = find_sdk(args.sdk.as_deref())?;
    let (templates, build, wasm) = match args.lang {
        Lang::Rust => (
            RUST,
            "cargo build --release --target wasm32-wasip2",
            format!(
                "target/wasm32-wasip2/release/{}.wasm",
                name.replace('-', "_")
            ),
        ),
        Lang::Python => (PYTHON, "./build.sh", format!("{name}.wasm")),
        Lang::Js => (JS, "npm run build", format!("{name}.wasm")),
    };
    let file = match args.lang {
        Lang::Rust => name.replace('-', "_"),
        _ => name.clone(),
    };
    let fill = |text: &str| {
        text.replace("{name}", &name)
            .replace("{file}", &file)
            .replace("{sdk}", &sdk.display().to_string())
    };
    for (path, text) in templates {
        let path = args.dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| usage(format!("cannot create {}: {e}", parent.display())))?;
        }
        std::fs::write(&path, fill(text))
            .map_err(|e| usage(format!("cannot write {}: {e}", path.display())))?;
        if path.extension().is_some_and(|e| e == "sh") {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        }
    }
    let dir = args.dir.display();
    let lang = match args.lang {
        Lang::Rust => "Rust",
        Lang::Python => "Python",
        Lang::Js => "JavaScript",
    };
    println!(
        "created {dir}, a {lang} handler on the SDK in {}",
        sdk.display()
    );
    println!("  cd {dir} && {build} && sque-host run --queue emails --handler {wasm}");
    Ok(())
}

/// The guest-sdk directory: `--sdk`, else the checkout's this binary was built in.
fn find_sdk(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    let is_sdk = |dir: &Path| dir.join("rust").join("Cargo.toml").exists();
    if let Some(dir) = given {
        return match dir.canonicalize() {
            Ok(dir) if is_sdk(&dir) => Ok(dir),
            _ => Err(usage(format!(
                "--sdk {}: not a sque guest-sdk directory (it has rust/, python/ and js/)",
                dir.display()
            ))),
        };
    }
    let built_in = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk");
    match built_in.canonicalize() {
        Ok(dir) if is_sdk(&dir) => Ok(dir),
        _ => Err(usage(
            "cannot find the guest SDKs: pass --sdk DIR, the guest-sdk directory of a sque checkout",
        )),
    }
}
