//! The few calls of Usher's HTTP API the workload makes, as the `admin` API token: create a
//! person, search, import a CSV file and follow its job, disable people in bulk and follow
//! the job when there is one. Every wait is bounded by a deadline.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::people::Person;

#[derive(Clone)]
pub struct Api {
    client: reqwest::Client,
    base: String,
}

/// A finished import job's counts (`GET /api/v1/imports/{id}`).
#[derive(Debug, Clone, Default)]
pub struct ImportCounts {
    pub rows: u64,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub failed: u64,
}

/// The answer of a search: the page's length and the total.
#[derive(Debug, Clone, Copy)]
pub struct SearchAnswer {
    pub page: usize,
    pub total: u64,
}

/// Why an import could not be measured without anything being wrong with the server.
#[derive(Debug)]
pub struct ImportUnavailable(pub String);

impl std::fmt::Display for ImportUnavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "import not available: {}", self.0)
    }
}

impl std::error::Error for ImportUnavailable {}

fn number(job: &Value, field: &str) -> u64 {
    job.get(field).and_then(Value::as_u64).unwrap_or(0)
}

async fn error_of(what: &str, response: reqwest::Response) -> anyhow::Error {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    let body: String = body.chars().take(600).collect();
    anyhow!("{what}: HTTP {status}: {body}")
}

impl Api {
    pub fn new(base: &str, token: &str) -> anyhow::Result<Self> {
        let mut headers = HeaderMap::new();
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}"))?,
        );
        let client = reqwest::Client::builder()
            .default_headers(headers)
            // Large enough for a 1,000,000-row upload, which is stored before the 202.
            .timeout(Duration::from_secs(900))
            .pool_max_idle_per_host(16)
            .build()?;
        if !base.starts_with("http://127.0.0.1:") {
            bail!("the benchmark talks to 127.0.0.1 only, not {base}");
        }
        Ok(Self {
            client,
            base: base.to_owned(),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    /// `POST /users`, with the password or without (an account that joins by invitation).
    pub async fn create_person(&self, p: &Person, with_password: bool) -> anyhow::Result<()> {
        let mut body = json!({
            "username": p.username,
            "first_name": p.first_name,
            "last_name": p.last_name,
            "email": p.email,
        });
        if with_password {
            body["password"] = json!(p.password);
        }
        let response = self
            .client
            .post(self.url("/users"))
            .json(&body)
            .timeout(Duration::from_secs(60))
            .send()
            .await?;
        if response.status() != StatusCode::CREATED {
            return Err(error_of(&format!("creating {}", p.username), response).await);
        }
        Ok(())
    }

    /// `GET /users/{username}`: the person's search text (folded as the store folds it),
    /// whether they are enabled, and whether they ever connected.
    pub async fn get_user(&self, username: &str) -> anyhow::Result<(String, bool, bool)> {
        let response = self
            .client
            .get(self.url(&format!("/users/{username}")))
            .timeout(Duration::from_secs(60))
            .send()
            .await?;
        if response.status() != StatusCode::OK {
            return Err(error_of(&format!("reading {username}"), response).await);
        }
        let user: Value = response.json().await?;
        let text = |field: &str| {
            user.get(field)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let search_text = usher_core::fold::search_text(
            &text("username"),
            &text("first_name"),
            &text("last_name"),
            &text("email"),
        );
        let enabled = user.get("enabled").and_then(Value::as_bool) == Some(true);
        let connected = user.get("last_login_at").is_some_and(|v| !v.is_null());
        Ok((search_text, enabled, connected))
    }

    /// `GET /users?q=…&limit=20` with an optional status filter (`enabled=false`, …).
    pub async fn search(
        &self,
        q: &str,
        filter: Option<(&str, &str)>,
    ) -> anyhow::Result<SearchAnswer> {
        let mut query: Vec<(&str, &str)> = vec![("q", q), ("limit", "20"), ("offset", "0")];
        if let Some(f) = filter {
            query.push(f);
        }
        let response = self
            .client
            .get(self.url("/users"))
            .query(&query)
            .timeout(Duration::from_secs(60))
            .send()
            .await?;
        if response.status() != StatusCode::OK {
            return Err(error_of(&format!("searching {q:?}"), response).await);
        }
        let page: Value = response.json().await?;
        let users = page
            .get("users")
            .and_then(Value::as_array)
            .ok_or_else(|| anyhow!("a search answer without `users`"))?;
        let total = page
            .get("total")
            .and_then(Value::as_u64)
            .ok_or_else(|| anyhow!("a search answer without `total`"))?;
        Ok(SearchAnswer {
            page: users.len(),
            total,
        })
    }

    /// `POST /imports` with the file as `text/csv`, then `GET /imports/{id}` until the job is
    /// done. The time is from the start of the upload to the answer that says `done`; it is
    /// polled every 1% of the time elapsed so far (10 ms to 1 s), so that polling costs the
    /// figure at most about 1%.
    pub async fn import(
        &self,
        csv: Vec<u8>,
        limit: Duration,
    ) -> anyhow::Result<(Duration, ImportCounts)> {
        let start = Instant::now();
        let deadline = start + limit;
        let response = self
            .client
            .post(self.url("/imports"))
            .header(CONTENT_TYPE, "text/csv")
            .body(csv)
            .send()
            .await
            .context("uploading the CSV file")?;
        match response.status() {
            StatusCode::ACCEPTED => {}
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => {
                let status = response.status();
                return Err(ImportUnavailable(format!(
                    "POST /api/v1/imports answers {status} (this build of usher has no CSV import)"
                ))
                .into());
            }
            _ => return Err(error_of("submitting the import", response).await),
        }
        let job: Value = response.json().await?;
        let id = job
            .get("id")
            .and_then(Value::as_i64)
            .ok_or_else(|| anyhow!("an import answer without `id`: {job}"))?;
        let url = self.url(&format!("/imports/{id}"));
        loop {
            // A hundredth of the time so far, from 2 ms: a 1,000-row file is done in 30–60
            // ms, and polling every 10 ms read up to a third more than it took. Bounded by the
            // deadline below; several hundred polls at most however long the import.
            let pause =
                (start.elapsed() / 100).clamp(Duration::from_millis(2), Duration::from_secs(1));
            tokio::time::sleep(pause).await;
            let response = self.client.get(&url).send().await?;
            if response.status() != StatusCode::OK {
                return Err(error_of(&format!("following import {id}"), response).await);
            }
            let job: Value = response.json().await?;
            match job.get("state").and_then(Value::as_str) {
                Some("done") => {
                    let elapsed = start.elapsed();
                    return Ok((
                        elapsed,
                        ImportCounts {
                            rows: number(&job, "rows"),
                            created: number(&job, "created"),
                            updated: number(&job, "updated"),
                            unchanged: number(&job, "unchanged"),
                            failed: number(&job, "failed"),
                        },
                    ));
                }
                Some("failed") => bail!("import {id} failed: {job}"),
                _ => {}
            }
            if Instant::now() > deadline {
                bail!(
                    "import {id} did not finish within {limit:?} ({} of {} rows processed)",
                    number(&job, "processed"),
                    number(&job, "rows")
                );
            }
        }
    }

    /// `POST /users/bulk {action: "disable", usernames}`: the time until every person is
    /// disabled (following the job when the server makes one), and how many were changed.
    pub async fn bulk_disable(
        &self,
        usernames: &[String],
        limit: Duration,
    ) -> anyhow::Result<(Duration, u64)> {
        let start = Instant::now();
        let deadline = start + limit;
        let response = self
            .client
            .post(self.url("/users/bulk"))
            .json(&json!({ "action": "disable", "usernames": usernames }))
            .send()
            .await?;
        let status = response.status();
        if status != StatusCode::OK && status != StatusCode::ACCEPTED {
            return Err(error_of("disabling people in bulk", response).await);
        }
        let mut answer: Value = response.json().await?;
        if status == StatusCode::ACCEPTED {
            let id = answer
                .get("id")
                .and_then(Value::as_i64)
                .ok_or_else(|| anyhow!("a job answer without `id`: {answer}"))?;
            let url = self.url(&format!("/jobs/{id}"));
            loop {
                tokio::time::sleep(Duration::from_millis(10)).await;
                let response = self.client.get(&url).send().await?;
                if response.status() != StatusCode::OK {
                    return Err(error_of(&format!("following job {id}"), response).await);
                }
                let job: Value = response.json().await?;
                match job.get("state").and_then(Value::as_str) {
                    Some("done") => {
                        answer = job.get("result").cloned().unwrap_or(Value::Null);
                        break;
                    }
                    Some("failed") => bail!("bulk job {id} failed: {job}"),
                    _ => {}
                }
                if Instant::now() > deadline {
                    bail!("bulk job {id} did not finish within {limit:?}");
                }
            }
        }
        let elapsed = start.elapsed();
        let changed = answer
            .get("changed")
            .and_then(Value::as_array)
            .map(|a| a.len() as u64)
            .ok_or_else(|| anyhow!("a bulk answer without `changed`: {answer}"))?;
        Ok((elapsed, changed))
    }
}
