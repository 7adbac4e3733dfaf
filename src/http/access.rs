//! Who may read what on the public listener: `/metrics`, the status page and the tenant ranking
//! are each open, off, or behind a read token; bearer tokens are checked here for ingest too.
//!
//! Read tokens and ingest tokens are separate lists: an ingest token (often baked into every app
//! instance) does not open `/metrics`, and a read token (a dashboard's) does not allow ingest.

use std::sync::{Arc, RwLock};

use hyper::header::HeaderMap;
use serde::Deserialize;

/// How a read route is exposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Exposure {
    /// Anyone who reaches the listener.
    #[default]
    On,
    /// 404, as if the route did not exist.
    Off,
    /// 401 without `Authorization: Bearer READ_TOKEN`.
    Token,
}

impl Exposure {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::On => "on",
            Self::Off => "off",
            Self::Token => "token",
        }
    }
}

/// The read routes' exposure and the read tokens; replaced whole on reload.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessSettings {
    pub metrics: Exposure,
    pub status_page: Exposure,
    /// Off unless configured: tenant names are customer data.
    pub tenants: Exposure,
    pub read_tokens: Vec<String>,
}

impl Default for AccessSettings {
    fn default() -> Self {
        Self {
            metrics: Exposure::On,
            status_page: Exposure::On,
            tenants: Exposure::Off,
            read_tokens: Vec::new(),
        }
    }
}

/// A read route of the public listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadRoute {
    Metrics,
    StatusPage,
    /// `GET /v1/tenants/top`.
    Tenants,
}

/// What a request to a read route gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Serve,
    NotFound,
    Unauthorized,
}

/// Shared by every connection; `configure` on start and reload.
#[derive(Debug, Clone, Default)]
pub struct Access {
    settings: Arc<RwLock<AccessSettings>>,
}

impl Access {
    pub fn configure(&self, settings: AccessSettings) {
        *self.settings.write().unwrap_or_else(|p| p.into_inner()) = settings;
    }

    /// May this request read `route`?
    pub fn check(&self, route: ReadRoute, headers: &HeaderMap) -> Verdict {
        let settings = self.settings.read().unwrap_or_else(|p| p.into_inner());
        let exposure = match route {
            ReadRoute::Metrics => settings.metrics,
            ReadRoute::StatusPage => settings.status_page,
            ReadRoute::Tenants => settings.tenants,
        };
        match exposure {
            Exposure::On => Verdict::Serve,
            Exposure::Off => Verdict::NotFound,
            // Validation makes sure "token" comes with tokens; none would lock everyone out,
            // never let everyone in.
            Exposure::Token if settings.read_tokens.is_empty() => Verdict::Unauthorized,
            Exposure::Token => match bearer_matches(headers, &settings.read_tokens) {
                true => Verdict::Serve,
                false => Verdict::Unauthorized,
            },
        }
    }
}

/// True when the request carries `Authorization: Bearer T` for one of `tokens`.
pub fn bearer_matches(headers: &HeaderMap, tokens: &[String]) -> bool {
    let presented = headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let Some(presented) = presented else {
        return false;
    };
    // Compare against every token without stopping early: no timing hint about which is close.
    tokens.iter().fold(false, |found, token| {
        found | constant_time_eq(token.as_bytes(), presented.as_bytes())
    })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use hyper::header::HeaderValue;

    use super::*;

    fn with(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            hyper::header::AUTHORIZATION,
            HeaderValue::from_str(value).unwrap(),
        );
        headers
    }

    #[test]
    fn bearer_tokens() {
        let tokens = vec!["alpha".to_string(), "beta".to_string()];
        assert!(!bearer_matches(&HeaderMap::new(), &tokens));
        assert!(bearer_matches(&with("Bearer beta"), &tokens));
        assert!(!bearer_matches(&with("Bearer gamma"), &tokens));
        assert!(!bearer_matches(&with("Bearer bet"), &tokens));
        assert!(!bearer_matches(&with("Basic YWxwaGE="), &tokens));
        assert!(!bearer_matches(&with("Bearer beta"), &[]));
    }

    #[test]
    fn verdict_table() {
        let access = Access::default();
        let none = HeaderMap::new();
        let good = with("Bearer reader");
        let cases = [
            (Exposure::On, &none, Verdict::Serve),
            (Exposure::Off, &good, Verdict::NotFound),
            (Exposure::Token, &none, Verdict::Unauthorized),
            (
                Exposure::Token,
                &with("Bearer ingest"),
                Verdict::Unauthorized,
            ),
            (Exposure::Token, &good, Verdict::Serve),
        ];
        for (exposure, headers, verdict) in cases {
            access.configure(AccessSettings {
                metrics: exposure,
                status_page: Exposure::Off,
                tenants: exposure,
                read_tokens: vec!["reader".into()],
            });
            for route in [ReadRoute::Metrics, ReadRoute::Tenants] {
                assert_eq!(
                    access.check(route, headers),
                    verdict,
                    "{route:?} {exposure:?}"
                );
            }
            assert_eq!(
                access.check(ReadRoute::StatusPage, headers),
                Verdict::NotFound
            );
        }
        access.configure(AccessSettings {
            metrics: Exposure::Token,
            status_page: Exposure::On,
            tenants: Exposure::Off,
            read_tokens: vec![],
        });
        assert_eq!(
            access.check(ReadRoute::Metrics, &good),
            Verdict::Unauthorized,
            "no tokens locks out, never opens"
        );
        access.configure(AccessSettings::default());
        assert_eq!(
            access.check(ReadRoute::Tenants, &good),
            Verdict::NotFound,
            "the tenant ranking is off unless configured"
        );
    }
}
