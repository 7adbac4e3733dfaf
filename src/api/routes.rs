//! The one route table of the control socket: each route's method, path template and guard are
//! written once here; the server matches requests against it (matchit), `sentinelctl` fills it in.
//!
//! Path parameters travel percent-encoded (any name round-trips, `/` and `%` included) and query
//! strings as `application/x-www-form-urlencoded`; a trailing slash is ignored.

use std::borrow::Cow;
use std::sync::LazyLock;

use hyper::Method;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// What a route needs besides a connection to the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// Anyone who can open the socket.
    Open,
    /// Root or a member of the socket's group; the body is read (bounded) first, and the call is
    /// audited. For routes that change something, or cost something (the AI summaries).
    Authorized,
}

/// One row of the table.
#[derive(Debug)]
struct Spec {
    method: Method,
    template: &'static str,
    guard: Guard,
}

/// Declares [`Route`] (each variant with at most one path parameter), [`RouteId`] and the table.
macro_rules! routes {
    ($(
        $(#[$doc:meta])*
        $variant:ident $({ $param:ident })? => $method:ident $template:literal $guard:ident;
    )*) => {
        /// A control-API call, parameters decoded.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Route {
            $( $(#[$doc])* $variant $({ $param: String })?, )*
        }

        /// A route without its parameter: the index into the table.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum RouteId {
            $( $variant, )*
        }

        impl RouteId {
            /// Every route, in table order.
            pub const ALL: &'static [RouteId] = &[$(RouteId::$variant,)*];

            fn spec(self) -> Spec {
                match self {
                    $(RouteId::$variant => Spec {
                        method: Method::$method,
                        template: $template,
                        guard: Guard::$guard,
                    },)*
                }
            }
        }

        impl Route {
            pub fn id(&self) -> RouteId {
                match self {
                    $(Route::$variant { .. } => RouteId::$variant,)*
                }
            }

            /// The path parameter's (decoded) value, for routes that have one.
            pub fn param(&self) -> Option<&str> {
                match self {
                    $(Route::$variant $({ $param })? => routes!(@param $($param)?),)*
                }
            }

            /// The route `id` with its parameter; `None` when the presence of `param` does not
            /// fit the route.
            fn with_param(id: RouteId, param: Option<String>) -> Option<Route> {
                match id {
                    $(RouteId::$variant => routes!(@build $variant param $($param)?),)*
                }
            }
        }
    };
    (@param) => { None };
    (@param $param:ident) => { Some($param.as_str()) };
    (@build $variant:ident $value:ident) => {
        match $value {
            None => Some(Route::$variant),
            Some(_) => None,
        }
    };
    (@build $variant:ident $value:ident $param:ident) => {
        $value.map(|$param| Route::$variant { $param })
    };
}

routes! {
    /// Daemon, probes, heals, capabilities.
    Status => GET "/v1/status" Open;
    /// Journal history, or with `follow=1` an NDJSON stream.
    Events => GET "/v1/events" Open;
    Reload => POST "/v1/reload" Authorized;
    /// `?for=30m` (`for=0` lifts the silence).
    Silence { probe } => POST "/v1/probes/{probe}/silence" Authorized;
    HealNow { probe } => POST "/v1/heal/{probe}/now" Authorized;
    HealReset { probe } => POST "/v1/heal/{probe}/reset" Authorized;
    /// `?limit=N`.
    Archives => GET "/v1/archives" Open;
    /// `?limit=N`.
    Outbox => GET "/v1/outbox" Open;
    /// `?since=7d`.
    Analyze => GET "/v1/analyze" Open;
    /// `?since=7d`; sends the analysis to the AI endpoint, which may cost money.
    AnalyzeSummary => GET "/v1/analyze/summary" Authorized;
    /// `?by=&window=&limit=`.
    TenantsTop => GET "/v1/tenants/top" Open;
    /// `?window=`.
    Tenant { tenant } => GET "/v1/tenants/{tenant}" Open;
    ChaosList => GET "/v1/chaos" Open;
    ChaosProfiles => GET "/v1/chaos/profiles" Open;
    /// JSON body: a `StartRequest`.
    ChaosStart => POST "/v1/chaos/start" Authorized;
    ChaosStopAll => POST "/v1/chaos/stop-all" Authorized;
    ChaosShow { experiment } => GET "/v1/chaos/{experiment}" Open;
    ChaosStop { experiment } => POST "/v1/chaos/{experiment}/stop" Authorized;
    ChaosReport { experiment } => GET "/v1/chaos/{experiment}/report" Open;
    /// Sends the report to the AI endpoint, which may cost money.
    ChaosSummary { experiment } => GET "/v1/chaos/{experiment}/summary" Authorized;
    DrillList => GET "/v1/drills" Open;
    /// A run's id.
    DrillShow { run } => GET "/v1/drills/{run}" Open;
    /// A configured drill's name.
    DrillRun { drill } => POST "/v1/drills/{drill}/run" Authorized;
    /// A run's id.
    DrillStop { run } => POST "/v1/drills/{run}/stop" Authorized;
    /// Sends a labelled test message to the channel now; answers with the receiver's reply.
    NotifyTest { channel } => POST "/v1/notify/{channel}/test" Authorized;
    /// Maintenance windows in force, and each schedule with its next start.
    MaintenanceList => GET "/v1/maintenance" Open;
    /// JSON body: a `maintenance::StartRequest`; answers with the window (its id).
    MaintenanceStart => POST "/v1/maintenance" Authorized;
    /// A window's id.
    MaintenanceEnd { window } => POST "/v1/maintenance/{window}/end" Authorized;
    /// `?for=1h&reason=...` (`for=0` lifts the mute): holds the tenant's alerts; it still ranks.
    TenantMute { tenant } => POST "/v1/tenants/{tenant}/mute" Authorized;
    /// The tenant mutes in force.
    TenantMutes => GET "/v1/tenants/mutes" Open;
    /// `?since=30d&probe=P`: availability from the journal's daily rollups.
    Uptime => GET "/v1/uptime" Open;
    /// A configured drill's name; `?last=N`: its runs' detect / act / recover times and trend.
    DrillTrend { drill } => GET "/v1/drills/{drill}/trend" Open;
    /// `?signal=errors|latency&tenant=T&window=10m&limit=N`: dimension values over-represented
    /// among errors or slow requests.
    TenantsExplain => GET "/v1/tenants/explain" Open;
}

/// Why a request matched no route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Miss {
    /// No template matches the path: 404.
    NotFound,
    /// The path is known, the method is not one of `allowed`: 405.
    MethodNotAllowed { allowed: Vec<Method> },
}

/// Characters left as they are in a path segment: RFC 3986's unreserved set.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Templates to the routes (one per method) that share them.
static ROUTER: LazyLock<matchit::Router<Vec<RouteId>>> = LazyLock::new(|| {
    let mut templates: Vec<(&'static str, Vec<RouteId>)> = Vec::new();
    for &id in RouteId::ALL {
        let template = id.spec().template;
        match templates.iter_mut().find(|(t, _)| *t == template) {
            Some((_, ids)) => ids.push(id),
            None => templates.push((template, vec![id])),
        }
    }
    let mut router = matchit::Router::new();
    for (template, ids) in templates {
        router
            .insert(template, ids)
            .expect("the route table has no conflicting templates");
    }
    router
});

impl RouteId {
    pub fn method(self) -> Method {
        self.spec().method
    }

    pub fn template(self) -> &'static str {
        self.spec().template
    }

    pub fn guard(self) -> Guard {
        self.spec().guard
    }
}

impl Route {
    pub fn method(&self) -> Method {
        self.id().method()
    }

    pub fn guard(&self) -> Guard {
        self.id().guard()
    }

    /// The path to request, its parameter percent-encoded.
    pub fn path(&self) -> String {
        let template = self.id().template();
        let (Some(value), Some(open), Some(close)) =
            (self.param(), template.find('{'), template.find('}'))
        else {
            return template.to_string();
        };
        let fill =
            |encoded: &str| format!("{}{encoded}{}", &template[..open], &template[close + 1..]);
        let encoded: Cow<str> = match value {
            // Dot segments would be read as "here" and "up" by anything normalizing paths.
            "." => "%2E".into(),
            ".." => "%2E%2E".into(),
            other => utf8_percent_encode(other, SEGMENT).into(),
        };
        let path = fill(&encoded);
        if Route::resolve(&self.method(), &path).as_ref() == Ok(self) {
            return path;
        }
        // The value spells a fixed segment (a tenant called `top`, an experiment called
        // `profiles`): encoding its first character makes it read as the parameter.
        let mut chars = value.chars();
        let first = chars.next().map(String::from).unwrap_or_default();
        let first: String = first.bytes().map(|b| format!("%{b:02X}")).collect();
        fill(&format!(
            "{first}{}",
            utf8_percent_encode(chars.as_str(), SEGMENT)
        ))
    }

    /// This route with a query string (`application/x-www-form-urlencoded`).
    pub fn with_query<K: AsRef<str>, V: AsRef<str>>(
        self,
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Target {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.extend_pairs(pairs);
        Target {
            route: self,
            query: query.finish(),
        }
    }

    /// The route `method` and `path` (without query) ask for; a trailing slash is ignored.
    pub fn resolve(method: &Method, path: &str) -> Result<Route, Miss> {
        let trimmed = path.trim_end_matches('/');
        let matched = ROUTER.at(trimmed).map_err(|_| Miss::NotFound)?;
        let Some(&id) = matched.value.iter().find(|id| id.method() == method) else {
            return Err(Miss::MethodNotAllowed {
                allowed: matched.value.iter().map(|id| id.method()).collect(),
            });
        };
        let param = matched
            .params
            .iter()
            .next()
            .map(|(_, raw)| percent_decode_str(raw).decode_utf8_lossy().into_owned());
        Route::with_param(id, param).ok_or(Miss::NotFound)
    }
}

/// A route and its query string: what `sentinelctl` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    route: Route,
    query: String,
}

impl Target {
    pub fn route(&self) -> &Route {
        &self.route
    }

    pub fn method(&self) -> Method {
        self.route.method()
    }

    /// Path and query, ready for the request line.
    pub fn uri(&self) -> String {
        match self.query.is_empty() {
            true => self.route.path(),
            false => format!("{}?{}", self.route.path(), self.query),
        }
    }
}

impl From<Route> for Target {
    fn from(route: Route) -> Self {
        Target {
            route,
            query: String::new(),
        }
    }
}

/// The decoded `key=value` pairs of a query string, in order (`+` is a space).
pub fn query_pairs(query: Option<&str>) -> impl Iterator<Item = (String, String)> + '_ {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names that need encoding in a path segment.
    const AWKWARD: &[&str] = &[
        "web",
        "acme/eu",
        "a b+c",
        "50%",
        "%2F",
        "x?y#z",
        "ü-ñ 東京",
        ".",
        "..",
        "run",
        "stop",
        "profiles",
        "top",
        "a/../b",
        "semi;colon&amp=",
    ];

    fn sample(id: RouteId, param: &str) -> Route {
        let needs = id.template().contains('{');
        Route::with_param(id, needs.then(|| param.to_string())).expect("fits")
    }

    #[test]
    fn every_route_round_trips_with_awkward_names() {
        for &id in RouteId::ALL {
            for name in AWKWARD {
                let route = sample(id, name);
                let path = route.path();
                assert!(path.starts_with("/v1/"), "{path}");
                let uri: hyper::Uri = path.parse().unwrap_or_else(|e| panic!("{path}: {e}"));
                assert_eq!(uri.path(), path, "the path survives as one URI path");
                assert_eq!(
                    Route::resolve(&route.method(), uri.path()),
                    Ok(route.clone()),
                    "{id:?} {name:?} as {path}"
                );
                // With a trailing slash too.
                assert_eq!(
                    Route::resolve(&route.method(), &format!("{path}/")),
                    Ok(route),
                    "{id:?} {name:?} as {path}/"
                );
            }
        }
    }

    #[test]
    fn templates_are_unique_per_method_and_versioned() {
        for (i, a) in RouteId::ALL.iter().enumerate() {
            assert!(a.template().starts_with("/v1/"), "{a:?}");
            for b in &RouteId::ALL[i + 1..] {
                assert!(
                    (a.template(), a.method()) != (b.template(), b.method()),
                    "{a:?} and {b:?}"
                );
            }
        }
        // The table builds.
        LazyLock::force(&ROUTER);
    }

    #[test]
    fn misses_and_guards() {
        let cases: &[(Method, &str, Result<Route, Miss>)] = &[
            (Method::GET, "/v1/status", Ok(Route::Status)),
            (Method::GET, "/v1/status/", Ok(Route::Status)),
            (Method::GET, "/v1/nope", Err(Miss::NotFound)),
            (Method::GET, "/", Err(Miss::NotFound)),
            (Method::GET, "", Err(Miss::NotFound)),
            (
                Method::GET,
                "/v1/reload",
                Err(Miss::MethodNotAllowed {
                    allowed: vec![Method::POST],
                }),
            ),
            (
                Method::POST,
                "/v1/chaos/profiles",
                Err(Miss::MethodNotAllowed {
                    allowed: vec![Method::GET],
                }),
            ),
            (
                Method::GET,
                "/v1/chaos/x1",
                Ok(Route::ChaosShow {
                    experiment: "x1".into(),
                }),
            ),
            (Method::GET, "/v1/chaos/x1/y/report", Err(Miss::NotFound)),
            (Method::GET, "/v1/tenants/a/b", Err(Miss::NotFound)),
            (Method::GET, "/v1/tenants/top", Ok(Route::TenantsTop)),
            (Method::POST, "/v1/heal/web/restart", Err(Miss::NotFound)),
            (Method::POST, "/v1/drills//run", Err(Miss::NotFound)),
            (
                Method::GET,
                "/v1/drills/d%2Fx",
                Ok(Route::DrillShow { run: "d/x".into() }),
            ),
            (
                Method::HEAD,
                "/v1/events",
                Err(Miss::MethodNotAllowed {
                    allowed: vec![Method::GET],
                }),
            ),
        ];
        for (method, path, want) in cases {
            assert_eq!(&Route::resolve(method, path), want, "{method} {path}");
        }
        // Names that spell a fixed segment, or hold a slash, stay the parameter.
        let spelled = [
            (
                Route::Tenant {
                    tenant: "top".into(),
                },
                "/v1/tenants/%74op",
            ),
            (
                Route::ChaosShow {
                    experiment: "profiles".into(),
                },
                "/v1/chaos/%70rofiles",
            ),
            (
                Route::Tenant {
                    tenant: "acme/eu".into(),
                },
                "/v1/tenants/acme%2Feu",
            ),
            (
                Route::Silence {
                    probe: "web.1".into(),
                },
                "/v1/probes/web.1/silence",
            ),
        ];
        for (route, path) in spelled {
            assert_eq!(route.path(), path);
        }
        let authorized: Vec<RouteId> = RouteId::ALL
            .iter()
            .copied()
            .filter(|id| id.guard() == Guard::Authorized)
            .collect();
        assert_eq!(
            authorized,
            [
                RouteId::Reload,
                RouteId::Silence,
                RouteId::HealNow,
                RouteId::HealReset,
                RouteId::AnalyzeSummary,
                RouteId::ChaosStart,
                RouteId::ChaosStopAll,
                RouteId::ChaosStop,
                RouteId::ChaosSummary,
                RouteId::DrillRun,
                RouteId::DrillStop,
                RouteId::NotifyTest,
                RouteId::MaintenanceStart,
                RouteId::MaintenanceEnd,
                RouteId::TenantMute,
            ]
        );
        // Every POST is guarded.
        for id in RouteId::ALL {
            if id.method() == Method::POST {
                assert_eq!(id.guard(), Guard::Authorized, "{id:?}");
            }
        }
    }

    #[test]
    fn queries_are_form_encoded_both_ways() {
        let since = "2023-11-14T22:13:20+01:00";
        let target =
            Route::Events.with_query([("since", since), ("kind", "a,b"), ("note", "x y&z=1")]);
        let uri: hyper::Uri = target.uri().parse().unwrap();
        assert_eq!(uri.path(), "/v1/events");
        let pairs: Vec<(String, String)> = query_pairs(uri.query()).collect();
        assert_eq!(
            pairs,
            [
                ("since".to_string(), since.to_string()),
                ("kind".into(), "a,b".into()),
                ("note".into(), "x y&z=1".into()),
            ]
        );
        assert_eq!(Target::from(Route::Status).uri(), "/v1/status");
        assert_eq!(
            query_pairs(Some("a=%3A&b=1+2&&c")).collect::<Vec<_>>(),
            [
                ("a".to_string(), ":".to_string()),
                ("b".into(), "1 2".into()),
                ("c".into(), String::new()),
            ]
        );
    }
}
