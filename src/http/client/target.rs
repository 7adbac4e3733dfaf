//! Outbound URLs: `HttpTarget` parses one (scheme, host, port, path, credentials) for the
//! probes, the notifiers and the AI summary, and shows it without its secrets.

use hyper::Uri;

/// Why a URL cannot be an outbound target; the text quotes the URL as written.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("invalid URL \"{url}\": {source}")]
    Invalid {
        url: String,
        #[source]
        source: hyper::http::uri::InvalidUri,
    },
    #[error("unsupported URL scheme in \"{url}\": expected http:// or https://host[:port]/path")]
    Scheme { url: String },
    #[error("invalid URL \"{url}\": no host")]
    NoHost { url: String },
}

/// A parsed outbound URL (a probe's, a webhook's, an AI endpoint's): where to connect and
/// what to ask for.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpTarget {
    /// `https`: speak TLS after connecting.
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// `host[:port]` as written, without any `user:password@`: the Host header, and what
    /// messages show.
    pub authority: String,
    pub path_and_query: String,
    /// `user:password` from the URL (percent-decoded): sent as HTTP Basic auth, never shown.
    userinfo: Option<String>,
    /// The URL without credentials, parsed once: what the connector dials on every request.
    uri: Uri,
}

impl std::fmt::Debug for HttpTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display())
    }
}

impl HttpTarget {
    pub fn parse(url: &str) -> Result<Self, TargetError> {
        let owned = || url.to_string();
        let uri: Uri = url.parse().map_err(|source| TargetError::Invalid {
            url: owned(),
            source,
        })?;
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(TargetError::Scheme { url: owned() }),
        };
        let authority = uri
            .authority()
            .ok_or_else(|| TargetError::NoHost { url: owned() })?;
        let (userinfo, host_port) = match authority.as_str().rsplit_once('@') {
            Some((userinfo, host_port)) => (Some(userinfo), host_port),
            None => (None, authority.as_str()),
        };
        let path_and_query = uri
            .path_and_query()
            .map_or_else(|| "/".to_string(), |p| p.as_str().to_string());
        let scheme = if tls { "https" } else { "http" };
        let dialed = format!("{scheme}://{host_port}{path_and_query}");
        let dialed = dialed.parse().map_err(|source| TargetError::Invalid {
            url: owned(),
            source,
        })?;
        Ok(Self {
            tls,
            host: authority.host().trim_matches(['[', ']']).to_string(),
            port: authority.port_u16().unwrap_or(if tls { 443 } else { 80 }),
            authority: host_port.to_string(),
            path_and_query,
            userinfo: userinfo.map(|u| {
                percent_encoding::percent_decode_str(u)
                    .decode_utf8_lossy()
                    .into_owned()
            }),
            uri: dialed,
        })
    }

    /// `https://host[:port]/path`: the scheme as configured, without credentials or query
    /// string, so it is safe on the status page, in `sentinelctl status` and in messages.
    pub fn display(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        let path = self
            .path_and_query
            .split_once('?')
            .map_or(self.path_and_query.as_str(), |(path, _)| path);
        format!("{scheme}://{}{path}", self.authority)
    }

    /// `scheme://host[:port]/path?query` without credentials: what the connector dials.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// `Authorization: Basic ...` for a URL that carries `user:password@`.
    pub fn basic_auth(&self) -> Option<String> {
        use base64::Engine as _;
        let userinfo = self.userinfo.as_ref()?;
        Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(userinfo)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_show_no_credentials_and_no_query() {
        let target =
            HttpTarget::parse("https://us%3Aer:p%40ss@example.com:8443/path?key=secret").unwrap();
        assert_eq!(target.display(), "https://example.com:8443/path");
        assert_eq!(target.authority, "example.com:8443");
        assert_eq!(target.path_and_query, "/path?key=secret");
        assert_eq!(
            (target.host.as_str(), target.port, target.tls),
            ("example.com", 8443, true)
        );
        // base64("us:er:p@ss")
        assert_eq!(
            target.basic_auth().as_deref(),
            Some("Basic dXM6ZXI6cEBzcw==")
        );
        assert!(!format!("{target:?}").contains("secret"));
        let plain = HttpTarget::parse("http://127.0.0.1:9/healthz").unwrap();
        assert_eq!(plain.display(), "http://127.0.0.1:9/healthz");
        assert_eq!(plain.basic_auth(), None);
    }

    #[test]
    fn parse_table() {
        let ok = [
            (
                "http://127.0.0.1:9137/healthz",
                "127.0.0.1",
                9137,
                "/healthz",
            ),
            ("http://example.test/", "example.test", 80, "/"),
            ("http://example.test", "example.test", 80, "/"),
            ("http://[::1]:8080/a?b=c", "::1", 8080, "/a?b=c"),
        ];
        for (url, host, port, path) in ok {
            let target = HttpTarget::parse(url).unwrap();
            assert_eq!((target.host.as_str(), target.port), (host, port), "{url}");
            assert_eq!(target.path_and_query, path, "{url}");
        }
        let https = HttpTarget::parse("https://example.test/x").unwrap();
        assert!(https.tls);
        assert_eq!(https.port, 443);
        for bad in ["ftp://x/", "not a url", "/relative"] {
            assert!(HttpTarget::parse(bad).is_err(), "{bad}");
        }
    }
}
