# pre-uninstall scriptlet of sentinel (.rpm); $1 is 0 on erase, 1+ on upgrade.
# Like %systemd_preun: on erase (not upgrade) disable and stop the daemon.
if [ "$1" -eq 0 ] && [ -d /run/systemd/system ]; then
    systemctl --no-reload disable --now sentineld.service sentinel-agent.service >/dev/null 2>&1 || :
fi
exit 0
