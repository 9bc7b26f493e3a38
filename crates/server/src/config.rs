//! Configuration: defaults, then an optional `usher.toml`, then `USHER_*` environment
//! variables, which win. Unknown `USHER_*` variables and unknown file keys are reported at
//! start, so that a typo never silently leaves a default in place.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};

/// Every key, as written in `usher.toml`; the variable is `USHER_` + upper case.
pub const KEYS: &[&str] = &[
    "database_url",
    "bind",
    "public_url",
    "admin_password",
    "smtp_url",
    "mail_from",
    "platform_name",
    "invitation_ttl",
    "import_max_bytes",
    "metrics",
    "log",
];

/// Variables read elsewhere that are not configuration keys.
const OTHER_VARIABLES: &[&str] = &["USHER_CONFIG", "USHER_TEST_POSTGRES_URL"];

#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: String,
    pub bind: String,
    pub public_url: String,
    pub admin_password: Option<String>,
    pub smtp_url: Option<String>,
    pub mail_from: String,
    pub platform_name: String,
    pub invitation_ttl: Duration,
    pub import_max_bytes: u64,
    pub metrics: bool,
    pub log: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            database_url: "sqlite://./usher-data/usher.db".into(),
            bind: "127.0.0.1:8080".into(),
            public_url: "http://127.0.0.1:8080".into(),
            admin_password: None,
            smtp_url: None,
            mail_from: "Usher <no-reply@localhost>".into(),
            platform_name: "Usher".into(),
            invitation_ttl: Duration::from_secs(24 * 3600),
            import_max_bytes: 536_870_912,
            metrics: false,
            log: "info".into(),
        }
    }
}

/// A loaded configuration and what was odd about its sources.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
}

impl Config {
    /// Reads `usher.toml` (or the file named by `USHER_CONFIG`) and the process environment.
    pub fn load() -> anyhow::Result<Loaded> {
        let file = std::env::var("USHER_CONFIG").ok();
        let path = file.clone().unwrap_or_else(|| "usher.toml".into());
        let text = if Path::new(&path).exists() {
            Some(std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?)
        } else if file.is_some() {
            bail!("USHER_CONFIG names {path}, which does not exist");
        } else {
            None
        };
        Self::from_sources(text.as_deref(), std::env::vars())
    }

    /// The same from given sources, for tests.
    pub fn from_sources(
        toml_text: Option<&str>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Loaded> {
        let mut values: BTreeMap<String, String> = BTreeMap::new();
        let mut warnings = Vec::new();
        if let Some(text) = toml_text {
            let table: toml::Table = text.parse().context("usher.toml is not valid TOML")?;
            for (key, value) in table {
                if !KEYS.contains(&key.as_str()) {
                    warnings.push(format!("usher.toml: unknown key {key:?} ignored"));
                    continue;
                }
                let value = match value {
                    toml::Value::String(s) => s,
                    toml::Value::Integer(i) => i.to_string(),
                    toml::Value::Boolean(b) => b.to_string(),
                    other => bail!("usher.toml: {key} has an unsupported value {other:?}"),
                };
                values.insert(key, value);
            }
        }
        for (name, value) in env {
            let Some(key) = name.strip_prefix("USHER_") else {
                continue;
            };
            let key = key.to_lowercase();
            if KEYS.contains(&key.as_str()) {
                values.insert(key, value);
            } else if !OTHER_VARIABLES.contains(&name.as_str()) {
                warnings.push(format!("unknown environment variable {name} ignored"));
            }
        }
        let mut config = Config::default();
        let mut public_url_set = false;
        for (key, value) in values {
            let bad = |what: &str| anyhow!("USHER_{}: {what}, got {value:?}", key.to_uppercase());
            match key.as_str() {
                "database_url" => config.database_url = value.clone(),
                "bind" => config.bind = value.clone(),
                "public_url" => {
                    config.public_url = value.trim_end_matches('/').to_owned();
                    public_url_set = true;
                }
                "admin_password" => config.admin_password = Some(value.clone()),
                "smtp_url" => config.smtp_url = Some(value.clone()).filter(|v| !v.is_empty()),
                "mail_from" => config.mail_from = value.clone(),
                "platform_name" => config.platform_name = value.clone(),
                "invitation_ttl" => {
                    config.invitation_ttl =
                        parse_duration(&value).ok_or_else(|| bad("expected 30s, 15m, 24h or 7d"))?
                }
                "import_max_bytes" => {
                    config.import_max_bytes = value
                        .parse()
                        .map_err(|_| bad("expected a number of bytes"))?
                }
                "metrics" => {
                    config.metrics = match value.as_str() {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => return Err(bad("expected true or false")),
                    }
                }
                "log" => config.log = value.clone(),
                _ => unreachable!("keys are checked above"),
            }
        }
        if !public_url_set {
            config.public_url = format!("http://{}", config.bind);
        }
        Ok(Loaded { config, warnings })
    }

    /// Cookies get `Secure` when people reach the server over https.
    pub fn secure_cookies(&self) -> bool {
        self.public_url.starts_with("https://")
    }
}

/// `30s`, `15m`, `24h`, `7d`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (number, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = number.parse().ok()?;
    let seconds = match unit {
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        "d" => n.checked_mul(86_400)?,
        _ => return None,
    };
    (seconds > 0).then(|| Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_follow_the_interface() {
        let c = Config::from_sources(None, env(&[])).unwrap().config;
        assert_eq!(c.database_url, "sqlite://./usher-data/usher.db");
        assert_eq!(c.public_url, "http://127.0.0.1:8080");
        assert_eq!(c.invitation_ttl, Duration::from_secs(86_400));
    }

    #[test]
    fn environment_wins_over_the_file_and_unknowns_are_reported() {
        let loaded = Config::from_sources(
            Some("bind = \"0.0.0.0:9000\"\nplatform_name = \"Acme\"\ncolour = \"red\"\n"),
            env(&[
                ("USHER_PLATFORM_NAME", "Beta"),
                ("USHER_TYPO", "1"),
                ("HOME", "/"),
            ]),
        )
        .unwrap();
        assert_eq!(loaded.config.bind, "0.0.0.0:9000");
        assert_eq!(loaded.config.public_url, "http://0.0.0.0:9000");
        assert_eq!(loaded.config.platform_name, "Beta");
        assert_eq!(loaded.warnings.len(), 2, "{:?}", loaded.warnings);
    }

    #[test]
    fn durations_and_bad_values() {
        assert_eq!(parse_duration("15m"), Some(Duration::from_secs(900)));
        assert_eq!(parse_duration("7d"), Some(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("7"), None);
        assert_eq!(parse_duration("0s"), None);
        assert!(Config::from_sources(None, env(&[("USHER_METRICS", "maybe")])).is_err());
    }
}
