//! `corral-bench`: `run` drives one ensemble with one workload; `compare` runs Apache ZooKeeper
//! and Corral side by side and writes `bench/RESULTS.md`.

use clap::{Parser, Subcommand};
use corral_bench::compare::{self, CompareArgs};
use corral_bench::report::Report;
use corral_bench::runner::{self, RunArgs};

#[derive(Parser)]
#[command(name = "corral-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Drive a running ensemble with one workload and print its figures.
    Run {
        #[command(flatten)]
        args: RunArgs,
        /// A name for the system under test, shown in the table and JSON.
        #[arg(long, default_value = "target")]
        label: String,
        /// Also write the report as JSON here.
        #[arg(long)]
        json: Option<std::path::PathBuf>,
    },
    /// Start Apache ZooKeeper and Corral ensembles side by side, run the same workloads against
    /// both, and write bench/RESULTS.md with tables and plots.
    Compare(CompareArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Run { args, label, json } => {
                let report = runner::run(&args, &label).await?;
                println!("{}", Report::table_header());
                println!("{}", report.table_row());
                if let Some(errors) = report.error_summary() {
                    println!("{errors}");
                }
                if let Some(path) = json {
                    std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
                }
                Ok(())
            }
            Command::Compare(args) => compare::run(args).await,
        }
    })
}
