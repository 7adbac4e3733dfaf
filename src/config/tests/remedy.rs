//! Issue 18's `remedy` and `restart_when_overloaded`: the issue's TOML as written, and each
//! mistake at its file:line:col.

use super::parse_str;
use crate::event::RemedyAction;

/// Exactly as issue 18 writes it.
const ISSUE_18: &str = r#"[[probe]]
name = "db"
kind = "postgres"
address = "127.0.0.1:5432"
user = "sentinel"
remedy = [
  { action = "cancel_queries", older_than = "5m" },
  { action = "terminate_idle_in_transaction", older_than = "10m" },
  { action = "terminate_lock_blockers", waiting_longer_than = "30s" },
]
heal = { action = "docker_restart", container = "postgres" }
"#;

#[test]
fn the_issue_18_remedy_is_accepted_as_written() {
    let config = parse_str(ISSUE_18).unwrap();
    let probe = &config.probes[0];
    let steps = probe.remedy.as_ref().unwrap().get_ref();
    let actions: Vec<RemedyAction> = steps.iter().map(|s| s.action).collect();
    assert_eq!(
        actions,
        [
            RemedyAction::CancelQueries,
            RemedyAction::TerminateIdleInTransaction,
            RemedyAction::TerminateLockBlockers
        ]
    );
    let secs = |d: Option<crate::units::HumanDuration>| d.map(|d| d.get().as_secs());
    assert_eq!(secs(steps[0].older_than), Some(300));
    assert_eq!(secs(steps[1].older_than), Some(600));
    assert_eq!(secs(steps[2].waiting_longer_than), Some(30));
    let remedy = crate::remedy::Remedy::from_config(
        probe,
        &crate::docker::DockerEngine::new(std::path::Path::new("/nonexistent/docker.sock")),
        std::time::Duration::from_secs(60),
    )
    .unwrap();
    assert_eq!(remedy.steps.len(), 3);
    assert!(!remedy.restart_when_overloaded);
    assert_eq!(remedy.steps[2].threshold.as_secs(), 30);
    assert_eq!(remedy.steps[2].verify_within.as_secs(), 60);
}

#[test]
fn remedy_mistakes_point_at_file_line_column() {
    let pg = "[[probe]]\nname = \"db\"\nkind = \"postgres\"\nuser = \"u\"\nheal = { action = \"exec\", command = [\"true\"] }\n";
    let cases: Vec<(String, &str)> = vec![
        (
            format!("{pg}remedy = [{{ action = \"vacuum_full\", older_than = \"5m\" }}]\n"),
            "t.toml:6:22: unknown variant `vacuum_full`, expected one of `cancel_queries`, `terminate_idle_in_transaction`, `terminate_lock_blockers`",
        ),
        (
            format!("{pg}remedy = [{{ action = \"cancel_queries\", older_than = \"5 fortnights\" }}]\n"),
            "t.toml:6:53: invalid duration \"5 fortnights\"",
        ),
        (
            format!("{pg}remedy = [\n  {{ action = \"cancel_queries\", older_than = \"5m\" }},\n  {{ action = \"terminate_lock_blockers\" }},\n]\n"),
            "t.toml:8:14: probe \"db\": remedy step 2: terminate_lock_blockers needs `waiting_longer_than`, e.g. waiting_longer_than = \"5m\"",
        ),
        (
            format!("{pg}remedy = [{{ action = \"cancel_queries\", older_than = \"5m\", waiting_longer_than = \"1s\" }}]\n"),
            "t.toml:6:81: probe \"db\": remedy step 1: `waiting_longer_than` does not apply to cancel_queries; it takes `older_than`",
        ),
        (
            format!("{pg}remedy = [{{ action = \"terminate_idle_in_transaction\", older_than = \"0s\" }}]\n"),
            "t.toml:6:68: probe \"db\": remedy step 1: `older_than` must be above zero",
        ),
        (
            format!("{pg}remedy = [{{ action = \"cancel_queries\", older_than = \"5m\", exclude_roles = [\"\"] }}]\n"),
            "t.toml:6:75: probe \"db\": remedy step 1: `exclude_roles` holds an empty name",
        ),
        (
            format!("{pg}remedy = [{{ action = \"cancel_queries\", older_than = \"5m\", oldest = true }}]\n"),
            "t.toml:6:59: unknown field `oldest`",
        ),
        (
            format!("{pg}remedy = []\n"),
            "t.toml:6:10: probe \"db\": remedy lists no steps",
        ),
        (
            "[[probe]]\nname = \"web\"\nkind = \"tcp\"\naddress = \"h:1\"\nheal = { action = \"exec\", command = [\"true\"] }\nremedy = [{ action = \"cancel_queries\", older_than = \"5m\" }]\n".into(),
            "t.toml:6:10: probe \"web\": `remedy` does not apply to tcp probes",
        ),
        (
            "[[probe]]\nname = \"db\"\nkind = \"postgres\"\nuser = \"u\"\nrestart_when_overloaded = true\n".into(),
            "t.toml:5:27: probe \"db\": `restart_when_overloaded` needs a `heal` table",
        ),
        (
            format!("{pg}restart_when_overloaded = \"yes\"\n"),
            "t.toml:6:27: invalid type: string \"yes\", expected a boolean",
        ),
    ];
    for (source, want) in cases {
        let err = parse_str(&source).unwrap_err();
        assert!(
            err.starts_with(want),
            "\n got: {err}\nwant: {want}\n{source}"
        );
    }
}
