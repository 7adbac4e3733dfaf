//! `[chaos]` sections as the loader reads them.

use std::path::Path;

fn parse(source: &str) -> Result<crate::config::Config, String> {
    crate::config::parse(source, Path::new("t.toml")).map_err(|e| e.to_string())
}

const PROBE: &str = "[[probe]]\nname = \"api\"\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\n";

#[test]
fn a_profile_parses_into_settings() {
    let source = format!(
        "{PROBE}[chaos]\nmax_duration = \"2h\"\n\n[[chaos.profile]]\nname = \"slow-api\"\nduration = \"5m\"\ntarget = {{ container = \"api\", interface = \"eth0\" }}\nhalt_on = [\"probe:api\"]\nhypothesis = {{ steady_state = [\"api\"], recover_within = \"30s\", recover_from = \"rollback\" }}\nfaults = [{{ kind = \"tbf\", rate = \"1mbit/s\", burst = \"16KiB\", limit = \"64KiB\" }}]\n\n[[chaos.profile]]\nname = \"cpu\"\ntarget = {{ cgroup = \"/app\" }}\n[[chaos.profile.faults]]\nkind = \"cpu_quota\"\ncpus = 0.5\n"
    );
    let config = parse(&source).unwrap();
    let settings = config.chaos.settings();
    assert_eq!(settings.max_duration.as_secs(), 7200);
    assert_eq!(settings.profiles.len(), 2);
    assert_eq!(settings.profiles[0].duration.get().as_secs(), 300);
    assert_eq!(settings.profiles[0].spec.halt_on, ["probe:api"]);
    let hypothesis = settings.profiles[0].spec.hypothesis.as_ref().unwrap();
    assert_eq!(hypothesis.steady_state, ["api"]);
    assert_eq!(hypothesis.recover_within.unwrap().get().as_secs(), 30);
    assert_eq!(hypothesis.recover_from, crate::chaos::RecoverFrom::Rollback);
    assert_eq!(settings.profiles[1].spec.faults[0].name(), "cpu_quota");
    assert_eq!(config.chaos.handle_major(), 0x5e1d);
}

#[test]
fn profile_errors_point_at_file_line_column() {
    let cases: &[(&str, &str)] = &[
        (
            "[[chaos.profile]]\nname = \"a\"\nfaults = [{ kind = \"tbf\", rate = \"1mbit\", burst = 2000, limit = 9000 }]\n",
            "t.toml:3:",
        ),
        (
            "[[chaos.profile]]\nname = \"a\"\nfaults = [{ kind = \"netem\", delay = \"10ms\" }]\n",
            "t.toml:3:10: chaos profile \"a\": netem needs target.interface",
        ),
        (
            "[[chaos.profile]]\nname = \"a\"\ntarget = { interface = \"e\" }\nfaults = [{ kind = \"netem\", delay = \"10ms\" }]\nhalt_on = [\"probe:nope\"]\n",
            "t.toml:5:11: chaos profile \"a\": halt_on \"probe:nope\" names no configured probe",
        ),
        (
            "[[chaos.profile]]\nname = \"a\"\ntarget = { interface = \"e\" }\nfaults = [{ kind = \"netem\", delay = \"10ms\" }]\nduration = \"2h\"\n",
            "t.toml:5:12: chaos profile \"a\": duration must be above zero and at most max_duration (1h)",
        ),
        (
            "[[chaos.profile]]\nname = \"a\"\ntarget = { interface = \"e\", nic = \"x\" }\nfaults = []\n",
            "t.toml:3:",
        ),
        (
            "[[chaos.profile]]\nname = \"a\"\ntarget = { interface = \"e\" }\nfaults = [{ kind = \"netem\", delay = \"10ms\" }]\nhypothesis = { steady_state = [\"nope\"] }\n",
            "t.toml:5:14: chaos profile \"a\": hypothesis names probe \"nope\", which is not configured",
        ),
        (
            "[[chaos.profile]]\nname = \"a\"\ntarget = { interface = \"e\" }\nfaults = [{ kind = \"netem\", delay = \"10ms\" }]\nhypothesis = { recover_within = \"5s\" }\n",
            "t.toml:5:14: chaos profile \"a\": hypothesis needs steady_state",
        ),
        (
            "[[chaos.profile]]\nname = \"a\"\ntarget = { interface = \"e\" }\nfaults = [{ kind = \"tbf\", rate = \"1mbit/s\", burst = \"16KiB\", limit = \"32KiB\",\n  destinations = [\"10.0.0.1/8\"] }]\n",
            "t.toml:4:10: \"10.0.0.1/8\" has host bits set beyond /8: write 10.0.0.0/8",
        ),
        (
            "[[chaos.profile]]\nname = \"a\"\ntarget = { interface = \"e\" }\nfaults = [{ kind = \"tbf\", rate = \"1mbit/s\", burst = \"16KiB\", limit = \"32KiB\", destinations = [\"10.0.0.2:80\"] }]\n",
            "t.toml:4:10: chaos profile \"a\": a port in destinations needs protocol",
        ),
        (
            "[chaos]\nqdisc_handle = \"zz\"\n",
            "t.toml:2:16: invalid chaos.qdisc_handle \"zz\"",
        ),
        (
            "[chaos]\nmax_concurrent = 0\n",
            "t.toml:2:18: chaos.max_concurrent must be at least 1",
        ),
        (
            "[chaos]\ndrift_check = \"500ms\"\n",
            "t.toml:2:15: chaos.drift_check 500ms is too often: 0s (off) or at least 1s",
        ),
        (
            "[[chaos.profile]]\nname = \"a b\"\ntarget = { interface = \"e\" }\nfaults = [{ kind = \"netem\", delay = \"10ms\" }]\n",
            "t.toml:2:8: invalid chaos profile name \"a b\"",
        ),
    ];
    for (source, expected) in cases {
        let err = parse(source).expect_err(source);
        assert!(
            err.starts_with(expected),
            "source {source:?}\n  got:  {err}\n  want: {expected}"
        );
    }
}
