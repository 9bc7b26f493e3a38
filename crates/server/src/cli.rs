//! The command line (interface: Command line).

use std::io::{BufRead, IsTerminal};

use anyhow::{anyhow, bail, Context};
use clap::{Parser, Subcommand};
use usher_core::ServiceError;

use crate::config::Config;
use crate::serve;

#[derive(Parser)]
#[command(
    name = "usher",
    version,
    about = "User management for a collaboration platform"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the server (migrates the store first).
    Serve,
    /// Migrate the store and exit.
    Migrate,
    /// Manage administrators from the shell.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Import people from a CSV file, as the admin screen does, with a progress bar. Exits 0
    /// when every row applied, 1 when some rows failed (see the report), 2 when the file was
    /// refused.
    Import {
        /// The CSV file (Meeds' columns: userName,firstName,lastName,password,email,…).
        file: std::path::PathBuf,
        /// Check every row, consistency included, and write nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Create an administrator.
    Create {
        username: String,
        #[arg(long)]
        email: String,
        #[arg(long)]
        first_name: String,
        #[arg(long)]
        last_name: String,
        /// Read the password from standard input instead of asking on the terminal.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a person's password (their sessions end).
    ResetPassword {
        username: String,
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Print a new API token for an administrator, alone on one line.
    Create {
        username: String,
        #[arg(long, default_value = "cli")]
        name: String,
    },
}

pub async fn run(cli: Cli, config: Config) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve => serve::run(config).await,
        Command::Migrate => {
            serve::open(&config).await?;
            eprintln!(
                "The store at {} is up to date.",
                serve::redact(&config.database_url)
            );
            Ok(())
        }
        Command::Admin { command } => {
            let usher = serve::open(&config).await?;
            match command {
                AdminCommand::Create {
                    username,
                    email,
                    first_name,
                    last_name,
                    password_stdin,
                } => {
                    let password = read_password(password_stdin)?;
                    let person = usher
                        .create_admin_from_shell(
                            &username,
                            &email,
                            &first_name,
                            &last_name,
                            &password,
                        )
                        .await
                        .map_err(explain)?;
                    eprintln!("Created administrator {}.", person.username);
                }
                AdminCommand::ResetPassword {
                    username,
                    password_stdin,
                } => {
                    let password = read_password(password_stdin)?;
                    usher
                        .reset_password_from_shell(&username, &password)
                        .await
                        .map_err(explain)?;
                    eprintln!("Password of {username} changed; their sessions have ended.");
                }
            }
            Ok(())
        }
        Command::Import { file, dry_run } => {
            let usher = serve::open(&config).await?;
            match crate::imports::cli_import(&usher, &config, &file, dry_run).await? {
                0 => Ok(()),
                code => Err(Exit(code).into()),
            }
        }
        Command::Token {
            command: TokenCommand::Create { username, name },
        } => {
            let usher = serve::open(&config).await?;
            let token = usher
                .create_api_token(&username, &name)
                .await
                .map_err(explain)?;
            println!("{token}");
            Ok(())
        }
    }
}

/// A command's exit status other than 0 or 1, already explained on the terminal.
#[derive(Debug)]
pub struct Exit(pub u8);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit status {}", self.0)
    }
}

impl std::error::Error for Exit {}

fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    if from_stdin || !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        let password = line.trim_end_matches(['\r', '\n']).to_owned();
        if password.is_empty() {
            bail!("no password on standard input");
        }
        return Ok(password);
    }
    let first = rpassword::prompt_password("Password: ")?;
    let second = rpassword::prompt_password("Password again: ")?;
    if first != second {
        bail!("the two passwords differ");
    }
    Ok(first)
}

/// A service error as a sentence for the terminal.
fn explain(e: ServiceError) -> anyhow::Error {
    match e {
        ServiceError::Validation(fields) | ServiceError::Conflict(fields) => {
            let lines: Vec<String> = fields
                .0
                .iter()
                .flat_map(|(field, errs)| {
                    errs.iter()
                        .map(move |e| format!("  {field}: {} ({})", e.message, e.code))
                })
                .collect();
            anyhow!("refused:\n{}", lines.join("\n"))
        }
        ServiceError::NotFound => anyhow!("no such person"),
        other => anyhow!(other.to_string()),
    }
}
