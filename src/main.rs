use clap::Parser;

use portcullis::cli::{Cli, Command};
use portcullis::config::Config;
use portcullis::startup::{Application, open_database};

fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("portcullis: {msg}");
    std::process::exit(1);
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    portcullis::telemetry::init();
    let config = Config::load(cli.config.as_deref()).unwrap_or_else(|e| fail(e));
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let app = Application::build(config.clone())
                .await
                .unwrap_or_else(|e| fail(e));
            tracing::info!(listen = %config.listen, public_url = %config.public_url, "portcullis is serving");
            if let Err(e) = app.run_until_stopped().await {
                fail(e);
            }
        }
        Command::Migrate => match open_database(&config) {
            Ok(_) => println!("migrations applied"),
            Err(e) => fail(e),
        },
        Command::User(cmd) => match portcullis::cli::run_user(&config, cmd).await {
            Ok(msg) => println!("{msg}"),
            Err(e) => fail(e),
        },
        Command::Audit(cmd) => match portcullis::cli::run_audit(&config, cmd).await {
            Ok(msg) => println!("{msg}"),
            Err(e) => fail(e),
        },
        Command::Client(cmd) => match portcullis::cli::run_client(&config, cmd).await {
            Ok(msg) => println!("{msg}"),
            Err(e) => fail(e),
        },
    }
}
