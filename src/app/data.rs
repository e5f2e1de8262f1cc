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
    /// Download a data set's official release, check its md5s and put it in place.
    Fetch {
        /// Folder to put the data set's folder into (cifar-10-batches-bin, cifar-100-binary, mnist, fashion-mnist).
        #[arg(long, default_value = "data")]
        dest: PathBuf,
        /// The data set.
        #[arg(long, value_name = "NAME", default_value = "cifar10")]
        dataset: data::DatasetKind,
        /// Where to get it instead: a mirror's URL, or a local path or file:// URL of the
        /// same tarball (MNIST: of the folder holding its four .gz files), checked the same way.
        #[arg(long)]
        url: Option<String>,
        /// Expected md5 of the tarball.
        #[arg(long, hide = true)]
        md5: Option<String>,
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
        DataCommand::Fetch {
            dest,
            dataset,
            url,
            md5,
        } => {
            let release =
                data::fetch::Release::official(*dataset)?.from(url.as_deref(), md5.as_deref());
            let dir = data::fetch::fetch_release(dest, &release, true)?;
            eprintln!("{} is in {}", dataset.title(), dir.display());
        }
    }
    Ok(Finish::Done)
}
