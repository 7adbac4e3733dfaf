# post-install scriptlet of sentinel (.rpm); $1 is 1 on install, 2+ on upgrade.
# Members of the sentinel group (and root) may call sentineld's mutating control
# routes; the daemon chowns its socket to it (socket_group in sentineld.toml).
getent group sentinel >/dev/null || groupadd --system sentinel
# Journal database, archive spool, chaos rollback journal. Made here, not only by
# systemd's StateDirectory=, so it has the group even without systemd; an existing
# directory is left as the admin set it.
if [ ! -d /var/lib/sentinel ]; then
    mkdir -p /var/lib/sentinel
    chown root:sentinel /var/lib/sentinel
    chmod 0750 /var/lib/sentinel
fi
# Like %systemd_post: make systemd see the unit, but enable and start nothing
# (RPM distributions leave that to presets / the admin: systemctl enable --now sentineld).
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
exit 0
