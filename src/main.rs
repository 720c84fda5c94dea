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

fn main() {
    tune_malloc();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(format!("cannot start the runtime: {e}")))
        .block_on(run());
    portcullis::telemetry::finish();
}

async fn run() {
    let cli = Cli::parse();
    portcullis::telemetry::init();
    let config = Config::load(cli.config.as_deref()).unwrap_or_else(|e| fail(e));
    // Every command may create the database, the key or the outbox: close the data
    // dir before any of them runs.
    portcullis::files::secure(&config);
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
