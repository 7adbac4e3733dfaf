//! Writes the packaged man pages and shell completions from the clap definitions in
//! `sentinel::cli`, so they can never drift from the binaries' real flags.
//!
//! Usage: `cargo run --release --example gen_assets -- OUT_DIR`
//!
//! Layout written (plain roff; packaging/build-packages.sh gzips the pages with `gzip -9n`):
//!   OUT_DIR/man/sentineld.8  sentineld-<command>.8     (daemon: section 8)
//!   OUT_DIR/man/sentinelctl.1  sentinelctl-<command>.1  sentinel-agent.1
//!   OUT_DIR/completions/{bash/NAME, zsh/_NAME, fish/NAME.fish} for sentinelctl and sentineld
//!
//! The man page date comes from `SOURCE_DATE_EPOCH` when set (reproducible builds);
//! otherwise it is left empty.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Command, CommandFactory};
use clap_complete::Shell;
use sentinel::cli::{AgentCli, CtlCli, DaemonCli};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Extra roff sections appended after clap's own, per binary.
fn extra_sections(name: &str) -> &'static str {
    match name {
        "sentineld" => concat!(
            ".SH SIGNALS\n",
            ".TP\n\\fBSIGHUP\\fR\nRe-read the configuration file. An invalid file is rejected with \
             file:line:col and the running configuration stays in force.\n",
            ".TP\n\\fBSIGTERM\\fR, \\fBSIGINT\\fR\nShut down: roll back running chaos experiments, \
             flush the journal, remove the control socket.\n",
            ".SH FILES\n",
            ".TP\n\\fI/etc/sentinel/sentineld.toml\\fR\nConfiguration (hot-reloaded on change).\n",
            ".TP\n\\fI/var/lib/sentinel/\\fR\nJournal database, archive spool, chaos rollback journal.\n",
            ".TP\n\\fI/run/sentinel/sentinel.sock\\fR\nControl socket used by \\fBsentinelctl\\fR(1), \
             mode 0660, group \\fBsentinel\\fR.\n",
            ".SH SEE ALSO\n",
            "\\fBsentinelctl\\fR(1), \\fBsentinel-agent\\fR(1), \\fBsystemd.service\\fR(5)\n",
        ),
        "sentinelctl" => concat!(
            ".SH FILES\n",
            ".TP\n\\fI/run/sentinel/sentinel.sock\\fR\nDefault control socket of \\fBsentineld\\fR(8). \
             Mutating commands such as \\fBreload\\fR need root or membership of the \
             \\fBsentinel\\fR group.\n",
            ".SH SEE ALSO\n",
            "\\fBsentineld\\fR(8), \\fBsentinel-agent\\fR(1)\n",
        ),
        "sentinel-agent" => concat!(
            ".SH SEE ALSO\n",
            "\\fBsentineld\\fR(8), \\fBsentinelctl\\fR(1)\n",
        ),
        _ => "",
    }
}

fn main() -> Result<()> {
    let out: PathBuf = std::env::args_os()
        .nth(1)
        .ok_or("usage: gen_assets OUT_DIR")?
        .into();
    let man_dir = out.join("man");
    fs::create_dir_all(&man_dir)?;
    let date = source_date();

    let binaries: [(Command, &str); 3] = [
        (DaemonCli::command(), "8"),
        (CtlCli::command(), "1"),
        (AgentCli::command(), "1"),
    ];
    for (cmd, section) in binaries {
        write_man_pages(cmd, section, &date, &man_dir)?;
    }

    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        for mut cmd in [CtlCli::command(), DaemonCli::command()] {
            let name = cmd.get_name().to_string();
            // File names are the ones each shell's vendor directory loads by command name.
            let (dir, file) = match shell {
                Shell::Bash => ("bash", name.clone()),
                Shell::Zsh => ("zsh", format!("_{name}")),
                Shell::Fish => ("fish", format!("{name}.fish")),
                _ => unreachable!(),
            };
            let path = out.join("completions").join(dir).join(file);
            fs::create_dir_all(path.parent().unwrap())?;
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cmd, &name, &mut buf);
            fs::write(&path, buf)?;
            println!("{}", path.display());
        }
    }
    Ok(())
}

/// The binary's page plus one page per (non-hidden) subcommand, git-style, because the
/// main page's COMMANDS section refers to them as `NAME-COMMAND(SECTION)`.
fn write_man_pages(cmd: Command, section: &str, date: &str, dir: &Path) -> Result<()> {
    let name = cmd.get_name().to_string();
    // `help` is clap's built-in; it has no page of its own.
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let version = cmd.get_version().unwrap_or_default().to_string();

    let subs: Vec<Command> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .cloned()
        .collect();
    let main = with_whatis(cmd, &name);
    write_page(main, section, date, &version, extra_sections(&name), dir)?;
    for sub in subs {
        write_page(
            sub,
            section,
            date,
            &version,
            &format!(".SH SEE ALSO\n\\fB{name}\\fR({section})\n"),
            dir,
        )?;
    }
    Ok(())
}

fn write_page(
    cmd: Command,
    section: &str,
    date: &str,
    version: &str,
    extra: &str,
    dir: &Path,
) -> Result<()> {
    let man = clap_mangen::Man::new(cmd)
        .section(section)
        .date(date)
        .source(format!("sentinel {version}"))
        .manual("Sentinel Manual");
    let path = dir.join(man.get_filename());
    let mut file = fs::File::create(&path)?;
    man.render(&mut file)?;
    file.write_all(extra.as_bytes())?;
    println!("{}", path.display());
    Ok(())
}

/// The NAME (whatis) line and DESCRIPTION of each binary's page. The derive's `about` is
/// the crate description for all three binaries, so the page would not say what each one
/// is; the whatis lines match the doc comments on the structs in `sentinel::cli`.
fn with_whatis(cmd: Command, name: &str) -> Command {
    let (whatis, description) = match name {
        "sentineld" => (
            "keeps a host's services alive, breaks them on purpose, names the tenant that hurts",
            "sentineld runs probes (HTTP, TCP, SQL, Docker, exec) and heals failed services after \
             archiving the evidence, runs chaos experiments that always roll back, ranks tenants \
             by the errors and latency they see, and journals all of it. It is meant to run under \
             systemd (Type=notify, with a watchdog) and is controlled with sentinelctl(1) over a \
             Unix socket.",
        ),
        "sentinelctl" => (
            "talks to sentineld over its control socket",
            "sentinelctl shows the status of sentineld(8) and its probes, follows its event \
             journal and asks it to reload its configuration. It holds no logic of its own: it \
             renders the daemon's JSON answers as tables, or prints them as they are with --json.",
        ),
        "sentinel-agent" => (
            "the sidecar that ships an application's tenant events to sentineld",
            "sentinel-agent runs next to an application, tails its access log (JSON lines, or \
             nginx combined format with a tenant field) and sends one event per request, in \
             batches, to the ingest endpoint of sentineld(8).",
        ),
        _ => return cmd,
    };
    cmd.about(whatis).long_about(description)
}

/// `SOURCE_DATE_EPOCH` as YYYY-MM-DD (UTC), or "" when unset or malformed.
fn source_date() -> String {
    let Some(secs) = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
    else {
        return String::new();
    };
    // Howard Hinnant's days-to-civil algorithm; avoids a date crate for one line.
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}
