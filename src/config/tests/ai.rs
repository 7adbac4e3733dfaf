//! `[ai]` sections as the loader reads them.

use std::path::Path;

fn parse(source: &str) -> Result<crate::config::Config, String> {
    crate::config::parse(source, Path::new("t.toml")).map_err(|e| e.to_string())
}

/// (source, Ok(Some((endpoint, model))) when enabled / Ok(None) when off, or an error prefix)
type Case = (
    &'static str,
    Result<Option<(&'static str, &'static str)>, &'static str>,
);

#[test]
fn ai_section_table() {
    let cases: &[Case] = &[
        ("", Ok(None)),
        ("[ai]\nmodel = \"m\"\n", Ok(None)),
        (
            "[ai]\nenabled = true\nmodel = \"gpt-4o-mini\"\n",
            Ok(Some(("https://api.openai.com", "gpt-4o-mini"))),
        ),
        (
            "[ai]\nenabled = true\nprovider = \"ollama\"\nmodel = \"llama3.1\"\n",
            Ok(Some(("http://127.0.0.1:11434", "llama3.1"))),
        ),
        (
            "[ai]\nenabled = true\n",
            Err("t.toml:2:11: [ai] enabled = true needs model"),
        ),
        (
            "[ai]\nendpoint = \"localhost:1\"\n",
            Err("t.toml:2:12: invalid ai.endpoint \"localhost:1\""),
        ),
        (
            "[ai]\nprovider = \"bard\"\n",
            Err("t.toml:2:12: unknown variant `bard`"),
        ),
    ];
    for (source, want) in cases {
        match (parse(source), want) {
            (Ok(config), Ok(want)) => {
                let got = config.ai.settings();
                let got = got
                    .as_ref()
                    .map(|s| (s.endpoint.as_str(), s.model.as_str()));
                assert_eq!(got, *want, "{source}");
            }
            (Err(err), Err(prefix)) => assert!(err.starts_with(prefix), "{source}: {err}"),
            (got, want) => panic!("{source}: got {got:?}, want {want:?}"),
        }
    }
}
