# post-uninstall scriptlet of sentinel (.rpm); $1 is 0 on erase, 1+ on upgrade.
# Like %systemd_postun_with_restart: reload units, and restart a running daemon after
# an upgrade so the new binary is in use. /var/lib/sentinel is kept (RPM has no purge).
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -ge 1 ]; then
        systemctl try-restart sentineld.service sentinel-agent.service >/dev/null 2>&1 || :
    fi
fi
exit 0
