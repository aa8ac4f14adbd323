//! A workflow over a tiny generated lake with two local destinations, `acme` and `globex`,
//! each under `<dir>/buckets/<id>/dump`: the fixture of the Lambda handlers' tests.

use std::sync::Arc;

use byob::config::Config;
use byob::state::LocalState;
use byob::workflow::Workflow;

use crate::generate::{self, GenerateOptions};

/// The config the test workflow uses, written into `dir`.
pub fn config(dir: &std::path::Path) -> Config {
    let options = GenerateOptions { out: dir.join("lake"), scale: 0.002, seed: 3, ..GenerateOptions::default() };
    if !dir.join("lake").exists() {
        generate::generate(&options, &|_, _| {}).expect("generate the test lake");
    }
    let tables: String = generate::TABLES.iter().map(|t| format!("[[tables]]\nname = \"{t}\"\n")).collect();
    let text = format!(
        "[source]\ntype = \"parquet\"\npath = \"lake\"\n\n{tables}\n\
         [[destinations]]\nid = \"acme\"\ntenant = \"acme\"\nfolder = \"buckets/acme\"\nprefix = \"dump\"\n\n\
         [[destinations]]\nid = \"globex\"\ntenant = \"globex\"\nfolder = \"buckets/globex\"\nprefix = \"dump\"\nformat = {{ type = \"csv\" }}\n\n\
         [state]\npath = \"state\"\n"
    );
    let path = dir.join("byob.toml");
    std::fs::write(&path, text).expect("write the test config");
    Config::load(&path).unwrap_or_else(|e| panic!("test config: {e}"))
}

/// A fresh temporary folder and a workflow over it.
pub fn workflow() -> (tempfile::TempDir, Workflow) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(dir.path());
    let state = Arc::new(LocalState::new(config.state.path.clone()));
    (dir, Workflow::new(config, state))
}
