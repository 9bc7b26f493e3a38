//! Rebuilds the store when a migration is added or changed: `sqlx::migrate!` embeds the
//! migrations at compile time, and cargo does not watch their folders otherwise (a new file
//! was silently left out of a build).

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
