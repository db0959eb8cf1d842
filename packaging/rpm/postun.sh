# renewd %postun (as %systemd_postun_with_restart): after an upgrade restart
# the daemon if it runs. /var/lib/renewd (certificates, keys, accounts) is
# kept on removal; a modified /etc/renewd/renewd.toml is kept as .rpmsave.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -ge 1 ]; then
        systemctl try-restart renewd.service >/dev/null 2>&1 || :
    fi
fi
