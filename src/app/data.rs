//! `shallow data info|fetch`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;

use super::args::DataArgs;
use super::common::{print_json, Finish};
use crate::data;

/// `shallow data` subcommands.
#[derive(Subcommand)]
pub enum DataCommand {
    /// Images and classes per file, training mean, load time.
    Info {
        /// Where the data is.
        #[command(flatten)]
        data: DataArgs,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Download the official binary release, check its md5 and extract it.
    Fetch {
        /// Folder to put cifar-10-batches-bin into.
        #[arg(long, default_value = "data")]
        dest: PathBuf,
        /// Where to download from (a mirror of cifar-10-binary.tar.gz).
        #[arg(long, default_value = data::fetch::URL)]
        url: String,
        /// Expected md5 of the tarball.
        #[arg(long, default_value = data::fetch::MD5, hide = true)]
        md5: String,
    },
}

/// Prints the data's description, or fetches the release.
pub fn run(cmd: &DataCommand) -> Result<Finish> {
    match cmd {
        DataCommand::Info { data, json } => {
            let d = data::load(&data.source())?;
            let info = d.info();
            if *json {
                print_json(&info)?;
            } else {
                crate::outln!("{info}")?;
            }
        }
        DataCommand::Fetch { dest, url, md5 } => {
            let dir = data::fetch::fetch(dest, url, md5, true)?;
            eprintln!("CIFAR-10 is in {}", dir.display());
        }
    }
    Ok(Finish::Done)
}
