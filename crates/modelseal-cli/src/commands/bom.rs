//! `modelseal bom` (being written).

use anyhow::Result;

use crate::Outcome;
use crate::cli::BomArgs;

pub fn run(_args: &BomArgs) -> Result<Outcome> {
    anyhow::bail!("modelseal bom is not written yet")
}
