use clap::Parser;

use portcullis::cli::{Cli, Command};
use portcullis::config::Config;
use portcullis::startup::{Application, open_database};

fn fail(msg: impl std::fmt::Display) -> ! {
    // Log lines queued before this one first, so the log reads in order.
    portcullis::telemetry::finish();
    eprintln!("portcullis: {msg}");
    std::process::exit(1);
}

/// glibc raises its mmap threshold each time a large block is freed, after which
/// argon2's 19 MiB working buffers come from (and stay in) the heap arenas. A fixed
/// threshold keeps every block over 1 MiB in its own mapping, given back to the system
/// when freed: an idle server holds no hashing memory. And glibc gives each thread that
/// allocates its own arena (up to 8 per core), each keeping what it freed: the
/// database's blocking threads alone held tens of MiB. One arena per core is enough
/// for a server whose heavy work is bounded to the core count anyway. (One arena for
/// the whole process held 0.3-0.4 MiB less at the bench's peak, but the two actix
/// workers then wait on its lock: signed-in `/account` on PostgreSQL + Redis lost
/// about a tenth of its rate in an A/B of the two builds.)
fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        // SAFETY: mallopt only changes allocator tuning; called before any other
        // thread exists (the runtime is started below).
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
            libc::mallopt(libc::M_ARENA_MAX, cores.clamp(1, 64) as libc::c_int);
        }
    }
}

/// The one way out of every command: the runtime is dropped first, which ends every
/// task and with them the last database handles, whose pools then close their
/// connections and wait for their threads (`db::conn`); only then does the process
/// exit with the command's status. Exiting from inside the runtime killed the process
/// with SIGSEGV at times, in libpq's exit handlers while a pool thread was still in
/// them.
fn main() {
    tune_malloc();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(format!("cannot start the runtime: {e}")));
    let outcome = runtime.block_on(run());
    drop(runtime);
    match outcome {
        Ok(()) => portcullis::telemetry::finish(),
        Err(e) => fail(e),
    }
}

/// A command's output on stdout; nothing at all when it has none (`user list` with no
/// users), so a reader of JSON lines meets no blank one.
fn say(out: String) {
    if !out.is_empty() {
        println!("{out}");
    }
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    portcullis::telemetry::init();
    let config = Config::load(cli.config.as_deref()).map_err(|e| anyhow::anyhow!("{e}"))?;
    // Every command may create the database, the key or the outbox: close the data
    // dir before any of them runs.
    portcullis::files::secure(&config);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let app = Application::build(config.clone()).await?;
            tracing::info!(listen = %config.listen, public_url = %config.public_url, "portcullis is serving");
            app.run_until_stopped().await?;
        }
        Command::Migrate => {
            open_database(&config)?;
            println!("migrations applied");
        }
        Command::SetupLink => say(portcullis::cli::run_setup_link(&config).await?),
        Command::User(cmd) => say(portcullis::cli::run_user(&config, cmd).await?),
        Command::Audit(cmd) => say(portcullis::cli::run_audit(&config, cmd).await?),
        Command::Client(cmd) => say(portcullis::cli::run_client(&config, cmd).await?),
        Command::Policy(cmd) => say(portcullis::cli::run_policy(&config, cmd).await?),
        Command::Token(cmd) => say(portcullis::cli::run_token(&config, cmd).await?),
        Command::Group(cmd) => say(portcullis::cli::run_group(&config, cmd).await?),
        Command::ServiceAccount(cmd) => {
            say(portcullis::cli::run_service_account(&config, cmd).await?)
        }
    }
    Ok(())
}
