//! The `usher` binary itself, on SQLite and PostgreSQL: first start, configuration warnings,
//! migrations, and the administrator and token commands.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use usher_store::on_both_backends;

fn usher(db_url: &str, dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_usher"));
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("USHER_DATABASE_URL", db_url)
        .env("USHER_LOG", "info");
    cmd
}

fn run_with_stdin(mut cmd: Command, input: &str) -> (bool, String, String) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("usher runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "usher-cli-{name}-{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `GET path` over plain HTTP/1.1; returns the status line and the body.
fn http_get(addr: &str, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.lines().next().unwrap_or_default().to_owned();
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    (status, body)
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

on_both_backends! {
    async fn first_start_creates_the_super_user_prints_its_password_and_reports_unknown_variables(db) {
        let dir = temp_dir("serve");
        let mut cmd = usher(&db.url, &dir);
        cmd.arg("serve").env("USHER_BIND", "127.0.0.1:0").env("USHER_COLOUR", "blue");
        let mut server = Server(
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("usher serve"),
        );
        server.0.stdin.take();
        let mut stdout = BufReader::new(server.0.stdout.take().unwrap());
        let stderr = BufReader::new(server.0.stderr.take().unwrap());
        let mut password = None;
        for line in stdout.by_ref().lines().map_while(Result::ok).take(5) {
            if let Some(p) = line.strip_prefix("Created the super user `admin` with password: ") {
                password = Some(p.to_owned());
                break;
            }
        }
        let password = password.expect("the generated password is printed");
        assert!(password.len() >= 20);
        let mut warned = false;
        let mut addr = None;
        for line in stderr.lines().map_while(Result::ok).take(50) {
            warned |= line.contains("unknown environment variable USHER_COLOUR");
            if let Some(rest) = line.split("listening on ").nth(1) {
                addr = Some(rest.trim_end_matches(')').to_owned());
                break;
            }
        }
        assert!(warned, "unknown USHER_* variables are reported");
        let addr = addr.expect("the address is logged");
        drop(stdout);
        let (status, _) = http_get(&addr, "/readyz");
        assert!(status.contains("200"), "{status}");
        let (status, body) = http_get(&addr, "/login");
        assert!(status.contains("200"), "{status}");
        assert!(body.contains("Log in"));
    }

    async fn shell_commands_manage_administrators_and_tokens(db) {
        let dir = temp_dir("admin");
        let status = usher(&db.url, &dir).arg("migrate").status().unwrap();
        assert!(status.success());
        let mut create = usher(&db.url, &dir);
        create.args([
            "admin", "create", "ops.admin", "--email", "ops@example.org",
            "--first-name", "Ops", "--last-name", "Admin", "--password-stdin",
        ]);
        let (ok, _, stderr) = run_with_stdin(create, "an-operator-passphrase\n");
        assert!(ok, "{stderr}");

        let mut token = usher(&db.url, &dir);
        token.args(["token", "create", "ops.admin", "--name", "automation"]);
        let (ok, stdout, stderr) = run_with_stdin(token, "");
        assert!(ok, "{stderr}");
        let line = stdout.trim_end();
        assert_eq!(line.len(), 64, "the token alone on one line: {stdout:?}");
        assert!(line.chars().all(|c| c.is_ascii_hexdigit()));

        let mut reset = usher(&db.url, &dir);
        reset.args(["admin", "reset-password", "ops.admin", "--password-stdin"]);
        let (ok, _, stderr) = run_with_stdin(reset, "a-brand-new-passphrase\n");
        assert!(ok, "{stderr}");

        let mut bad = usher(&db.url, &dir);
        bad.args([
            "admin", "create", "x", "--email", "nope", "--first-name", "O", "--last-name", "A",
            "--password-stdin",
        ]);
        let (ok, _, stderr) = run_with_stdin(bad, "short\n");
        assert!(!ok);
        assert!(stderr.contains("username") && stderr.contains("email") && stderr.contains("password"), "{stderr}");

        let mut unknown = usher(&db.url, &dir);
        unknown.args(["token", "create", "nobody.here"]);
        let (ok, _, stderr) = run_with_stdin(unknown, "");
        assert!(!ok);
        assert!(stderr.contains("no such person"), "{stderr}");
    }
}

#[test]
fn a_bad_configuration_value_stops_the_start_with_a_clear_message() {
    let dir = temp_dir("badconfig");
    let out = usher("sqlite://./x.db", &dir)
        .env("USHER_INVITATION_TTL", "forever")
        .arg("migrate")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("USHER_INVITATION_TTL"), "{stderr}");
}
