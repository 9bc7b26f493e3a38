//! `usher import FILE.csv [--dry-run]` on SQLite and PostgreSQL: the exit status (0 every row
//! applied, 1 some rows failed, 2 the file was refused), the summary and the report beside the
//! file, and a dry run that writes nothing. Then `usher serve` killed in the middle of an import
//! and started again: the job resumes and ends with every row applied once.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use usher_store::on_both_backends;

fn usher(db_url: &str, dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_usher"));
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("USHER_DATABASE_URL", db_url)
        .env("USHER_LOG", "warn");
    cmd
}

/// A working directory, removed when dropped.
struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir(name: &str) -> TempDir {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let dir = std::env::temp_dir().join(format!(
        "usher-import-cli-{name}-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

/// Runs `usher import` with `args`; returns the exit code, standard output and error.
fn import(db_url: &str, dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = usher(db_url, dir)
        .arg("import")
        .args(args)
        .output()
        .expect("usher import runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A request over plain HTTP/1.1 with a bearer token; the status code and the body.
fn http(addr: &str, method: &str, path: &str, token: &str, body: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: text/csv\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    (status, body)
}

fn json(body: &str) -> serde_json::Value {
    // A chunked body: the JSON is the line that starts with `{`.
    let text = body.lines().find(|l| l.starts_with('{')).unwrap_or(body);
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {body}"))
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `usher serve` on a free port; the server and its address.
fn serve(db_url: &str, dir: &Path) -> (Server, String) {
    let mut child = usher(db_url, dir)
        .arg("serve")
        .env("USHER_BIND", "127.0.0.1:0")
        .env("USHER_ADMIN_PASSWORD", "an-admin-password-for-tests")
        .env("USHER_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("usher serve");
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut addr = None;
    let mut lines = stderr.lines();
    for line in lines.by_ref().map_while(Result::ok).take(50) {
        if let Some(rest) = line.split("listening on ").nth(1) {
            addr = Some(rest.trim_end_matches(')').to_owned());
            break;
        }
    }
    // Keep reading the log, so that the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (Server(child), addr.expect("the address is logged"))
}

fn generated(rows: usize) -> String {
    let mut csv = String::from("userName,firstName,lastName,password,email\r\n");
    for i in 0..rows {
        let letters: String = format!("{i:05}")
            .chars()
            .map(|d| (b'a' + (d as u8 - b'0')) as char)
            .collect();
        csv.push_str(&format!(
            "crash.{i},Abc{letters},Def{letters},,crash.{i}@example.org\r\n"
        ));
    }
    csv
}

const GOOD: &str = "userName,firstName,lastName,password,email\r\n\
    cli.one,Cli,One,,cli.one@example.org\r\n\
    cli.two,Cli,Two,,cli.two@example.org\r\n";

on_both_backends! {
    async fn a_file_whose_rows_all_apply_exits_0_with_the_summary_and_the_report_path(db) {
        let dir = temp_dir("good");
        std::fs::write(dir.join("people.csv"), GOOD).unwrap();
        let (code, stdout, stderr) = import(&db.url, &dir, &["people.csv"]);
        assert_eq!(code, 0, "{stdout}{stderr}");
        assert!(stdout.contains("2 created"), "{stdout}");
        assert!(stdout.contains("people.report.csv"), "{stdout}");
        let report = std::fs::read_to_string(dir.join("people.report.csv")).unwrap();
        assert_eq!(report, "line,username,field,severity,code,message\r\n");

        let (code, stdout, _) = import(&db.url, &dir, &["people.csv"]);
        assert_eq!(code, 0);
        assert!(stdout.contains("2 unchanged"), "the same file again changes nothing: {stdout}");
    }

    async fn a_file_with_failed_rows_exits_1_and_reports_them(db) {
        let dir = temp_dir("bad-rows");
        let csv = format!("{GOOD}x,Bad,Row,,bad@example.org\r\n");
        std::fs::write(dir.join("mixed.csv"), csv).unwrap();
        let (code, stdout, stderr) = import(&db.url, &dir, &["mixed.csv"]);
        assert_eq!(code, 1, "{stdout}{stderr}");
        assert!(stdout.contains("2 created") && stdout.contains("1 failed"), "{stdout}");
        let report = std::fs::read_to_string(dir.join("mixed.report.csv")).unwrap();
        assert!(report.contains("\r\n4,x,userName,error,too_short,"), "{report}");
    }

    async fn a_refused_file_exits_2_and_changes_nothing(db) {
        let dir = temp_dir("refused");
        std::fs::write(dir.join("nohead.csv"), "cli.one,Cli,One,,cli.one@example.org\n").unwrap();
        let (code, _, stderr) = import(&db.url, &dir, &["nohead.csv"]);
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains("no_header"), "{stderr}");
        std::fs::write(dir.join("latin1.csv"), b"userName,firstName,lastName,email\nj,Jos\xE9,D,e@x.org\n").unwrap();
        let (code, _, stderr) = import(&db.url, &dir, &["latin1.csv", "--dry-run"]);
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains("not_utf8"), "{stderr}");
        let (code, _, _) = import(&db.url, &dir, &["missing.csv"]);
        assert_eq!(code, 1, "an unreadable file is an error of the command");
        // Nothing was imported: the good file still creates its two people.
        std::fs::write(dir.join("people.csv"), GOOD).unwrap();
        let (_, stdout, _) = import(&db.url, &dir, &["people.csv"]);
        assert!(stdout.contains("2 created"), "{stdout}");
    }

    async fn a_dry_run_reports_what_would_happen_and_writes_nothing(db) {
        let dir = temp_dir("dry");
        let csv = format!("{GOOD}cli.three,Cli,Three,,CLI.ONE@example.org\r\n");
        std::fs::write(dir.join("people.csv"), csv).unwrap();
        let (code, stdout, stderr) = import(&db.url, &dir, &["people.csv", "--dry-run"]);
        assert_eq!(code, 1, "{stdout}{stderr}");
        assert!(stdout.contains("dry run") && stdout.contains("2 would be created"), "{stdout}");
        let report = std::fs::read_to_string(dir.join("people.report.csv")).unwrap();
        assert!(report.contains("duplicate_email"), "{report}");

        let (code, stdout, _) = import(&db.url, &dir, &["people.csv"]);
        assert_eq!(code, 1);
        assert!(stdout.contains("2 created"), "the dry run created nobody: {stdout}");
    }

    async fn a_server_killed_mid_import_resumes_the_job_when_started_again(db) {
        let dir = temp_dir("crash");
        let rows = 20_000;
        let (server, addr) = serve(&db.url, &dir);
        let token = usher(&db.url, &dir)
            .args(["token", "create", "admin"])
            .output()
            .unwrap();
        let token = String::from_utf8_lossy(&token.stdout).trim().to_owned();
        assert_eq!(token.len(), 64, "a token");
        let (status, body) = http(&addr, "POST", "/api/v1/imports", &token, generated(rows).as_bytes());
        assert_eq!(status, 202, "{body}");
        let id = json(&body)["id"].as_i64().unwrap();

        // Killed (no shutdown) as soon as some rows are in, if it has not finished by then.
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (_, body) = http(&addr, "GET", &format!("/api/v1/imports/{id}"), &token, b"");
            let job = json(&body);
            if job["processed"].as_u64().unwrap_or(0) > 0 || job["state"] == "done" {
                break;
            }
            assert!(Instant::now() < deadline, "the import never started: {job}");
            std::thread::sleep(Duration::from_millis(20));
        }
        let (_, body) = http(&addr, "GET", &format!("/api/v1/imports/{id}"), &token, b"");
        eprintln!("killing the server at {}", json(&body)["processed"]);
        let mut server = server;
        server.0.kill().unwrap();
        server.0.wait().unwrap();

        // The same node starts again: it takes its job back at once and finishes it.
        let (_server, addr) = serve(&db.url, &dir);
        let job = loop {
            let (_, body) = http(&addr, "GET", &format!("/api/v1/imports/{id}"), &token, b"");
            let job = json(&body);
            if job["state"] == "done" || job["state"] == "failed" {
                break job;
            }
            assert!(Instant::now() < deadline, "the import did not resume: {job}");
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(job["state"], "done", "{job}");
        for key in ["rows", "processed", "created"] {
            assert_eq!(job[key], rows, "{key}: {job}");
        }
        assert_eq!(job["failed"], 0, "{job}");
        let (_, body) = http(&addr, "GET", "/api/v1/users?limit=1", &token, b"");
        assert_eq!(json(&body)["total"], rows + 1, "everyone once, and the super user");
        let (_, body) = http(&addr, "GET", "/api/v1/audit?action=user.create&limit=1", &token, b"");
        assert_eq!(json(&body)["total"], rows + 1, "no row was applied twice");
    }
}
